#include <catch2/catch.hpp>

#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <set>
#include <string>
#include <vector>

#include "chitty/secure/arena.hpp"
#include "chitty/secure/hardening.hpp"
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

TEST_CASE("blocks come in size classes, zeroed, and are wiped when released", "[secure][arena]") {
  for (bool memfd : {true, false}) {
    auto a = arena(memfd);
    Block small = a->allocate(1);
    CHECK(small.size == Arena::kMinBlock);
    CHECK(a->allocate(33).size == 48);  // 1.5x steps between the powers of two
    Block mid = a->allocate(100);
    CHECK(mid.size == 128);
    CHECK(reinterpret_cast<std::uintptr_t>(mid.data) % 16 == 0);
    Block big = a->allocate(Arena::kMaxBlock);
    CHECK(big.size == Arena::kMaxBlock);
    CHECK_FALSE(a->allocate(Arena::kMaxBlock + 1));
    CHECK(a->used() == Arena::kMinBlock + 48 + 128 + Arena::kMaxBlock);
    CHECK(all_zero(mid.data, mid.size));
    std::memset(mid.data, 0x5A, mid.size);
    std::byte* where = mid.data;
    a->release(mid);
    CHECK(all_zero(where, 128));  // wiped on release
    CHECK(a->used() == Arena::kMinBlock + 48 + Arena::kMaxBlock);
    Block again = a->allocate(97);
    CHECK(again.data == where);  // reused from its class
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
  std::set<std::vector<std::byte>> seen;
  for (int i = 0; i < 1000; ++i) {
    std::vector<std::byte> sealed(sealer->sealed_size(5));
    sealer->seal(bytes_of("hello"), "op://v/i/f", sealed.data());
    seen.insert(sealed);
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
