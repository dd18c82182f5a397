// A key for keyed MACs (HMAC-SHA-256), kept in locked memory: the audit
// chain's key. Loaded from a file (a credential: private to the agent), or
// generated into one.
//
// Thread: loop thread only.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "chitty/base/result.hpp"
#include "chitty/secure/arena.hpp"
#include "chitty/secure/secure_buffer.hpp"

namespace chitty::secure {

class MacKey {
 public:
  static constexpr std::size_t kMacBytes = 32;
  using Mac = std::array<std::uint8_t, kMacBytes>;

  // The key is the file's content (trailing newlines dropped; at least 32
  // bytes). The file must be a regular file not readable or writable by
  // group or others.
  [[nodiscard]] static Result<std::unique_ptr<MacKey>> from_file(Arena& arena, const std::string& path);
  // A key from bytes (tests, tools).
  [[nodiscard]] static Result<std::unique_ptr<MacKey>> from_bytes(Arena& arena, std::string_view bytes);
  // Writes 32 random bytes, hex-encoded, to a new file (0600, O_EXCL).
  [[nodiscard]] static Result<void> generate_file(const std::string& path);

  // HMAC-SHA-256 of `data` under this key.
  Mac mac(std::string_view data) const noexcept;
  // The MAC of `domain` followed by `data`: what one kind of file is sealed
  // with, so that text MAC'd for another use of the key (an audit line, a
  // revocations file, a prediction model) never passes for it.
  Mac mac(std::string_view domain, std::string_view data) const noexcept;

 private:
  MacKey() = default;
  SecureBuffer state_;  // crypto_auth_hmacsha256_state, keyed
};

// Lower-case hex of a MAC, and back (false on anything but 64 hex digits).
std::string to_hex(const MacKey::Mac& m);
[[nodiscard]] bool from_hex(std::string_view hex, MacKey::Mac& out) noexcept;

}  // namespace chitty::secure
