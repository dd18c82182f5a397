#include "chitty/secure/sealed_value.hpp"

#include <sodium.h>

namespace chitty::secure {

SealedValue SealedValue::seal(Arena& arena, Sealer& sealer, std::span<const char> plaintext, std::string associated) {
  SealedValue v;
  std::size_t need = sealer.sealed_size(plaintext.size());
  if (need > Arena::kMaxBlock) return v;
  v.block_ = arena.allocate(need, Lifetime::lasting);
  if (!v.block_) return v;
  v.arena_ = &arena;
  v.sealer_ = &sealer;
  v.size_ = plaintext.size();
  v.associated_ = std::move(associated);
  sealer.seal(std::as_bytes(plaintext), v.associated_, v.block_.data);
  return v;
}

SecureBuffer SealedValue::open(std::size_t spare) const noexcept {
  if (!*this) return {};
  SecureBuffer out = SecureBuffer::allocate(*arena_, std::max<std::size_t>(size_ + spare, 1));
  if (!out) return out;
  std::span<const std::byte> sealed(block_.data, sealer_->sealed_size(size_));
  if (!sealer_->open(sealed, associated_, reinterpret_cast<std::byte*>(out.data()))) return {};
  if (!out.resize(size_)) return {};
  return out;
}

Comparison SealedValue::compare(std::span<const char> other) const noexcept {
  if (!*this) return Comparison::unavailable;
  if (other.size() != size_) return Comparison::different;
  SecureBuffer mine = open();
  if (!mine) return Comparison::unavailable;
  if (size_ == 0) return Comparison::equal;
  return sodium_memcmp(mine.data(), other.data(), size_) == 0 ? Comparison::equal : Comparison::different;
}

void SealedValue::reset() noexcept {
  if (arena_ != nullptr) arena_->release(block_);  // wiped
  arena_ = nullptr;
  sealer_ = nullptr;
  block_ = Block{};
  size_ = 0;
}

}  // namespace chitty::secure
