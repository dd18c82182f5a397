#include "chitty/secure/arena.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

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

std::string_view backing_name(Backing b) noexcept {
  switch (b) {
    case Backing::memfd_secret: return "memfd_secret";
    case Backing::mlock: return "mlock";
    case Backing::unlocked: return "unlocked";
  }
  return "unlocked";
}

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
  // One guard page on each side: running off either end faults.
  a->map_size_ = a->capacity_ + 2 * page;
  void* map = mmap(nullptr, a->map_size_, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (map == MAP_FAILED) return fail(std::string("cannot reserve address space for secrets: ") + std::strerror(errno));
  a->map_ = static_cast<std::byte*>(map);
  a->base_ = a->map_ + page;

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

std::size_t Arena::class_of(std::size_t n) noexcept {
  std::size_t cls = 0;
  while (class_size(cls) < n) ++cls;
  return cls;
}

Block Arena::allocate(std::size_t n) noexcept {
  if (n > kMaxBlock) return {};
  std::size_t cls = class_of(n == 0 ? 1 : n);
  std::size_t size = class_size(cls);
  std::byte* p = nullptr;
  if (!free_[cls].empty()) {
    p = free_[cls].back();
    free_[cls].pop_back();
  } else if (bump_ + size <= capacity_) {
    p = base_ + bump_;
    bump_ += size;
  } else {
    return {};
  }
  used_ += size;
  return Block{p, static_cast<std::uint32_t>(size), static_cast<std::uint8_t>(cls)};
}

void Arena::release(Block b) noexcept {
  if (!b) return;
  sodium_memzero(b.data, b.size);  // released blocks are zero, so allocate() need not clear
  used_ -= b.size;
  try {
    free_[b.size_class].push_back(b.data);
  } catch (...) {
    // Out of memory for the free list: the block is lost, not the secret.
  }
}

bool Arena::contains(const void* p) const noexcept {
  auto* b = static_cast<const std::byte*>(p);
  return b >= base_ && b < base_ + capacity_;
}

}  // namespace chitty::secure
