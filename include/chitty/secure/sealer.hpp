// Sealing cache entries: an AEAD under a random per-process key, with the
// entry's canonical reference bound in as associated data, so a sealed value
// cannot be moved to another reference or altered without detection.
//
// AES-256-GCM with a precomputed key schedule where the CPU has AES-NI
// (libsodium's implementation needs it), XChaCha20-Poly1305 otherwise. The key
// (and the AES key schedule) live in guarded memory: inside the arena when it
// is memfd_secret (unreadable even through /proc/PID/mem), else in their own
// sodium_malloc'd, locked, guard-paged allocation. It stays readable between
// uses: toggling it no-access costs two mprotect calls per request, more than
// a whole cached retrieval (docs/security.md has the measurement).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string_view>

#include "chitty/base/result.hpp"
#include "chitty/secure/arena.hpp"

namespace chitty::secure {

enum class Cipher { aes256gcm, xchacha20poly1305 };
std::string_view cipher_name(Cipher c) noexcept;

class Sealer {
 public:
  // A fresh random key. `allow_aes` false forces XChaCha20-Poly1305 (tests).
  [[nodiscard]] static Result<std::unique_ptr<Sealer>> create(Arena& arena, bool allow_aes = true);
  ~Sealer();
  Sealer(const Sealer&) = delete;
  Sealer& operator=(const Sealer&) = delete;

  Cipher cipher() const noexcept { return cipher_; }
  // Bytes a sealed value of `plaintext` bytes takes: nonce + ciphertext + tag.
  std::size_t sealed_size(std::size_t plaintext) const noexcept;
  std::size_t overhead() const noexcept { return sealed_size(0); }

  // Seals `plaintext` into out[0, sealed_size(plaintext.size())).
  void seal(std::span<const std::byte> plaintext, std::string_view associated, std::byte* out) noexcept;
  // Opens `sealed` into out[0, sealed.size() - overhead()). False if the
  // value was altered or `associated` is not what it was sealed with (out
  // is then wiped).
  bool open(std::span<const std::byte> sealed, std::string_view associated, std::byte* out) const noexcept;

 private:
  Sealer() = default;
  Cipher cipher_ = Cipher::xchacha20poly1305;
  Arena* arena_ = nullptr;
  Block arena_block_;                 // key material when it lives in the arena
  void* guarded_ = nullptr;           // key material when sodium_malloc'd
  unsigned char* key_ = nullptr;      // 32 bytes (XChaCha) ...
  void* aes_state_ = nullptr;         // ... or the AES-GCM key schedule
  std::uint64_t counter_ = 0;         // nonces: a counter, never reused under one key
  unsigned char nonce_prefix_[16] = {};
};

}  // namespace chitty::secure
