// Wiping plain (not locked) memory that carried request data: the read buffer
// of a connection, header bytes that may hold a token, request bodies. Secret
// *values* live in the secure module's locked arena; this is the hygiene layer
// for everything else a client sent.
#pragma once

#include <cstddef>
#include <memory>
#include <vector>

namespace chitty {

// Zeroes memory in a way the compiler may not elide (explicit_bzero).
void secure_zero(void* p, std::size_t n) noexcept;

// An allocator that zeroes every block before returning it to the heap, so a
// container's old buffers are wiped when it grows and when it dies.
template <typename T>
struct WipingAllocator {
  using value_type = T;
  WipingAllocator() noexcept = default;
  template <typename U>
  WipingAllocator(const WipingAllocator<U>&) noexcept {}  // NOLINT(google-explicit-constructor)

  T* allocate(std::size_t n) { return std::allocator<T>{}.allocate(n); }
  void deallocate(T* p, std::size_t n) noexcept {
    secure_zero(p, n * sizeof(T));
    std::allocator<T>{}.deallocate(p, n);
  }
  template <typename U>
  bool operator==(const WipingAllocator<U>&) const noexcept { return true; }
};

// A byte vector whose storage is always wiped before it is freed. Unlike
// std::string it has no small-buffer optimisation, so no byte escapes wiping.
using WipedBytes = std::vector<char, WipingAllocator<char>>;

}  // namespace chitty
