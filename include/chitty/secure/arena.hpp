// Locked memory for secrets: one region, allocated once, never swapped,
// never in a core dump, and (with memfd_secret) not even in the kernel's
// direct map. Every secret byte the agent holds lives in here, sealed (cache
// entries) or briefly in plaintext (SecureBuffer).
//
// One region rather than one sodium_malloc per secret: each sodium_malloc
// costs 16 KiB of address space and ~4 VMAs, and vm.max_map_count runs out
// after ~16k live allocations (docs/security.md).
//
// Thread: loop thread only.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "chitty/base/result.hpp"

namespace chitty::secure {

enum class Backing {
  memfd_secret,  // memfd_secret(2): locked, out of the direct map, unreadable via /proc/PID/mem
  mlock,         // anonymous memory, mlock'd, MADV_DONTDUMP, guard pages
  unlocked,      // as mlock but the lock failed and the config allowed it (may be swapped)
};
std::string_view backing_name(Backing b) noexcept;

struct ArenaOptions {
  std::size_t capacity = 7 * 1024 * 1024;  // usable bytes, rounded up to pages
  bool allow_unlocked = false;             // run even if the memory cannot be locked
  // memfd_secret where the kernel allows it. Off (or the environment
  // variable CHITTY_TEST_NO_MEMFD_SECRET=1, for tests) forces the mlock path
  // that Debian 12's stock kernel needs.
  bool use_memfd_secret = true;
};

// A block of arena memory. Owned by whoever got it from allocate(); give it
// back with release().
struct Block {
  std::byte* data = nullptr;
  std::uint32_t size = 0;       // the size class, >= what was asked for
  std::uint8_t size_class = 0;
  explicit operator bool() const noexcept { return data != nullptr; }
};

class Arena {
 public:
  // Size classes from 32 bytes to 64 KiB in steps of 1.5x and 2x (32, 48,
  // 64, 96, 128, 192, ...): at most a third of a block is slack. All are
  // multiples of 16, so every block is 16-byte aligned.
  static constexpr std::size_t kMinBlock = 32;
  static constexpr std::size_t kMaxBlock = 64 * 1024;
  static constexpr std::size_t kClasses = 23;
  static constexpr std::size_t class_size(std::size_t cls) noexcept {
    return (cls % 2 == 0 ? kMinBlock : kMinBlock + kMinBlock / 2) << (cls / 2);
  }

  // Maps and locks the region. Fails, saying what RLIMIT_MEMLOCK is, what is
  // needed and how to raise it, when the memory cannot be locked (unless
  // allow_unlocked).
  static Result<std::unique_ptr<Arena>> create(const ArenaOptions& options);
  ~Arena();  // wipes and unmaps
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  // A block of at least `n` bytes (n <= kMaxBlock), zeroed; an empty Block
  // when the arena is full.
  Block allocate(std::size_t n) noexcept;
  // Wipes the block and makes it reusable.
  void release(Block b) noexcept;

  Backing backing() const noexcept { return backing_; }
  std::size_t capacity() const noexcept { return capacity_; }
  std::size_t used() const noexcept { return used_; }  // bytes in blocks handed out
  std::size_t available() const noexcept { return capacity_ - used_; }
  // Whether `p` points into this arena (tests, assertions).
  bool contains(const void* p) const noexcept;
  // The whole usable region, for tests that check it holds no trace of a
  // secret (it is readable in this process even with memfd_secret).
  std::span<const std::byte> region() const noexcept { return {base_, capacity_}; }

 private:
  Arena() = default;
  static std::size_t class_of(std::size_t n) noexcept;

  std::byte* map_ = nullptr;   // the whole mapping, guard pages included
  std::size_t map_size_ = 0;
  std::byte* base_ = nullptr;  // first usable byte
  std::size_t capacity_ = 0;
  std::size_t bump_ = 0;       // offset of the never-used tail
  std::size_t used_ = 0;
  Backing backing_ = Backing::mlock;
  bool writable_ = false;  // base_ is mapped read-write (not just reserved)
  int memfd_ = -1;
  std::array<std::vector<std::byte*>, kClasses> free_;
};

// mlock(2)/munlock(2) through the system call itself (sanitizer runtimes
// turn the libc wrappers into no-ops). False, with errno set, on failure.
bool lock_pages(void* p, std::size_t n) noexcept;
void unlock_pages(void* p, std::size_t n) noexcept;

// RLIMIT_MEMLOCK as text ("8 MiB", "unlimited") for messages.
std::string memlock_limit_text();

}  // namespace chitty::secure
