// Plaintext secrets, briefly: a move-only buffer in the locked arena, wiped
// and returned when it dies. Secrets are never copied into std::string; they
// go from a SecureBuffer to the socket (see SecurePayload) and nowhere else.
#pragma once

#include <cstddef>
#include <span>
#include <string_view>
#include <utility>

#include "chitty/secure/arena.hpp"

namespace chitty::secure {

class SecureBuffer {
 public:
  SecureBuffer() = default;
  // A buffer with room for `capacity` bytes (size 0); empty if the arena has
  // no room for it or capacity > Arena::kMaxBlock. `lifetime` only chooses
  // where in the arena it goes (Lifetime::lasting for keys kept all along).
  static SecureBuffer allocate(Arena& arena, std::size_t capacity,
                               Lifetime lifetime = Lifetime::transient) noexcept;

  ~SecureBuffer() { reset(); }
  SecureBuffer(SecureBuffer&& o) noexcept
      : arena_(std::exchange(o.arena_, nullptr)), block_(std::exchange(o.block_, Block{})),
        size_(std::exchange(o.size_, 0)) {}
  SecureBuffer& operator=(SecureBuffer&& o) noexcept {
    if (this != &o) {
      reset();
      arena_ = std::exchange(o.arena_, nullptr);
      block_ = std::exchange(o.block_, Block{});
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  SecureBuffer(const SecureBuffer&) = delete;
  SecureBuffer& operator=(const SecureBuffer&) = delete;

  explicit operator bool() const noexcept { return block_.data != nullptr; }
  std::size_t size() const noexcept { return size_; }
  std::size_t capacity() const noexcept { return block_.size; }
  char* data() noexcept { return reinterpret_cast<char*>(block_.data); }
  const char* data() const noexcept { return reinterpret_cast<const char*>(block_.data); }
  std::span<const char> bytes() const noexcept { return {data(), size_}; }
  std::span<const std::byte> raw() const noexcept { return {block_.data, size_}; }

  // Sets the size (<= capacity), e.g. after writing into data(); false
  // (and nothing changed) past the capacity.
  [[nodiscard]] bool resize(std::size_t n) noexcept;
  // Keeps the first `n` bytes (no-op when n >= size) and wipes the rest.
  void truncate(std::size_t n) noexcept;
  // Appends; false (and nothing appended) if it does not fit.
  [[nodiscard]] bool append(std::string_view s) noexcept;
  [[nodiscard]] bool push_back(char c) noexcept;

  // Wipes and gives the memory back.
  void reset() noexcept;

 private:
  Arena* arena_ = nullptr;
  Block block_;
  std::size_t size_ = 0;
};

}  // namespace chitty::secure
