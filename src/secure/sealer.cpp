#include "chitty/secure/sealer.hpp"

#include <cstring>

#include <sodium.h>

namespace chitty::secure {
namespace {

constexpr std::size_t kAesNonce = crypto_aead_aes256gcm_NPUBBYTES;            // 12
constexpr std::size_t kXNonce = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;  // 24
constexpr std::size_t kTag = 16;
static_assert(crypto_aead_aes256gcm_ABYTES == kTag && crypto_aead_xchacha20poly1305_ietf_ABYTES == kTag);

const unsigned char* uc(const std::byte* p) { return reinterpret_cast<const unsigned char*>(p); }
unsigned char* uc(std::byte* p) { return reinterpret_cast<unsigned char*>(p); }

}  // namespace

std::string_view cipher_name(Cipher c) noexcept {
  return c == Cipher::aes256gcm ? "AES-256-GCM" : "XChaCha20-Poly1305";
}

Result<std::unique_ptr<Sealer>> Sealer::create(Arena& arena, bool allow_aes) {
  if (sodium_init() < 0) return fail("libsodium cannot be initialised");
  std::unique_ptr<Sealer> s(new Sealer());
  s->arena_ = &arena;
  s->cipher_ = allow_aes && crypto_aead_aes256gcm_is_available() != 0 ? Cipher::aes256gcm : Cipher::xchacha20poly1305;
  // Key material: the AES key schedule (16-byte aligned) plus room for the
  // raw key while it is expanded, or the 32-byte XChaCha key.
  const std::size_t state = crypto_aead_aes256gcm_statebytes();
  const std::size_t need = s->cipher_ == Cipher::aes256gcm ? state + 16 + 32 : 32;
  unsigned char* mem = nullptr;
  if (arena.backing() == Backing::memfd_secret) {
    s->arena_block_ = arena.allocate(need, Lifetime::lasting);
    if (!s->arena_block_) return fail("the secret arena has no room for the key");
    mem = uc(s->arena_block_.data);
  } else {
    s->guarded_ = sodium_malloc(need);  // guard pages and a canary around the key
    if (s->guarded_ == nullptr) return fail("cannot allocate guarded memory for the key");
    // sodium_malloc ignores mlock failures (and a sanitizer runtime makes
    // its mlock a no-op); lock it ourselves and fail as the arena does.
    if (!lock_pages(s->guarded_, need) && arena.backing() != Backing::unlocked) {
      return fail("cannot lock memory for the sealing key (RLIMIT_MEMLOCK is " + memlock_limit_text() + ")");
    }
    mem = static_cast<unsigned char*>(s->guarded_);
  }
  if (s->cipher_ == Cipher::aes256gcm) {
    auto addr = reinterpret_cast<std::uintptr_t>(mem);
    unsigned char* aligned = mem + ((16 - addr % 16) % 16);
    unsigned char* raw_key = aligned + state;
    crypto_aead_aes256gcm_keygen(raw_key);
    crypto_aead_aes256gcm_beforenm(reinterpret_cast<crypto_aead_aes256gcm_state*>(aligned), raw_key);
    sodium_memzero(raw_key, 32);  // only the schedule remains
    s->aes_state_ = aligned;
  } else {
    crypto_aead_xchacha20poly1305_ietf_keygen(mem);
    s->key_ = mem;
  }
  randombytes_buf(s->nonce_prefix_, sizeof s->nonce_prefix_);
  return s;
}

Sealer::~Sealer() {
  if (arena_block_ && arena_ != nullptr) arena_->release(arena_block_);  // wiped
  if (guarded_ != nullptr) sodium_free(guarded_);                      // wiped
}

std::size_t Sealer::sealed_size(std::size_t plaintext) const noexcept {
  return (cipher_ == Cipher::aes256gcm ? kAesNonce : kXNonce) + plaintext + kTag;
}

void Sealer::seal(std::span<const std::byte> plaintext, std::string_view associated, std::byte* out) noexcept {
  // Nonce: a random per-key prefix and a counter; under one key it never
  // repeats (and no random bytes are drawn per seal).
  std::uint64_t counter = ++counter_;
  const auto* ad = reinterpret_cast<const unsigned char*>(associated.data());
  if (cipher_ == Cipher::aes256gcm) {
    std::memcpy(out, nonce_prefix_, 4);
    std::memcpy(out + 4, &counter, 8);
    unsigned long long clen = 0;
    crypto_aead_aes256gcm_encrypt_afternm(uc(out + kAesNonce), &clen, uc(plaintext.data()), plaintext.size(), ad,
                                          associated.size(), nullptr, uc(out),
                                          static_cast<const crypto_aead_aes256gcm_state*>(aes_state_));
  } else {
    std::memcpy(out, nonce_prefix_, 16);
    std::memcpy(out + 16, &counter, 8);
    unsigned long long clen = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt(uc(out + kXNonce), &clen, uc(plaintext.data()), plaintext.size(), ad,
                                               associated.size(), nullptr, uc(out), key_);
  }
}

bool Sealer::open(std::span<const std::byte> sealed, std::string_view associated, std::byte* out) const noexcept {
  if (sealed.size() < overhead()) return false;
  const auto* ad = reinterpret_cast<const unsigned char*>(associated.data());
  unsigned long long mlen = 0;
  int r;
  if (cipher_ == Cipher::aes256gcm) {
    r = crypto_aead_aes256gcm_decrypt_afternm(uc(out), &mlen, nullptr, uc(sealed.data() + kAesNonce),
                                              sealed.size() - kAesNonce, ad, associated.size(), uc(sealed.data()),
                                              static_cast<const crypto_aead_aes256gcm_state*>(aes_state_));
  } else {
    r = crypto_aead_xchacha20poly1305_ietf_decrypt(uc(out), &mlen, nullptr, uc(sealed.data() + kXNonce),
                                                   sealed.size() - kXNonce, ad, associated.size(), uc(sealed.data()),
                                                   key_);
  }
  if (r != 0) {
    sodium_memzero(out, sealed.size() - overhead());
    return false;
  }
  return true;
}

}  // namespace chitty::secure
