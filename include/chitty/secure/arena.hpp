// Locked memory for secrets: one region, allocated once, never swapped,
// never in a core dump, and (with memfd_secret) not even in the kernel's
// direct map. Every secret byte the agent holds lives in here, sealed (cache
// entries) or briefly in plaintext (SecureBuffer).
//
// One region rather than one sodium_malloc per secret: each sodium_malloc
// costs 16 KiB of address space and ~4 VMAs, and vm.max_map_count runs out
// after ~16k live allocations (docs/security.md).
//
// Inside the region blocks are split from and merged back into free spans
// (boundary bookkeeping kept outside the region): memory freed by one size
// serves every other size, so a burst of large answers cannot leave the
// arena usable only for large answers. Lasting blocks (sealed cache entries,
// keys, imported values) are placed from the bottom, transient ones
// (plaintext in flight) from the top, so the holes short-lived blocks leave
// close up again instead of scattering between long-lived ones.
//
// Thread: loop thread only.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "chitty/base/result.hpp"

namespace chitty::secure {

// Names: arena.cpp, in this order.
enum class Backing {
  memfd_secret,  // memfd_secret(2): locked, out of the direct map, unreadable via /proc/PID/mem
  mlock,         // anonymous memory, mlock'd, MADV_DONTDUMP, guard pages
  unlocked,      // as mlock but the lock failed and the config allowed it (may be swapped)
};
std::string_view backing_name(Backing b) noexcept;

// How long a block is expected to live; only where it is placed depends on it.
enum class Lifetime : std::uint8_t {
  transient,  // plaintext in flight (a value being served, a request body): from the top
  lasting,    // sealed cache entries, keys, imported values: from the bottom
};

struct ArenaOptions {
  std::size_t capacity = 7 * 1024 * 1024;  // usable bytes, rounded up to pages
  bool allow_unlocked = false;             // run even if the memory cannot be locked
  // memfd_secret where the kernel allows it. Off (or the environment
  // variable CHITTY_TEST_NO_MEMFD_SECRET=1, for tests) forces the mlock path
  // that Debian 12's stock kernel needs.
  bool use_memfd_secret = true;
};

// A block of arena memory. Owned by whoever got it from allocate(); give it
// back, unchanged, with release().
struct Block {
  std::byte* data = nullptr;
  std::uint32_t size = 0;  // what was asked for, rounded up to Arena::kAlignment
  explicit operator bool() const noexcept { return data != nullptr; }
};

class Arena {
 public:
  // Every block is 16-byte aligned and a multiple of 16 bytes: at most 15
  // bytes of a block are slack. One allocation is at most kMaxBlock.
  static constexpr std::size_t kAlignment = 16;
  static constexpr std::size_t kMinBlock = kAlignment;
  static constexpr std::size_t kMaxBlock = 64 * 1024;
  // The size of the block allocate(n) hands out (and counts in used()).
  static constexpr std::size_t block_size(std::size_t n) noexcept {
    return n == 0 ? kMinBlock : (n + kAlignment - 1) / kAlignment * kAlignment;
  }

  // Maps and locks the region. Fails, saying what RLIMIT_MEMLOCK is, what is
  // needed and how to raise it, when the memory cannot be locked (unless
  // allow_unlocked).
  [[nodiscard]] static Result<std::unique_ptr<Arena>> create(const ArenaOptions& options);
  ~Arena();  // wipes and unmaps
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  // A block of at least `n` bytes (n <= kMaxBlock), zeroed; an empty Block
  // when no free span of the region holds block_size(n) bytes. Never
  // allocates ordinary heap memory.
  Block allocate(std::size_t n, Lifetime lifetime = Lifetime::transient) noexcept;
  // Wipes the block and merges it with the free spans next to it. A block
  // that overlaps free memory (released twice, or not from here) aborts.
  void release(Block b) noexcept;

  Backing backing() const noexcept { return backing_; }
  std::size_t capacity() const noexcept { return capacity_; }
  std::size_t used() const noexcept { return used_; }  // bytes in blocks handed out
  // Bytes that can be allocated now, all of them: with no per-block
  // headers, every free byte belongs to some block allocate() can hand out.
  // (Not in one piece: see largest_block().)
  std::size_t available() const noexcept { return capacity_ - used_ - lost_; }
  // The largest n for which allocate(n) succeeds now (0 when full).
  std::size_t largest_block() const noexcept;
  // How many pieces the free memory is in (1 when it is all contiguous).
  std::size_t free_spans() const noexcept { return by_offset_.size(); }

  // Which of `releasable` (blocks the caller holds from this arena) to
  // release so that allocate(n) succeeds: the contiguous run of free spans
  // and releasable blocks that frees the fewest bytes. Indices into
  // `releasable`; empty if allocate(n) succeeds already; nullopt if
  // releasing all of them would not make room (then release none).
  std::optional<std::vector<std::size_t>> room_for(std::size_t n, std::span<const Block> releasable) const;

  // Whether `p` points into this arena (tests, assertions).
  bool contains(const void* p) const noexcept;
  // The whole usable region, for tests that check it holds no trace of a
  // secret (it is readable in this process even with memfd_secret).
  std::span<const std::byte> region() const noexcept { return {base_, capacity_}; }

 private:
  Arena() = default;
  using Offset = std::uint32_t;
  // By size, then the higher offset first: a transient block takes the
  // smallest span that fits, and of equal ones the highest.
  struct SizeOrder {
    bool operator()(const std::pair<Offset, Offset>& a, const std::pair<Offset, Offset>& b) const noexcept {
      return a.first != b.first ? a.first < b.first : a.second > b.second;
    }
  };
  using BySize = std::set<std::pair<Offset, Offset>, SizeOrder>;  // (size, offset)

  void add_free(Offset offset, Offset size) noexcept;
  void resize_free(std::map<Offset, Offset>::iterator it, Offset offset, Offset size) noexcept;

  std::byte* map_ = nullptr;   // the whole mapping, guard pages included
  std::size_t map_size_ = 0;
  std::byte* base_ = nullptr;  // first usable byte
  std::size_t capacity_ = 0;
  std::size_t used_ = 0;
  std::size_t lost_ = 0;       // released while the ordinary heap was exhausted: never reused
  Backing backing_ = Backing::mlock;
  bool writable_ = false;  // base_ is mapped read-write (not just reserved)
  int memfd_ = -1;
  // The free spans, kept in both orders; every free byte is zero.
  std::map<Offset, Offset> by_offset_;  // offset -> size
  BySize by_size_;
};

// mlock(2)/munlock(2) through the system call itself (sanitizer runtimes
// turn the libc wrappers into no-ops). False, with errno set, on failure.
[[nodiscard]] bool lock_pages(void* p, std::size_t n) noexcept;
void unlock_pages(void* p, std::size_t n) noexcept;

// RLIMIT_MEMLOCK as text ("8 MiB", "unlimited") for messages.
std::string memlock_limit_text();

}  // namespace chitty::secure
