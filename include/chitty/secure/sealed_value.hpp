// One value kept sealed in the arena between uses — an imported environment
// variable, the Connect token: move-only, wiped and released when it dies,
// opened into a SecureBuffer only while it is needed.
//
// Thread: loop thread only (like the arena and the sealer).
#pragma once

#include <span>
#include <string>
#include <string_view>
#include <utility>

#include "chitty/secure/arena.hpp"
#include "chitty/secure/sealer.hpp"
#include "chitty/secure/secure_buffer.hpp"

namespace chitty::secure {

// What comparing a sealed value with presented bytes found. `unavailable`
// says nothing about the presented bytes: there was no locked memory to open
// the value into (or it failed authentication), so it must never be taken
// for a mismatch — a caller that counts mismatches against someone would
// otherwise charge them for the agent's own shortage.
enum class Comparison { equal, different, unavailable };

class SealedValue {
 public:
  SealedValue() = default;
  // Seals `plaintext` under `associated` (what it is: "env:NAME"). Empty
  // (falsy) when the arena has no room or the value exceeds a block.
  static SealedValue seal(Arena& arena, Sealer& sealer, std::span<const char> plaintext, std::string associated);

  ~SealedValue() { reset(); }
  SealedValue(SealedValue&& o) noexcept
      : arena_(std::exchange(o.arena_, nullptr)), sealer_(std::exchange(o.sealer_, nullptr)),
        block_(std::exchange(o.block_, Block{})), size_(std::exchange(o.size_, 0)),
        associated_(std::move(o.associated_)) {}
  SealedValue& operator=(SealedValue&& o) noexcept {
    if (this != &o) {
      reset();
      arena_ = std::exchange(o.arena_, nullptr);
      sealer_ = std::exchange(o.sealer_, nullptr);
      block_ = std::exchange(o.block_, Block{});
      size_ = std::exchange(o.size_, 0);
      associated_ = std::move(o.associated_);
    }
    return *this;
  }
  SealedValue(const SealedValue&) = delete;
  SealedValue& operator=(const SealedValue&) = delete;

  explicit operator bool() const noexcept { return block_.data != nullptr; }
  std::size_t size() const noexcept { return size_; }  // of the plaintext

  // The plaintext in a fresh SecureBuffer with `spare` bytes of room after
  // it; empty when there is no locked memory right now, or the sealed bytes
  // fail authentication (memory corruption).
  SecureBuffer open(std::size_t spare = 0) const noexcept;
  // Whether the plaintext equals `other` (constant time in the length; a
  // length that differs is `different` without opening anything).
  Comparison compare(std::span<const char> other) const noexcept;

  void reset() noexcept;

 private:
  Arena* arena_ = nullptr;
  Sealer* sealer_ = nullptr;
  Block block_;
  std::size_t size_ = 0;
  std::string associated_;
};

}  // namespace chitty::secure
