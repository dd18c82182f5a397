// ExpiringMap (expiring_map.hpp): TTLs on an injected clock, stale entries
// still visible to lookup(), a capacity that pushes out the oldest entry, and
// look-ups by std::string_view.
#include "chitty/base/expiring_map.hpp"

#include <algorithm>
#include <chrono>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "manual_clock.hpp"

namespace chitty {
namespace {

using namespace std::chrono_literals;
using testing::ManualClock;
using Map = ExpiringMap<std::string, std::string>;

}  // namespace

TEST_CASE("an entry is fresh for its TTL, then find() no longer returns it", "[base][expiring_map]") {
  ManualClock clock;
  Map m(clock, 10, 10s);
  m.put("vault", "id1");
  REQUIRE(m.find(std::string_view("vault")) != nullptr);
  CHECK(*m.find(std::string_view("vault")) == "id1");
  CHECK(m.find(std::string_view("other")) == nullptr);

  clock.advance(10s - 1ns);
  CHECK(m.find(std::string_view("vault")) != nullptr);
  clock.advance(1ns);
  CHECK(m.find(std::string_view("vault")) == nullptr);
  CHECK(m.size() == 1);  // stale, not dropped
}

TEST_CASE("lookup() shows a stale entry and says it is stale", "[base][expiring_map]") {
  ManualClock clock;
  Map m(clock, 10, 1min);
  CHECK(m.lookup(std::string_view("k")).value == nullptr);
  m.put("k", "v");
  auto found = m.lookup(std::string_view("k"));
  REQUIRE(found.value != nullptr);
  CHECK(found.fresh);
  clock.advance(5min);
  found = m.lookup(std::string_view("k"));
  REQUIRE(found.value != nullptr);
  CHECK(*found.value == "v");
  CHECK_FALSE(found.fresh);
}

TEST_CASE("putting a key again replaces its value and restarts its TTL", "[base][expiring_map]") {
  ManualClock clock;
  Map m(clock, 10, 10s);
  m.put("k", "old");
  clock.advance(9s);
  m.put("k", "new");
  clock.advance(9s);
  REQUIRE(m.find(std::string_view("k")) != nullptr);
  CHECK(*m.find(std::string_view("k")) == "new");
  CHECK(m.size() == 1);
}

TEST_CASE("a full map pushes out the entry put longest ago, not everything", "[base][expiring_map]") {
  ManualClock clock;
  Map m(clock, 3, 1h);
  m.put("a", "1");
  clock.advance(1s);
  m.put("b", "2");
  clock.advance(1s);
  m.put("c", "3");
  clock.advance(1s);
  m.put("a", "1'");  // put again: now the newest
  m.put("d", "4");   // evicts b, the oldest
  CHECK(m.size() == 3);
  CHECK(m.find(std::string_view("b")) == nullptr);
  CHECK(m.find(std::string_view("a")) != nullptr);
  CHECK(m.find(std::string_view("c")) != nullptr);
  CHECK(m.find(std::string_view("d")) != nullptr);
  m.put("e", "5");  // evicts c
  CHECK(m.find(std::string_view("c")) == nullptr);
  CHECK(m.size() == 3);

  SECTION("with one TTL for all, the stalest go first") {
    clock.advance(1h);  // a, d, e stale
    m.put("f", "6");
    CHECK(m.lookup(std::string_view("a")).value == nullptr);
    CHECK(m.lookup(std::string_view("d")).value != nullptr);
  }
  SECTION("a capacity of 0 is taken as 1") {
    ExpiringMap<std::string, int> one(clock, 0, 1h);
    CHECK(one.capacity() == 1);
    one.put("x", 1);
    one.put("y", 2);
    CHECK(one.size() == 1);
    CHECK(one.find(std::string_view("y")) != nullptr);
  }
}

TEST_CASE("many more keys than the capacity keep it bounded and the newest reachable", "[base][expiring_map]") {
  ManualClock clock;
  ExpiringMap<std::string, int> m(clock, 100, 1h);
  for (int i = 0; i < 1000; ++i) {
    m.put("key" + std::to_string(i), i);
    clock.advance(1ms);
  }
  CHECK(m.size() == 100);
  for (int i = 900; i < 1000; ++i) CHECK(m.find("key" + std::to_string(i)) != nullptr);
  CHECK(m.find(std::string_view("key899")) == nullptr);
  // Erasing from the middle keeps the order of the rest.
  CHECK(m.erase(std::string_view("key950")));
  m.put("new", -1);
  CHECK(m.size() == 100);
  CHECK(m.find(std::string_view("key900")) != nullptr);  // the erased one made room
  m.put("newer", -2);
  CHECK(m.find(std::string_view("key900")) == nullptr);
}

TEST_CASE("erase and clear", "[base][expiring_map]") {
  ManualClock clock;
  Map m(clock, 10, 1s);
  m.put("a", "1");
  m.put("b", "2");
  clock.advance(2s);
  CHECK(m.erase(std::string_view("a")));  // stale entries are erased too
  CHECK_FALSE(m.erase(std::string_view("a")));
  CHECK(m.size() == 1);
  m.clear();
  CHECK(m.empty());
  m.put("c", "3");  // usable after clear()
  CHECK(m.find(std::string_view("c")) != nullptr);
}

TEST_CASE("for_each visits fresh and stale entries", "[base][expiring_map]") {
  ManualClock clock;
  Map m(clock, 10, 10s);
  m.put("a", "x");
  clock.advance(20s);
  m.put("b", "x");
  m.put("c", "y");
  std::vector<std::string> keys;
  m.for_each([&keys](const std::string& k, const std::string& v) {
    if (v == "x") keys.push_back(k);
  });
  std::sort(keys.begin(), keys.end());
  CHECK(keys == std::vector<std::string>{"a", "b"});
}

TEST_CASE("a new TTL applies to new entries only, or to all", "[base][expiring_map]") {
  ManualClock clock;
  Map m(clock, 10, 30s);
  m.put("old", "1");

  SECTION("to_new: stored entries keep the TTL they were put with") {
    m.set_ttl(5s, Map::Apply::to_new);
    m.put("new", "2");
    clock.advance(10s);
    CHECK(m.find(std::string_view("old")) != nullptr);
    CHECK(m.find(std::string_view("new")) == nullptr);
    CHECK(m.ttl() == 5s);
  }
  SECTION("to_all: stored entries are judged by the new TTL at once") {
    m.set_ttl(5s, Map::Apply::to_all);
    clock.advance(10s);
    CHECK(m.find(std::string_view("old")) == nullptr);
    m.set_ttl(1min, Map::Apply::to_all);
    CHECK(m.find(std::string_view("old")) != nullptr);  // fresh again: it is 10s old
  }
}

TEST_CASE("kNever: entries that do not go stale by age", "[base][expiring_map]") {
  ManualClock clock;
  Map m(clock, 10, Map::kNever);
  m.put("vault id", "Vault Name");
  clock.advance(std::chrono::hours(24 * 365 * 100));
  CHECK(m.find(std::string_view("vault id")) != nullptr);
}

TEST_CASE("keys are found by std::string_view, std::string and literals alike", "[base][expiring_map]") {
  ManualClock clock;
  Map m(clock, 10, 1min);
  std::string key = "op://infra/db/password";
  m.put(key, "op://v/i/f");
  std::string_view view(key);
  CHECK(m.find(view) != nullptr);
  CHECK(m.find(key) != nullptr);
  CHECK(m.find("op://infra/db/password") != nullptr);
  CHECK(m.lookup(view.substr(0, view.size() - 1)).value == nullptr);
}

}  // namespace chitty
