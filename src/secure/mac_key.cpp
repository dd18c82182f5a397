#include "chitty/secure/mac_key.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <sodium.h>

#include "chitty/base/fd.hpp"
#include "chitty/secure/secret_file.hpp"

namespace chitty::secure {

Result<std::unique_ptr<MacKey>> MacKey::from_bytes(Arena& arena, std::string_view bytes) {
  if (sodium_init() < 0) return fail("libsodium cannot be initialised");
  if (bytes.size() < 32) return fail("a chain key needs at least 32 bytes");
  std::unique_ptr<MacKey> k(new MacKey());
  // Only the keyed state is kept: HMAC's inner and outer pads already
  // absorbed, so each MAC skips two of its compressions. The state is as
  // secret as the key, hence in locked memory.
  k->state_ = SecureBuffer::allocate(arena, sizeof(crypto_auth_hmacsha256_state), Lifetime::lasting);
  if (!k->state_) return fail("no locked memory for the chain key");
  if (!k->state_.resize(sizeof(crypto_auth_hmacsha256_state))) return fail("no locked memory for the chain key");
  auto* st = reinterpret_cast<crypto_auth_hmacsha256_state*>(k->state_.data());
  crypto_auth_hmacsha256_init(st, reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  return k;
}

Result<std::unique_ptr<MacKey>> MacKey::from_file(Arena& arena, const std::string& path) {
  const std::string shown = "chain key file " + path;
  auto buf = read_secret_file(arena, path, FileRules{.max_bytes = 4096, .min_bytes = 32, .owner_only = true});
  if (!buf) {
    const FileFailure& f = buf.error();
    if (f.kind == FileFailure::Kind::too_small || f.kind == FileFailure::Kind::too_large) {
      return fail(shown + " must hold 32 to 4096 bytes");
    }
    return fail(secret_file_message(f, shown));
  }
  std::size_t n = buf->size();
  while (n > 0 && (buf->data()[n - 1] == '\n' || buf->data()[n - 1] == '\r')) --n;
  buf->truncate(n);
  return from_bytes(arena, {buf->data(), buf->size()});
}

Result<void> MacKey::generate_file(const std::string& path) {
  if (sodium_init() < 0) return fail("libsodium cannot be initialised");
  unsigned char raw[32];
  randombytes_buf(raw, sizeof raw);
  char hex[65];
  sodium_bin2hex(hex, sizeof hex, raw, sizeof raw);
  sodium_memzero(raw, sizeof raw);
  hex[64] = '\n';
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600));
  bool ok = fd && write_all(fd.get(), {hex, sizeof hex}) && ::fsync(fd.get()) == 0;
  int e = errno;
  sodium_memzero(hex, sizeof hex);
  if (!fd) return fail("cannot create " + path + ": " + std::strerror(e));
  if (!ok) return fail("cannot write " + path + ": " + std::strerror(e));
  return {};
}

MacKey::Mac MacKey::mac(std::string_view data) const noexcept { return mac(std::string_view(), data); }

MacKey::Mac MacKey::mac(std::string_view domain, std::string_view data) const noexcept {
  Mac out{};
  crypto_auth_hmacsha256_state st;
  std::memcpy(&st, state_.data(), sizeof st);
  crypto_auth_hmacsha256_update(&st, reinterpret_cast<const unsigned char*>(domain.data()), domain.size());
  crypto_auth_hmacsha256_update(&st, reinterpret_cast<const unsigned char*>(data.data()), data.size());
  crypto_auth_hmacsha256_final(&st, out.data());
  sodium_memzero(&st, sizeof st);
  return out;
}

std::string to_hex(const MacKey::Mac& m) {
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(64);
  for (auto b : m) {
    out += kHex[b >> 4];
    out += kHex[b & 15];
  }
  return out;
}

bool from_hex(std::string_view hex, MacKey::Mac& out) noexcept {
  if (hex.size() != 64) return false;
  auto nibble = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  for (std::size_t i = 0; i < 32; ++i) {
    int hi = nibble(hex[2 * i]), lo = nibble(hex[2 * i + 1]);
    if (hi < 0 || lo < 0) return false;
    out[i] = static_cast<std::uint8_t>(hi * 16 + lo);
  }
  return true;
}

}  // namespace chitty::secure
