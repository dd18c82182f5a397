#include <catch2/catch.hpp>

#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "chitty/secure/arena.hpp"
#include "chitty/secure/hardening.hpp"
#include "chitty/secure/sealed_value.hpp"
#include "chitty/secure/sealer.hpp"
#include "chitty/secure/secure_buffer.hpp"

using chitty::secure::Arena;
using chitty::secure::ArenaOptions;
using chitty::secure::Backing;
using chitty::secure::Block;
using chitty::secure::Cipher;
using chitty::secure::SecureBuffer;
using chitty::secure::Sealer;

namespace {

bool kernel_has_memfd_secret() {
  std::ifstream in("/sys/module/secretmem/parameters/enable");
  std::string v;
  return (in >> v) && v == "Y";
}

std::unique_ptr<Arena> arena(bool memfd, std::size_t capacity = 1 << 20) {
  ArenaOptions o;
  o.capacity = capacity;
  o.use_memfd_secret = memfd;
  auto a = Arena::create(o);
  INFO((a ? std::string() : a.error().message));
  REQUIRE(a.has_value());
  return std::move(*a);
}

bool all_zero(const std::byte* p, std::size_t n) {
  return std::all_of(p, p + n, [](std::byte b) { return b == std::byte{0}; });
}

std::span<const std::byte> bytes_of(std::string_view s) { return std::as_bytes(std::span<const char>(s.data(), s.size())); }

// Runs `body` in a child process and returns its exit code (for tests that
// change process-wide state: limits, credentials, dumpability).
template <typename F>
int in_child(F body) {
  pid_t p = fork();
  REQUIRE(p >= 0);
  if (p == 0) _exit(body());
  int status = 0;
  waitpid(p, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 100 + WTERMSIG(status);
}

}  // namespace

TEST_CASE("the arena uses memfd_secret where the kernel allows it, mlock otherwise", "[secure][arena]") {
  auto forced = arena(false);
  CHECK(forced->backing() == Backing::mlock);
  auto best = arena(true);
  CHECK(best->backing() == (kernel_has_memfd_secret() ? Backing::memfd_secret : Backing::mlock));
  setenv("CHITTY_TEST_NO_MEMFD_SECRET", "1", 1);
  CHECK(arena(true)->backing() == Backing::mlock);  // the switch for tests
  unsetenv("CHITTY_TEST_NO_MEMFD_SECRET");
}

TEST_CASE("the mlock arena is locked and left out of core dumps", "[secure][arena]") {
  auto a = arena(false, 256 * 1024);
  Block b = a->allocate(100);
  REQUIRE(b);
  // /proc/self/smaps: the mapping holding the block has the lock and no-dump flags.
  std::ifstream smaps("/proc/self/smaps");
  std::string line;
  auto addr = reinterpret_cast<std::uintptr_t>(b.data);
  bool in_mapping = false, locked = false, dontdump = false;
  while (std::getline(smaps, line)) {
    unsigned long lo = 0, hi = 0;
    // Mapping headers start with the address range; attribute lines with a name.
    if (!line.empty() && std::isxdigit(static_cast<unsigned char>(line[0])) &&
        std::sscanf(line.c_str(), "%lx-%lx", &lo, &hi) == 2) {
      in_mapping = addr >= lo && addr < hi;
      continue;
    }
    if (in_mapping && line.rfind("VmFlags:", 0) == 0) {
      locked = line.find(" lo") != std::string::npos;
      dontdump = line.find(" dd") != std::string::npos;
    }
  }
  CHECK(locked);
  CHECK(dontdump);
  a->release(b);
}

TEST_CASE("a forked child sees no secret: the arena is zeroed (mlock) or absent (memfd_secret) in it",
          "[secure][arena]") {
  for (bool memfd : {true, false}) {
    INFO("memfd_secret allowed: " << memfd);
    auto a = arena(memfd);
    Block b = a->allocate(64);
    REQUIRE(b);
    std::memset(b.data, 0x5A, b.size);
    auto addr = reinterpret_cast<std::uintptr_t>(b.data);
    int code = in_child([&] {
      // Is the block's address mapped at all in the child?
      std::ifstream maps("/proc/self/maps");
      std::string line;
      while (std::getline(maps, line)) {
        unsigned long lo = 0, hi = 0;
        if (std::sscanf(line.c_str(), "%lx-%lx", &lo, &hi) == 2 && addr >= lo && addr < hi) {
          return all_zero(b.data, b.size) ? 0 : 1;  // mapped: must read as zeros
        }
      }
      return 0;  // not mapped: nothing to read
    });
    CHECK(code == 0);
    a->release(b);
  }
}

TEST_CASE("blocks are rounded to 16 bytes, zeroed, and wiped when released", "[secure][arena]") {
  for (bool memfd : {true, false}) {
    auto a = arena(memfd);
    Block small = a->allocate(1);
    CHECK(small.size == Arena::kMinBlock);
    CHECK(a->allocate(33).size == 48);
    Block mid = a->allocate(100);
    CHECK(mid.size == 112);
    CHECK(reinterpret_cast<std::uintptr_t>(mid.data) % 16 == 0);
    Block big = a->allocate(Arena::kMaxBlock);
    CHECK(big.size == Arena::kMaxBlock);
    CHECK_FALSE(a->allocate(Arena::kMaxBlock + 1));
    CHECK(a->used() == Arena::kMinBlock + 48 + 112 + Arena::kMaxBlock);
    CHECK(all_zero(mid.data, mid.size));
    std::memset(mid.data, 0x5A, mid.size);
    std::byte* where = mid.data;
    a->release(mid);
    CHECK(all_zero(where, 112));  // wiped on release
    CHECK(a->used() == Arena::kMinBlock + 48 + Arena::kMaxBlock);
    Block again = a->allocate(97);
    CHECK(again.data == where);  // the hole it left is the best fit
    CHECK(all_zero(again.data, again.size));
    CHECK(a->contains(again.data));
    a->release(again);
    a->release(small);
    a->release(big);
    CHECK(a->used() == 48);
  }
}

TEST_CASE("a full arena says so instead of growing", "[secure][arena]") {
  auto a = arena(false, 64 * 1024);
  std::vector<Block> blocks;
  for (;;) {
    Block b = a->allocate(1024);
    if (!b) break;
    blocks.push_back(b);
  }
  CHECK(blocks.size() == a->capacity() / 1024);
  CHECK(a->available() == 0);
  a->release(blocks.back());
  CHECK(a->allocate(1024));  // room again
}

// The security review's case: a burst of one size fills the arena; once it
// is released, every other size must be served from that memory.
TEST_CASE("memory freed by one size serves every size: small after large, large after small", "[secure][arena]") {
  for (bool memfd : {true, false}) {
    INFO("memfd_secret allowed: " << memfd);
    auto a = arena(memfd, 256 * 1024);
    const std::size_t capacity = a->capacity();
    // Large answers fill it ...
    std::vector<Block> large;
    while (Block b = a->allocate(40 * 1024)) large.push_back(b);
    CHECK(large.size() == capacity / (40 * 1024));
    for (Block b : large) a->release(b);
    CHECK(a->used() == 0);
    // ... then small values of assorted sizes take all of it.
    std::vector<Block> small;
    std::size_t got = 0;
    for (std::size_t i = 0;; ++i) {
      Block b = a->allocate(16 + (i * 37) % 300);
      if (!b) break;
      got += b.size;
      small.push_back(b);
    }
    CHECK(got + a->available() == capacity);
    CHECK(a->available() < 16 + 300);  // full but for less than one more of them
    // Every other one released: only small holes, so no large block fits ...
    for (std::size_t i = 0; i < small.size(); i += 2) a->release(small[i]);
    CHECK_FALSE(a->allocate(4 * 1024));
    // ... until the rest go too, and the holes merge back into whole blocks.
    for (std::size_t i = 1; i < small.size(); i += 2) a->release(small[i]);
    CHECK(a->used() == 0);
    std::size_t maximal = 0;
    while (Block b = a->allocate(Arena::kMaxBlock)) ++maximal;
    CHECK(maximal == capacity / Arena::kMaxBlock);
  }
}

TEST_CASE("neighbouring free blocks merge, whichever is released first", "[secure][arena]") {
  auto a = arena(false, 64 * 1024);
  REQUIRE(a->capacity() == 64 * 1024);
  CHECK(a->free_spans() == 1);
  Block q[4];
  for (Block& b : q) b = a->allocate(16 * 1024);  // transient: from the top down
  CHECK(q[1].data + q[1].size == q[0].data);
  CHECK(q[3].data == a->region().data());
  CHECK(a->free_spans() == 0);
  CHECK(a->largest_block() == 0);
  a->release(q[1]);
  a->release(q[3]);
  CHECK(a->free_spans() == 2);
  CHECK(a->largest_block() == 16 * 1024);
  CHECK_FALSE(a->allocate(16 * 1024 + 1));
  a->release(q[2]);  // joins the free blocks on both sides
  CHECK(a->free_spans() == 1);
  CHECK(a->largest_block() == 48 * 1024);
  Block joined = a->allocate(48 * 1024);
  CHECK(joined.data == a->region().data());
  a->release(joined);
  a->release(q[0]);
  CHECK(a->free_spans() == 1);
  CHECK(a->largest_block() == Arena::kMaxBlock);
  CHECK(a->available() == a->capacity());
}

TEST_CASE("lasting blocks pack from the bottom, transient ones from the top", "[secure][arena]") {
  auto a = arena(false, 256 * 1024);
  const std::byte* bottom = a->region().data();
  const std::byte* top = bottom + a->capacity();
  Block kept1 = a->allocate(100, chitty::secure::Lifetime::lasting);
  Block kept2 = a->allocate(100, chitty::secure::Lifetime::lasting);
  Block passing = a->allocate(1000);
  CHECK(kept1.data == bottom);
  CHECK(kept2.data == bottom + 112);
  CHECK(passing.data + passing.size == top);
  a->release(kept1);
  // A lasting block takes the lowest hole that fits, not the larger span above.
  Block kept3 = a->allocate(50, chitty::secure::Lifetime::lasting);
  CHECK(kept3.data == bottom);
  a->release(kept2);
  a->release(kept3);
  a->release(passing);
  CHECK(a->free_spans() == 1);
}

// /health reports available() and largest_block(): both must be true
// promises, through any history of allocations.
TEST_CASE("what the arena reports as available can be allocated, exactly", "[secure][arena]") {
  for (bool memfd : {true, false}) {
    INFO("memfd_secret allowed: " << memfd);
    auto a = arena(memfd, 512 * 1024);
    std::mt19937 rng(20240611);
    std::vector<Block> live;
    auto check_promises = [&] {
      REQUIRE(a->used() + a->available() == a->capacity());
      std::size_t largest = a->largest_block();
      if (largest == 0) {
        CHECK_FALSE(a->allocate(1));
        return;
      }
      Block b = a->allocate(largest);  // the reported size is allocatable
      REQUIRE(b);
      if (largest < Arena::kMaxBlock) CHECK_FALSE(a->allocate(largest + 1));  // and nothing larger
      a->release(b);
    };
    for (int step = 0; step < 4000; ++step) {
      bool grow = live.empty() || rng() % 100 < 55;
      if (grow) {
        std::size_t n = rng() % 8 == 0 ? 1 + rng() % Arena::kMaxBlock : 1 + rng() % 2000;
        auto lifetime = rng() % 2 == 0 ? chitty::secure::Lifetime::lasting : chitty::secure::Lifetime::transient;
        Block b = a->allocate(n, lifetime);
        if (b) {
          CHECK(b.size == Arena::block_size(n));
          std::memset(b.data, 0xA5, b.size);
          live.push_back(b);
        } else {
          CHECK(Arena::block_size(n) > a->largest_block());  // refused only when it does not fit
        }
      } else {
        std::size_t i = rng() % live.size();
        a->release(live[i]);
        live[i] = live.back();
        live.pop_back();
      }
      if (step % 50 == 0) check_promises();
    }
    // Draining: the available bytes are exactly what can still be handed out.
    const std::size_t promised = a->available();
    std::size_t drained = 0;
    while (std::size_t n = a->largest_block()) {
      Block b = a->allocate(n);
      REQUIRE(b);
      drained += b.size;
      live.push_back(b);
    }
    CHECK(drained == promised);
    CHECK(a->available() == 0);
    CHECK_FALSE(a->allocate(1));
    for (Block b : live) a->release(b);
    CHECK(a->used() == 0);
    CHECK(a->free_spans() == 1);
    CHECK(all_zero(a->region().data(), a->region().size()));  // everything released was wiped
  }
}

TEST_CASE("room_for names the fewest bytes to release, or says no release would do", "[secure][arena]") {
  auto a = arena(false, 64 * 1024);
  // Mine and theirs, alternating, 4 KiB each, from the bottom.
  std::vector<Block> mine, theirs;
  for (int i = 0; i < 16; ++i) {
    (i % 4 == 3 ? theirs : mine).push_back(a->allocate(4096, chitty::secure::Lifetime::lasting));
  }
  REQUIRE(a->available() == 0);
  // Runs of mine: 3 blocks (12 KiB) between theirs.
  auto nothing = a->room_for(16 * 1024, mine);
  CHECK_FALSE(nothing.has_value());  // no run of mine is that large: release none
  auto plan = a->room_for(8 * 1024, mine);
  REQUIRE(plan.has_value());
  CHECK(plan->size() == 2);  // two neighbours, not all twelve
  a->release(theirs[0]);     // a free 4 KiB span next to a run of mine
  plan = a->room_for(8 * 1024, mine);
  REQUIRE(plan.has_value());
  CHECK(plan->size() == 1);  // with the free span, one of mine is enough
  for (std::size_t i : *plan) a->release(std::exchange(mine[i], Block{}));
  CHECK(a->allocate(8 * 1024));
  CHECK(a->room_for(100, mine)->empty() == (a->largest_block() >= 112));
}

TEST_CASE("a block released twice stops the process instead of corrupting the arena", "[secure][arena]") {
  int code = in_child([] {
    std::signal(SIGABRT, SIG_DFL);  // the test framework's handler would report it as a failure
    auto a = Arena::create(ArenaOptions{64 * 1024, false, false});
    if (!a) return 1;
    Block b = (*a)->allocate(100);
    (*a)->release(b);
    (*a)->release(b);
    return 0;
  });
  CHECK(code == 100 + SIGABRT);
}

TEST_CASE("comparing with a sealed value distinguishes 'no memory to look' from 'different'", "[secure][sealed]") {
  auto a = arena(false, 64 * 1024);
  auto sealer = std::move(*Sealer::create(*a));
  std::string token = "sos-0123456789abcdef";
  auto v = chitty::secure::SealedValue::seal(*a, *sealer, token, "emergency-token");
  REQUIRE(v);
  using chitty::secure::Comparison;
  CHECK(v.compare(token) == Comparison::equal);
  CHECK(v.compare(std::string_view("sos-0123456789abcdeX")) == Comparison::different);
  // The arena exhausted by values in flight: nothing can be opened, so
  // nothing is known about the presented bytes.
  std::vector<SecureBuffer> hog;
  while (SecureBuffer b = SecureBuffer::allocate(*a, std::max<std::size_t>(a->largest_block(), 1))) {
    hog.push_back(std::move(b));
  }
  REQUIRE(a->available() == 0);
  CHECK(v.compare(token) == Comparison::unavailable);
  CHECK(v.compare(std::string_view("sos-0123456789abcdeX")) == Comparison::unavailable);
  CHECK(v.compare(std::string_view("short")) == Comparison::different);  // the length alone tells
  hog.pop_back();
  CHECK(v.compare(token) == Comparison::equal);
}

TEST_CASE("locking beyond RLIMIT_MEMLOCK is refused with the limit, the need and the remedy", "[secure][arena]") {
  for (bool memfd : {true, false}) {
    INFO("memfd_secret allowed: " << memfd);
    int code = in_child([memfd] {
      // An unprivileged process (no CAP_IPC_LOCK) with a 64 KiB limit.
      if (geteuid() == 0 && (setresgid(4242, 4242, 4242) != 0 || setresuid(4242, 4242, 4242) != 0)) return 10;
      rlimit r{64 * 1024, 64 * 1024};
      if (setrlimit(RLIMIT_MEMLOCK, &r) != 0) return 11;
      ArenaOptions o;
      o.capacity = 1 << 20;
      o.use_memfd_secret = memfd;
      auto a = Arena::create(o);
      if (a) return 12;
      const std::string& m = a.error().message;
      if (m.find("RLIMIT_MEMLOCK is 64KiB") == std::string::npos) return 13;
      if (m.find("cannot lock 1MiB") == std::string::npos) return 14;
      if (m.find("LimitMEMLOCK=") == std::string::npos) return 15;
      if (m.find("allow_unlocked_memory") == std::string::npos) return 16;
      o.allow_unlocked = true;
      auto u = Arena::create(o);
      if (!u || (*u)->backing() != Backing::unlocked) return 17;
      return 0;
    });
    CHECK(code == 0);
  }
}

TEST_CASE("a SecureBuffer holds bytes in the arena and wipes them when it dies", "[secure][buffer]") {
  auto a = arena(false);
  std::byte* where = nullptr;
  {
    SecureBuffer b = SecureBuffer::allocate(*a, 48);
    REQUIRE(b);
    CHECK(b.capacity() == 48);
    CHECK(b.append("correct horse "));
    CHECK(b.append("battery staple"));
    CHECK(std::string_view(b.data(), b.size()) == "correct horse battery staple");
    CHECK_FALSE(b.append(std::string(100, 'x')));  // beyond capacity: refused, nothing written
    CHECK(b.size() == 28);
    CHECK(a->contains(b.data()));
    where = reinterpret_cast<std::byte*>(b.data());
    SecureBuffer moved = std::move(b);
    CHECK_FALSE(b);
    CHECK(moved.size() == 28);
    CHECK(moved.resize(7));
    CHECK(std::string_view(moved.data(), moved.size()) == "correct");
    CHECK(all_zero(where + 7, 21));  // shrinking wipes the tail
  }
  CHECK(all_zero(where, 48));
  CHECK(a->used() == 0);
  CHECK_FALSE(SecureBuffer::allocate(*a, Arena::kMaxBlock + 1));
}

TEST_CASE("seal and open round-trip with both ciphers", "[secure][sealer]") {
  for (bool aes : {true, false}) {
    for (bool memfd : {true, false}) {
      auto a = arena(memfd);
      auto s = Sealer::create(*a, aes);
      REQUIRE(s.has_value());
      Sealer& sealer = **s;
      if (!aes) CHECK(sealer.cipher() == Cipher::xchacha20poly1305);
      INFO(cipher_name(sealer.cipher()));
      std::string secret = "sk-live-" + std::string(180, 'q');
      std::vector<std::byte> sealed(sealer.sealed_size(secret.size()));
      sealer.seal(bytes_of(secret), "op://vault/item/field", sealed.data());
      CHECK(std::search(sealed.begin(), sealed.end(), bytes_of("sk-live").begin(), bytes_of("sk-live").end()) ==
            sealed.end());  // no plaintext in the sealed form
      std::vector<std::byte> out(secret.size());
      REQUIRE(sealer.open(sealed, "op://vault/item/field", out.data()));
      CHECK(std::memcmp(out.data(), secret.data(), secret.size()) == 0);
    }
  }
}

TEST_CASE("tampering and a swapped reference are detected", "[secure][sealer]") {
  for (bool aes : {true, false}) {
    auto a = arena(false);
    auto sealer = std::move(*Sealer::create(*a, aes));
    INFO(cipher_name(sealer->cipher()));
    std::string secret = "postgres://user:pw@db/prod";
    std::vector<std::byte> sealed(sealer->sealed_size(secret.size()));
    sealer->seal(bytes_of(secret), "op://v/i/f", sealed.data());
    std::vector<std::byte> out(secret.size());
    // Every single flipped bit anywhere (nonce, ciphertext, tag) is rejected.
    for (std::size_t i = 0; i < sealed.size(); ++i) {
      auto copy = sealed;
      copy[i] ^= std::byte{0x01};
      std::memset(out.data(), 0x77, out.size());
      CHECK_FALSE(sealer->open(copy, "op://v/i/f", out.data()));
      CHECK(all_zero(out.data(), out.size()));  // nothing half-decrypted left behind
    }
    CHECK_FALSE(sealer->open(sealed, "op://v/i/other", out.data()));  // moved to another reference
    CHECK_FALSE(sealer->open(std::span(sealed).first(sealed.size() - 1), "op://v/i/f", out.data()));
    auto other = std::move(*Sealer::create(*a, aes));
    CHECK_FALSE(other->open(sealed, "op://v/i/f", out.data()));  // another key
    CHECK(sealer->open(sealed, "op://v/i/f", out.data()));
  }
}

TEST_CASE("sealing the same value twice never gives the same bytes", "[secure][sealer]") {
  auto a = arena(false);
  auto sealer = std::move(*Sealer::create(*a));
  // (Sealed bytes, kept as strings: GCC 12 at -O3 warns, wrongly, about the
  // memcmp inside std::vector<std::byte>'s ordering.)
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    std::vector<std::byte> sealed(sealer->sealed_size(5));
    sealer->seal(bytes_of("hello"), "op://v/i/f", sealed.data());
    seen.emplace(reinterpret_cast<const char*>(sealed.data()), sealed.size());
  }
  CHECK(seen.size() == 1000);
}

TEST_CASE("hardening makes the process non-dumpable with no core limit", "[secure][hardening]") {
  int code = in_child([] {
    if (chitty::secure::process_non_dumpable()) return 20;  // dumpable before
    if (!chitty::secure::harden_process()) return 21;
    if (!chitty::secure::process_non_dumpable()) return 22;
    rlimit r{};
    getrlimit(RLIMIT_CORE, &r);
    if (r.rlim_cur != 0 || r.rlim_max != 0) return 23;
    return 0;
  });
  CHECK(code == 0);
}

TEST_CASE("backings have the names /health reports", "[secure]") {
  using chitty::secure::Backing;
  CHECK(chitty::secure::backing_name(Backing::memfd_secret) == "memfd_secret");
  CHECK(chitty::secure::backing_name(Backing::mlock) == "mlock");
  CHECK(chitty::secure::backing_name(Backing::unlocked) == "unlocked");
}
