#include "chitty/base/enum_names.hpp"
#include "chitty/secure/arena.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <limits>

#include <sodium.h>

#include "chitty/base/units.hpp"

namespace chitty::secure {
namespace {

std::size_t page_size() {
  static const std::size_t p = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  return p;
}

std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

bool memfd_secret_disabled_by_environment() {
  const char* v = std::getenv("CHITTY_TEST_NO_MEMFD_SECRET");
  return v != nullptr && std::string_view(v) == "1";
}

std::string locked_now_text() {
  // VmLck of this process, for the error message.
  FILE* f = std::fopen("/proc/self/status", "r");
  if (f == nullptr) return "";
  char line[256];
  std::string out;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    if (std::strncmp(line, "VmLck:", 6) == 0) {
      std::string v(line + 6);
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.erase(0, 1);
      while (!v.empty() && (v.back() == '\n' || v.back() == ' ')) v.pop_back();
      out = v;
    }
  }
  std::fclose(f);
  return out;
}

}  // namespace

// The kernel's mlock, not libc's: ASan and the other sanitizer runtimes
// replace mlock() with a no-op that reports success, which would let a
// sanitizer build claim memory is locked when it is not.
bool lock_pages(void* p, std::size_t n) noexcept { return syscall(SYS_mlock, p, n) == 0; }
void unlock_pages(void* p, std::size_t n) noexcept { syscall(SYS_munlock, p, n); }

constexpr std::array<std::string_view, 3> kBackingNames{"memfd_secret", "mlock", "unlocked"};
static_assert(names_every(kBackingNames, Backing::unlocked));

std::string_view backing_name(Backing b) noexcept { return name_of(kBackingNames, b); }

std::string memlock_limit_text() {
  rlimit r{};
  if (getrlimit(RLIMIT_MEMLOCK, &r) != 0) return "unknown";
  if (r.rlim_cur == RLIM_INFINITY) return "unlimited";
  return format_size(static_cast<std::uint64_t>(r.rlim_cur));
}

Result<std::unique_ptr<Arena>> Arena::create(const ArenaOptions& options) {
  if (sodium_init() < 0) return fail("libsodium cannot be initialised");
  std::unique_ptr<Arena> a(new Arena());
  const std::size_t page = page_size();
  a->capacity_ = round_up(std::max(options.capacity, kMaxBlock), page);
  if (a->capacity_ > std::numeric_limits<Offset>::max() - page) return fail("the secret arena cannot exceed 4 GiB");
  // One guard page on each side: running off either end faults.
  a->map_size_ = a->capacity_ + 2 * page;
  void* map = mmap(nullptr, a->map_size_, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (map == MAP_FAILED) return fail(std::string("cannot reserve address space for secrets: ") + std::strerror(errno));
  a->map_ = static_cast<std::byte*>(map);
  a->base_ = a->map_ + page;
  a->by_offset_.emplace(0, static_cast<Offset>(a->capacity_));  // all of it free (and zero)
  a->by_size_.emplace(static_cast<Offset>(a->capacity_), 0);

  auto need_text = [&] {
    return "cannot lock " + format_size(a->capacity_) + " of memory for secrets: RLIMIT_MEMLOCK is " +
           memlock_limit_text() + (locked_now_text().empty() ? "" : " and " + locked_now_text() + " are locked already") +
           ". Raise it (LimitMEMLOCK= in the systemd unit, --ulimit memlock= for Docker, ulimit -l), lower "
           "cache.max_locked_bytes, or set cache.allow_unlocked_memory = true to accept memory that may be swapped";
  };

  if (options.use_memfd_secret && !memfd_secret_disabled_by_environment()) {
#ifdef SYS_memfd_secret
    int fd = static_cast<int>(syscall(SYS_memfd_secret, O_CLOEXEC));
    if (fd >= 0) {
      if (ftruncate(fd, static_cast<off_t>(a->capacity_)) == 0 &&
          mmap(a->base_, a->capacity_, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) != MAP_FAILED) {
        a->memfd_ = fd;
        a->backing_ = Backing::memfd_secret;
        // A shared mapping would be inherited by a child: keep it out.
        madvise(a->base_, a->capacity_, MADV_DONTFORK);
        a->writable_ = true;
        return a;
      }
      int e = errno;
      close(fd);
      // Pages of a secret memfd count as locked: over the limit it is EAGAIN,
      // and the mlock path below would fail the same way.
      if (e == EAGAIN || e == ENOMEM) {
        if (!options.allow_unlocked) return fail(need_text());
      }
    }
    // ENOSYS (old kernel), EINVAL/ENOSYS (secretmem disabled, e.g. Debian 12's
    // 6.1), EPERM (seccomp): the mlock path.
#endif
  }

  if (mmap(a->base_, a->capacity_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0) ==
      MAP_FAILED) {
    return fail(std::string("cannot map memory for secrets: ") + std::strerror(errno));
  }
  a->writable_ = true;
  madvise(a->base_, a->capacity_, MADV_DONTDUMP);   // never in a core dump
  madvise(a->base_, a->capacity_, MADV_WIPEONFORK);  // a child gets zeros, not secrets
  if (lock_pages(a->base_, a->capacity_)) {
    a->backing_ = Backing::mlock;
    return a;
  }
  if (!options.allow_unlocked) return fail(need_text());
  a->backing_ = Backing::unlocked;
  return a;
}

Arena::~Arena() {
  if (writable_) sodium_memzero(base_, capacity_);
  if (backing_ == Backing::mlock) unlock_pages(base_, capacity_);
  if (map_ != nullptr) munmap(map_, map_size_);
  if (memfd_ >= 0) close(memfd_);
}

void Arena::resize_free(std::map<Offset, Offset>::iterator it, Offset offset, Offset size) noexcept {
  // Node handles: a span that shrinks or grows moves between keys without
  // touching the ordinary heap.
  auto by_size = by_size_.extract({it->second, it->first});
  auto by_offset = by_offset_.extract(it);
  if (size == 0) return;  // the whole span was taken
  by_size.value() = {size, offset};
  by_offset.key() = offset;
  by_offset.mapped() = size;
  by_size_.insert(std::move(by_size));
  by_offset_.insert(std::move(by_offset));
}

void Arena::add_free(Offset offset, Offset size) noexcept {
  try {
    auto it = by_offset_.emplace(offset, size).first;
    try {
      by_size_.emplace(size, offset);
    } catch (...) {
      by_offset_.erase(it);
      throw;
    }
  } catch (...) {
    // No ordinary memory for the bookkeeping: the span (wiped) is not
    // reused, and available() stops counting it.
    lost_ += size;
  }
}

Block Arena::allocate(std::size_t n, Lifetime lifetime) noexcept {
  if (n > kMaxBlock || by_size_.empty()) return {};
  const auto need = static_cast<Offset>(block_size(n));
  if (by_size_.rbegin()->first < need) return {};  // no span is large enough
  Offset at = 0;
  if (lifetime == Lifetime::lasting) {
    // The lowest span that fits, from its bottom: lasting blocks pack
    // together at the start of the region.
    auto it = by_offset_.begin();
    while (it->second < need) ++it;  // one exists: checked above
    at = it->first;
    resize_free(it, it->first + need, it->second - need);
  } else {
    // The smallest span that fits, from its top: transient blocks stay away
    // from the lasting ones and their holes merge back when they go.
    auto fit = by_size_.lower_bound({need, std::numeric_limits<Offset>::max()});
    const Offset size = fit->first, offset = fit->second;
    at = offset + size - need;
    resize_free(by_offset_.find(offset), offset, size - need);
  }
  used_ += need;
  return Block{base_ + at, need};  // free memory is always zero
}

void Arena::release(Block b) noexcept {
  if (!b) return;
  // A block must come back as it was handed out; anything else would corrupt
  // the free spans (and wiping it could zero someone else's memory).
  if (b.data < base_ || b.data >= base_ + capacity_) std::abort();
  const auto offset = static_cast<std::size_t>(b.data - base_);
  if (offset % kAlignment != 0 || b.size == 0 || b.size % kAlignment != 0 || b.size > capacity_ - offset ||
      b.size > used_) {
    std::abort();
  }
  const auto at = static_cast<Offset>(offset);
  const Offset size = b.size;
  auto next = by_offset_.lower_bound(at);
  if (next != by_offset_.end() && next->first < at + size) std::abort();  // overlaps free memory: released twice
  auto prev = next == by_offset_.begin() ? by_offset_.end() : std::prev(next);
  if (prev != by_offset_.end() && prev->first + prev->second > at) std::abort();

  sodium_memzero(b.data, size);  // released memory is zero, so allocate() need not clear
  used_ -= size;
  const bool with_prev = prev != by_offset_.end() && prev->first + prev->second == at;
  const bool with_next = next != by_offset_.end() && at + size == next->first;
  if (with_prev && with_next) {
    const Offset merged = prev->second + size + next->second;
    resize_free(next, next->first, 0);
    resize_free(prev, prev->first, merged);
  } else if (with_prev) {
    resize_free(prev, prev->first, prev->second + size);
  } else if (with_next) {
    resize_free(next, at, size + next->second);
  } else {
    add_free(at, size);
  }
}

std::size_t Arena::largest_block() const noexcept {
  if (by_size_.empty()) return 0;
  return std::min<std::size_t>(by_size_.rbegin()->first, kMaxBlock);
}

std::optional<std::vector<std::size_t>> Arena::room_for(std::size_t n, std::span<const Block> releasable) const {
  if (n > kMaxBlock) return std::nullopt;
  const std::size_t need = block_size(n);
  if (largest_block() >= need) return std::vector<std::size_t>{};
  // The region in address order as far as it matters here: free spans and
  // the releasable blocks. A run is a stretch of them with nothing else in
  // between; releasing the releasable part of a run merges all of it.
  struct Piece {
    std::size_t offset, size;
    std::size_t index;  // into releasable; kFree for a free span
  };
  static constexpr std::size_t kFree = static_cast<std::size_t>(-1);
  std::vector<Piece> pieces;
  pieces.reserve(by_offset_.size() + releasable.size());
  for (const auto& [offset, size] : by_offset_) pieces.push_back({offset, size, kFree});
  for (std::size_t i = 0; i < releasable.size(); ++i) {
    if (releasable[i]) pieces.push_back({static_cast<std::size_t>(releasable[i].data - base_), releasable[i].size, i});
  }
  std::sort(pieces.begin(), pieces.end(), [](const Piece& a, const Piece& b) { return a.offset < b.offset; });

  // For each end, the shortest window reaching `need` costs least (costs
  // are never negative), and its start only moves forward.
  std::size_t best_cost = kFree, best_first = 0, best_last = 0;
  std::size_t first = 0, total = 0, cost = 0;
  for (std::size_t last = 0; last < pieces.size(); ++last) {
    const Piece& p = pieces[last];
    if (last > 0 && pieces[last - 1].offset + pieces[last - 1].size != p.offset) {
      first = last;  // a gap: something else lives there
      total = cost = 0;
    }
    total += p.size;
    cost += p.index == kFree ? 0 : p.size;
    while (total - pieces[first].size >= need) {
      total -= pieces[first].size;
      cost -= pieces[first].index == kFree ? 0 : pieces[first].size;
      ++first;
    }
    if (total >= need && cost < best_cost) {
      best_cost = cost;
      best_first = first;
      best_last = last;
    }
  }
  if (best_cost == kFree) return std::nullopt;
  std::vector<std::size_t> out;
  for (std::size_t i = best_first; i <= best_last; ++i) {
    if (pieces[i].index != kFree) out.push_back(pieces[i].index);
  }
  return out;
}

bool Arena::contains(const void* p) const noexcept {
  auto* b = static_cast<const std::byte*>(p);
  return b >= base_ && b < base_ + capacity_;
}

}  // namespace chitty::secure
