#include "chitty/secure/secure_buffer.hpp"

#include <cstring>

#include <sodium.h>

namespace chitty::secure {

SecureBuffer SecureBuffer::allocate(Arena& arena, std::size_t capacity, Lifetime lifetime) noexcept {
  SecureBuffer b;
  b.block_ = arena.allocate(capacity, lifetime);
  if (b.block_) b.arena_ = &arena;
  return b;
}

bool SecureBuffer::resize(std::size_t n) noexcept {
  if (n > block_.size) return false;
  if (n < size_) sodium_memzero(block_.data + n, size_ - n);
  size_ = n;
  return true;
}

void SecureBuffer::truncate(std::size_t n) noexcept {
  if (n < size_) {
    sodium_memzero(block_.data + n, size_ - n);
    size_ = n;
  }
}

bool SecureBuffer::append(std::string_view s) noexcept {
  if (s.empty()) return true;  // (memcpy from a null pointer is undefined even for 0 bytes)
  if (s.size() > block_.size - size_) return false;
  std::memcpy(block_.data + size_, s.data(), s.size());
  size_ += s.size();
  return true;
}

bool SecureBuffer::push_back(char c) noexcept {
  if (size_ >= block_.size) return false;
  block_.data[size_++] = static_cast<std::byte>(c);
  return true;
}

void SecureBuffer::reset() noexcept {
  if (arena_ != nullptr) arena_->release(block_);  // wipes
  arena_ = nullptr;
  block_ = Block{};
  size_ = 0;
}

}  // namespace chitty::secure
