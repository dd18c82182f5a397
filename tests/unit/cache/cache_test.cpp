#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "chitty/cache/cache.hpp"
#include "chitty/cache/single_flight.hpp"
#include "manual_clock.hpp"

using namespace std::chrono_literals;
using chitty::cache::Cache;
using chitty::cache::Freshness;
using chitty::cache::Meta;
using chitty::cache::Miss;
using chitty::cache::Mode;
using chitty::cache::Options;
using chitty::cache::SingleFlight;
using chitty::testing::ManualClock;

namespace {

struct Fixture {
  std::unique_ptr<chitty::secure::Arena> arena;
  std::unique_ptr<chitty::secure::Sealer> sealer;
  ManualClock clock;
  std::unique_ptr<Cache> cache;

  explicit Fixture(Options o = Options{}, std::size_t arena_bytes = 1 << 20) {
    chitty::secure::ArenaOptions ao;
    ao.capacity = arena_bytes;
    ao.use_memfd_secret = false;  // the key stays out of the arena: region() is all cache
    arena = std::move(*chitty::secure::Arena::create(ao));
    sealer = std::move(*chitty::secure::Sealer::create(*arena));
    cache = std::make_unique<Cache>(*arena, *sealer, clock, std::move(o));
  }

  void put(const std::string& key, const std::string& value, const std::string& category = "") {
    auto r = cache->put(key, std::span<const char>(value.data(), value.size()), Meta{"env", category});
    INFO((r ? std::string() : r.error().message));
    REQUIRE(r.has_value());
  }

  std::string value_of(chitty::cache::Served& s) { return std::string(s.value.data(), s.value.size()); }

  bool region_is_zero() const {
    auto r = arena->region();
    return std::all_of(r.begin(), r.end(), [](std::byte b) { return b == std::byte{0}; });
  }

  bool region_contains(const std::string& needle) const {
    auto r = arena->region();
    auto n = std::as_bytes(std::span<const char>(needle.data(), needle.size()));
    return std::search(r.begin(), r.end(), n.begin(), n.end()) != r.end();
  }
};

}  // namespace

TEST_CASE("a value is fresh for its TTL, then due for a fetch", "[cache][ttl]") {
  Fixture f;
  f.put("op://v/i/f", "s3cret");
  auto s = f.cache->get("op://v/i/f");
  REQUIRE(s.has_value());
  CHECK(f.value_of(*s) == "s3cret");
  CHECK(s->freshness == Freshness::fresh);
  CHECK(s->source == "env");
  CHECK(s->expires_at == s->fetched_at + 5min);
  f.clock.advance(5min - 1ms);
  CHECK(f.cache->get("op://v/i/f").has_value());
  f.clock.advance(1ms);
  auto expired = f.cache->get("op://v/i/f");
  REQUIRE_FALSE(expired.has_value());
  CHECK(expired.error() == Miss::expired);
  CHECK(f.cache->stats().entries == 1);  // kept: it may still bridge an outage
}

TEST_CASE("per-category TTLs override the default", "[cache][ttl]") {
  Options o;
  o.category_ttl = {{"integration", 1h}, {"service", 30s}};
  Fixture f(o);
  f.put("op://v/a/f", "a", "integration");
  f.put("op://v/b/f", "b", "service");
  f.put("op://v/c/f", "c", "other");
  f.clock.advance(31s);
  CHECK(f.cache->get("op://v/a/f").has_value());
  CHECK_FALSE(f.cache->get("op://v/b/f").has_value());
  CHECK(f.cache->get("op://v/c/f").has_value());
  f.clock.advance(5min);
  CHECK(f.cache->get("op://v/a/f").has_value());
  CHECK_FALSE(f.cache->get("op://v/c/f").has_value());
}

TEST_CASE("in fallback mode values are served stale up to the window, per entry, then never", "[cache][fallback]") {
  Fixture f;
  f.put("op://v/early/f", "early");
  f.clock.advance(3min);
  f.put("op://v/late/f", "late");
  f.cache->set_mode(Mode::fallback);

  // 14m59.999s after "early" was fetched: stale but served.
  f.clock.advance(12min - 1ms);
  auto early = f.cache->get("op://v/early/f");
  REQUIRE(early.has_value());
  CHECK(early->freshness == Freshness::stale);
  CHECK(f.value_of(*early) == "early");
  // 15 minutes exactly: fails closed, and the entry is wiped.
  f.clock.advance(1ms);
  auto gone = f.cache->get("op://v/early/f");
  REQUIRE_FALSE(gone.has_value());
  CHECK(gone.error() == Miss::too_old);
  CHECK(f.cache->stats().entries == 1);
  // "late" has its own clock: 12 minutes old, still served.
  auto late = f.cache->get("op://v/late/f");
  REQUIRE(late.has_value());
  CHECK(late->freshness == Freshness::stale);
  f.clock.advance(3min);
  CHECK(f.cache->get("op://v/late/f").error() == Miss::too_old);
}

TEST_CASE("stale values are not served in normal mode, but get_stale can bridge a failed fetch", "[cache][fallback]") {
  Fixture f;
  f.put("op://v/i/f", "value");
  f.clock.advance(10min);
  CHECK(f.cache->get("op://v/i/f").error() == Miss::expired);
  auto bridge = f.cache->get_stale("op://v/i/f");
  REQUIRE(bridge.has_value());
  CHECK(bridge->freshness == Freshness::stale);
  f.clock.advance(5min);
  CHECK(f.cache->get_stale("op://v/i/f").error() == Miss::too_old);
}

TEST_CASE("back in normal mode, fresh values are served as fresh", "[cache][fallback]") {
  Fixture f;
  f.put("op://v/i/f", "value");
  f.cache->set_mode(Mode::fallback);
  CHECK(f.cache->get("op://v/i/f")->freshness == Freshness::fresh);
  f.cache->set_mode(Mode::normal);
  CHECK(f.cache->get("op://v/i/f")->freshness == Freshness::fresh);
}

TEST_CASE("the entry cap evicts the least recently used", "[cache][lru]") {
  Options o;
  o.max_entries = 3;
  Fixture f(o);
  f.put("op://v/a/f", "a");
  f.put("op://v/b/f", "b");
  f.put("op://v/c/f", "c");
  REQUIRE(f.cache->get("op://v/a/f").has_value());  // a is now the most recent
  f.put("op://v/d/f", "d");                          // evicts b
  CHECK(f.cache->get("op://v/b/f").error() == Miss::absent);
  CHECK(f.cache->get("op://v/a/f").has_value());
  CHECK(f.cache->get("op://v/c/f").has_value());
  CHECK(f.cache->get("op://v/d/f").has_value());
  CHECK(f.cache->stats().entries == 3);
  CHECK(f.cache->stats().evictions == 1);
}

TEST_CASE("the locked-bytes cap evicts, and evicted memory is wiped", "[cache][lru]") {
  Options o;
  o.max_locked_bytes = 4096;
  Fixture f(o, 256 * 1024);
  std::string value(900, 'x');  // sealed: 900 + 28 -> a 928-byte block
  for (int i = 0; i < 10; ++i) f.put("op://v/i" + std::to_string(i) + "/f", value);
  auto st = f.cache->stats();
  CHECK(st.locked_bytes <= 4096);
  CHECK(st.entries == 4);
  CHECK(st.evictions == 6);
  CHECK(f.arena->used() == st.locked_bytes);
  CHECK(f.cache->get("op://v/i9/f").has_value());
  CHECK(f.cache->get("op://v/i0/f").error() == Miss::absent);
  f.cache->clear();
  CHECK(f.arena->used() == 0);
  CHECK(f.region_is_zero());  // nothing of any entry, evicted or cleared, remains
}

namespace {

// Answers in flight (SecureBuffers a slow client pins) holding every byte
// the cache does not: what a burst of large responses leaves behind.
std::vector<chitty::secure::SecureBuffer> pin_the_rest(chitty::secure::Arena& arena) {
  std::vector<chitty::secure::SecureBuffer> pinned;
  for (std::size_t n = chitty::secure::Arena::kMaxBlock; n > 0; n /= 2) {
    while (auto b = chitty::secure::SecureBuffer::allocate(arena, n)) pinned.push_back(std::move(b));
  }
  return pinned;
}

}  // namespace

TEST_CASE("a put that finds no room evicts nothing: the cache survives a burst of answers", "[cache][memory]") {
  Fixture f(Options{}, 64 * 1024);
  const std::string small(50, 's');  // sealed: 78 bytes
  for (int i = 0; i < 20; ++i) f.put("op://v/e" + std::to_string(i) + "/f", small);
  auto pinned = pin_the_rest(*f.arena);
  REQUIRE(f.arena->available() == 0);
  // Larger than all twenty entries together: evicting cannot make room.
  const std::string big(4000, 'b');
  auto r = f.cache->put("op://v/big/f", std::span<const char>(big.data(), big.size()), Meta{"env", ""});
  CHECK_FALSE(r.has_value());
  CHECK(f.cache->stats().entries == 20);
  CHECK(f.cache->stats().evictions == 0);
  // Once the answers are written, their memory serves the cache again.
  pinned.clear();
  f.put("op://v/big/f", big);
  CHECK(f.cache->stats().entries == 21);
  CHECK(f.cache->stats().evictions == 0);
  for (int i = 0; i < 20; ++i) CHECK(f.cache->get("op://v/e" + std::to_string(i) + "/f").has_value());
}

TEST_CASE("when values in flight hold the arena, a put evicts only the entries in its way", "[cache][memory]") {
  Fixture f(Options{}, 64 * 1024);
  const std::string small(50, 's');  // 80-byte blocks, side by side
  for (int i = 0; i < 20; ++i) f.put("op://v/e" + std::to_string(i) + "/f", small);
  auto pinned = pin_the_rest(*f.arena);
  REQUIRE(f.arena->available() == 0);
  const std::string medium(200, 'm');  // a 240-byte block: three neighbours' worth
  f.put("op://v/medium/f", medium);
  CHECK(f.cache->stats().evictions == 3);
  CHECK(f.cache->stats().entries == 18);
  pinned.clear();
  auto served = f.cache->get("op://v/medium/f");
  REQUIRE(served.has_value());
  CHECK(f.value_of(*served) == medium);
}

TEST_CASE("the caps still evict in LRU order, and only as far as they need", "[cache][lru]") {
  Options o;
  o.max_locked_bytes = 8 * 80;  // eight 80-byte entries
  Fixture f(o, 64 * 1024);
  const std::string small(50, 's');
  for (int i = 0; i < 8; ++i) f.put("op://v/e" + std::to_string(i) + "/f", small);
  REQUIRE(f.cache->get("op://v/e0/f").has_value());  // e0 becomes the most recent
  f.put("op://v/new/f", std::string(100, 'n'));      // 128 bytes: two must go, e1 and e2
  CHECK(f.cache->stats().evictions == 2);
  CHECK(f.cache->get("op://v/e1/f").error() == Miss::absent);
  CHECK(f.cache->get("op://v/e2/f").error() == Miss::absent);
  CHECK(f.cache->get("op://v/e0/f").has_value());
  CHECK(f.cache->get("op://v/e3/f").has_value());
}

TEST_CASE("the arena never holds plaintext: only sealed bytes between requests", "[cache][seal]") {
  Fixture f;
  std::string secret = "ghp_ThisIsAVeryRecognisableSecretValue0123456789";
  f.put("op://v/i/f", secret);
  CHECK_FALSE(f.region_contains(secret));
  {
    auto s = f.cache->get("op://v/i/f");
    REQUIRE(s.has_value());
    CHECK(f.region_contains(secret));  // while being served, in a SecureBuffer
  }
  CHECK_FALSE(f.region_contains(secret));  // wiped as soon as it is released
}

TEST_CASE("a value too large to cache is refused; an oversize entry never lands", "[cache]") {
  Fixture f;
  std::string huge(chitty::secure::Arena::kMaxBlock, 'h');
  auto r = f.cache->put("op://v/i/f", std::span<const char>(huge.data(), huge.size()), Meta{"env", ""});
  CHECK_FALSE(r.has_value());
  CHECK(f.cache->stats().entries == 0);
}

TEST_CASE("refresh replaces a value; invalidation forgets it", "[cache]") {
  Fixture f;
  f.put("op://v/i/f", "old");
  f.clock.advance(4min);
  f.put("op://v/i/f", "new");  // a forced refresh stores the new value, fetched now
  {
    auto s = f.cache->get("op://v/i/f");
    REQUIRE(s.has_value());
    CHECK(f.value_of(*s) == "new");
    CHECK(s->age == 0s);
  }  // the opened copy is wiped and returned here
  CHECK(f.cache->stats().entries == 1);
  CHECK(f.cache->invalidate("op://v/i/f"));
  CHECK_FALSE(f.cache->invalidate("op://v/i/f"));
  CHECK(f.cache->get("op://v/i/f").error() == Miss::absent);
  CHECK(f.arena->used() == 0);
}

TEST_CASE("sweep wipes what can never be served again", "[cache]") {
  Fixture f;
  f.put("op://v/a/f", "a");
  f.clock.advance(10min);
  f.put("op://v/b/f", "b");
  f.clock.advance(5min);
  CHECK(f.cache->sweep() == 1);
  CHECK(f.cache->stats().entries == 1);
}

TEST_CASE("single-flight: 1000 concurrent misses make one fetch, and all get the outcome", "[cache][single-flight]") {
  SingleFlight<std::string> flight;
  int fetches = 0;
  int delivered = 0;
  for (int i = 0; i < 1000; ++i) {
    bool first = flight.join("op://v/i/f", [&](const std::string& outcome) {
      CHECK(outcome == "value");
      ++delivered;
    });
    if (first) ++fetches;
  }
  CHECK(fetches == 1);
  CHECK(flight.waiting("op://v/i/f") == 1000);
  CHECK(flight.join("op://v/other/f", [](const std::string&) {}));  // another key: its own fetch
  flight.complete("op://v/i/f", "value");
  CHECK(delivered == 1000);
  CHECK(flight.waiting("op://v/i/f") == 0);
  CHECK(flight.flights() == 1);
}

TEST_CASE("single-flight: a waiter may start the next flight from its callback", "[cache][single-flight]") {
  SingleFlight<int> flight;
  bool started_again = false;
  flight.join("k", [&](const int&) { started_again = flight.join("k", [](const int&) {}); });
  flight.complete("k", 1);
  CHECK(started_again);
  CHECK(flight.waiting("k") == 1);
}

TEST_CASE("held() says when a value was fetched and until when it is fresh, without counting a lookup",
          "[cache][predict]") {
  Fixture f;
  CHECK_FALSE(f.cache->held("op://v/i/f"));
  f.put("op://v/i/f", "s3cret");
  const auto fetched = f.clock.now();
  f.clock.advance(2min);
  auto h = f.cache->held("op://v/i/f");
  REQUIRE(h);
  CHECK(h->fetched_at == fetched);
  CHECK(h->fresh_until() == fetched + 5min);
  auto st = f.cache->stats();
  CHECK(st.hits + st.misses + st.stale_hits == 0);
  f.cache->invalidate("op://v/i/f");
  CHECK_FALSE(f.cache->held("op://v/i/f"));
}
