// The prefetcher on a real broker and cache with a fake upstream and a
// manual clock: refresh-ahead, start-up and co-access prefetches, the
// budgets, policy and revocation, the audit events, and the model file.
#include <catch2/catch.hpp>

#include <fstream>

#include "broker_fixture.hpp"
#include "chitty/predict/model_file.hpp"
#include "chitty/predict/prefetcher.hpp"
#include "chitty/secure/mac_key.hpp"
#include "temp_dir.hpp"

using namespace std::chrono_literals;
using chitty::broker::CacheState;
using chitty::predict::Kind;
using chitty::predict::Model;
using chitty::predict::Prefetcher;
using chitty::testing::caller_with_uid;
using chitty::testing::Fixture;

namespace {

struct Predicting : Fixture {
  chitty::audit::MemoryRecorder audit;
  std::unique_ptr<Model> model;
  std::unique_ptr<Prefetcher> prefetcher;
  int misses = 0;
  int served = 0;

  explicit Predicting(chitty::predict::PrefetchOptions o = {}) {
    model = std::make_unique<Model>(chitty::predict::Options{}, clock);
    prefetcher = std::make_unique<Prefetcher>(*model, *broker, audit, clock, o);
    prefetcher->set_jitter_source([] { return 0.5; });
    broker->on_read([this](const chitty::broker::Read& r) { prefetcher->on_read(r); });
  }

  // A read by `who`; a fetch it starts is answered at once. Counts misses.
  void read(const std::string& ref, const chitty::identity::Identity* who = nullptr) {
    chitty::broker::Ask a;
    a.ref = *chitty::catalog::parse_reference(ref);
    auto slot = ask(std::move(a), who);
    while (!slot->has_value() && primary->pending() > 0) primary->answer("value-of-" + ref);
    REQUIRE(slot->has_value());
    REQUIRE((*slot)->outcome.has_value());
    ++served;
    if ((*slot)->outcome->cache == CacheState::miss) ++misses;
  }
  // What the prefetcher started is answered (the upstream's latency: one step).
  int answer_prefetches() {
    int n = 0;
    while (primary->pending() > 0) {
      primary->answer("prefetched");
      ++n;
    }
    return n;
  }
  std::size_t prefetch_events() const {
    std::size_t n = 0;
    for (const auto& e : audit.recent(4096)) n += e.kind == chitty::audit::Kind::prefetch ? 1 : 0;
    return n;
  }
};

std::string canonical(const std::string& ref) { return chitty::catalog::parse_reference(ref)->canonical(); }

chitty::identity::Identity restarted(uid_t uid, pid_t pid) {
  auto id = caller_with_uid(uid);
  id.pid = chitty::identity::Fact<pid_t>::known(pid);
  return id;
}

}  // namespace

TEST_CASE("refresh-ahead keeps a value that is being read fresh across many TTLs: one miss, the first",
          "[predict][refresh]") {
  Predicting p;
  int upstream_fetches = 0;
  // Reads at irregular intervals (no period to learn), for two hours: 24
  // TTLs of 5 minutes.
  const std::chrono::seconds gaps[] = {7s, 13s, 4s, 19s, 9s, 16s};
  const auto start = p.clock.now();
  for (std::size_t step = 0; p.clock.now() - start < 2h; ++step) {
    p.read("op://Infra/Postgres/password");
    for (auto s = 0s; s < gaps[step % std::size(gaps)]; s += 1s) {
      p.clock.advance(1s);
      p.prefetcher->tick();
      upstream_fetches += p.answer_prefetches();
    }
  }
  CHECK(p.misses == 1);
  // Refreshed at 0.925 of the TTL (0.95 less half the jitter): about 26
  // fetches in two hours, never one per read.
  CHECK(upstream_fetches >= 24);
  CHECK(upstream_fetches <= 28);
  CHECK(p.prefetcher->counts(Kind::refresh).issued == static_cast<std::uint64_t>(upstream_fetches));
  CHECK(p.prefetch_events() > 0);
}

TEST_CASE("a value nobody reads again is left to expire", "[predict][refresh]") {
  Predicting p;
  p.read("op://Infra/Postgres/password");  // the miss that fetched it
  for (int i = 0; i < 60; ++i) {
    p.clock.advance(10s);
    p.prefetcher->tick();
  }
  CHECK(p.primary->pending() == 0);
  CHECK(p.prefetcher->counts(Kind::refresh).issued == 0);
}

TEST_CASE("a value read once that another reference's read brings is left to it; read twice, it is refreshed",
          "[predict][refresh][coaccess]") {
  Predicting p;
  const std::string a = "op://Infra/Postgres/password";
  const std::string b = "op://Infra/Redis/password";
  // B follows A, three times, at irregular intervals (no period): the pair
  // is learnt.
  for (auto gap : {10min, 13min, 18min}) {
    p.read(a);
    p.answer_prefetches();
    p.clock.advance(1s);
    p.read(b);
    p.clock.advance(gap);  // both expired
    p.prefetcher->tick();
    p.answer_prefetches();
  }
  REQUIRE_FALSE(p.model->next_periodic_read(canonical(b)));
  REQUIRE(p.model->follows("app", canonical(b)));
  REQUIRE_FALSE(p.model->follows("app", canonical(a)));
  REQUIRE_FALSE(p.model->follows("batch", canonical(b)));

  const auto t0 = p.clock.now();
  p.read(a);  // a miss; B is fetched ahead with it
  CHECK(p.answer_prefetches() == 1);
  p.read(b);  // served what was fetched ahead: its first read
  p.clock.advance(10s);
  p.read(a);  // read since its fetch, twice: being read
  p.clock.advance(10s);
  p.read(a);
  const auto refreshed = p.prefetcher->counts(Kind::refresh).issued;
  const int misses = p.misses;

  SECTION("B read once: only A is refreshed") {
    p.clock.advance(t0 + 290s - p.clock.now());  // past 0.925 of the TTL, before its end
    p.prefetcher->tick();
    REQUIRE(p.primary->pending() == 1);
    CHECK(p.primary->pending_key() == canonical(a));
    p.answer_prefetches();
    CHECK(p.prefetcher->counts(Kind::refresh).issued == refreshed + 1);
  }
  SECTION("B read twice, each time right after A: left to A's reads, and read on without a miss") {
    p.clock.advance(1min);
    p.read(a);
    p.clock.advance(1s);
    p.read(b);
    p.clock.advance(t0 + 290s - p.clock.now());
    p.prefetcher->tick();
    CHECK(p.answer_prefetches() == 1);  // A only
    CHECK(p.prefetcher->counts(Kind::refresh).issued == refreshed + 1);
    p.clock.advance(20s);  // the first values have expired
    p.read(a);             // brings B
    CHECK(p.answer_prefetches() == 1);
    p.clock.advance(1s);
    p.read(b);
    CHECK(p.misses == misses);
  }
  SECTION("B read twice on its own as well: being read, it is refreshed") {
    p.clock.advance(1min);
    p.read(b);
    p.clock.advance(2s);
    p.read(b);  // within its episode
    p.clock.advance(t0 + 290s - p.clock.now());
    p.read(b);  // still being read at its refresh point
    p.prefetcher->tick();
    CHECK(p.answer_prefetches() == 2);
    CHECK(p.prefetcher->counts(Kind::refresh).issued == refreshed + 2);
  }
}

TEST_CASE("an unread value of a reference read at random at a steady rate is kept fresh until a long silence",
          "[predict][refresh]") {
  chitty::predict::PrefetchOptions o;
  o.refresh_jitter = 0;
  Predicting p(o);
  const std::string ref = "op://Infra/Postgres/password";
  // Episodes 60-150 s apart (no period): a mean of about 100 s.
  for (auto gap : {100s, 150s, 60s, 130s, 70s}) {
    p.read(ref);
    for (auto s = 0s; s < gap; s += 1s) {
      p.clock.advance(1s);
      p.prefetcher->tick();
      p.answer_prefetches();
    }
  }
  p.read(ref);  // the last read: the reads then stop
  const auto last = p.clock.now();
  const auto refreshed = p.prefetcher->counts(Kind::refresh).issued;
  int fresh_at_each_minute = 0;
  for (auto s = 0s; s < 40min; s += 1s) {
    p.clock.advance(1s);
    p.prefetcher->tick();
    p.answer_prefetches();
    if (s % 60s == 0s && p.broker->fresh_until(canonical(ref)).value_or(p.clock.now()) > p.clock.now()) {
      ++fresh_at_each_minute;
    }
  }
  const auto kept = p.prefetcher->counts(Kind::refresh).issued - refreshed;
  // Kept fresh through a silence of 4.6 mean intervals (about 8 min: two
  // refreshes unread), then left to expire.
  CHECK(kept >= 1);
  CHECK(kept <= 3);
  CHECK(fresh_at_each_minute >= 8);
  CHECK(fresh_at_each_minute <= 20);
  CHECK_FALSE(p.broker->fresh_until(canonical(ref)).value_or(last) > p.clock.now());

  SECTION("a read within that silence is a hit") {
    Predicting q(o);
    for (auto gap : {100s, 150s, 60s, 130s, 70s}) {
      q.read(ref);
      q.clock.advance(gap);
      q.prefetcher->tick();
      q.answer_prefetches();
    }
    q.read(ref);
    const int misses = q.misses;
    for (auto s = 0s; s < 7min; s += 1s) {
      q.clock.advance(1s);
      q.prefetcher->tick();
      q.answer_prefetches();
    }
    q.read(ref);  // 7 min of silence: past the TTL, still fresh
    CHECK(q.misses == misses);
  }
}

TEST_CASE("an unread value of a reference read rarely, or read too few times to know its rate, is left to expire",
          "[predict][refresh]") {
  Predicting p;
  const std::string rare = "op://Infra/Redis/password";
  const std::string young = "op://Infra/Kafka/token";
  // `rare`: episodes 6-9 min apart, longer than the TTL; `young`: two
  // intervals only.
  for (auto gap : {6min, 9min, 7min, 8min}) {
    p.read(rare);
    p.clock.advance(gap);
    p.prefetcher->tick();
    p.answer_prefetches();
  }
  for (auto gap : {60s, 90s}) {
    p.read(young);
    p.clock.advance(gap);
    p.prefetcher->tick();
    p.answer_prefetches();
  }
  p.clock.advance(10min);
  p.prefetcher->tick();
  p.read(rare);
  p.read(young);
  const auto refreshed = p.prefetcher->counts(Kind::refresh).issued;
  for (auto s = 0s; s < 20min; s += 1s) {
    p.clock.advance(1s);
    p.prefetcher->tick();
    p.answer_prefetches();
  }
  CHECK(p.prefetcher->counts(Kind::refresh).issued == refreshed);
}

TEST_CASE("a value read once in a TTL is refreshed when its service reads it about that often, not when it reads it "
          "rarely", "[predict][refresh]") {
  Predicting p;
  const std::string often = "op://Infra/Postgres/password";
  const std::string rarely = "op://Infra/Redis/password";
  // Learnt: `often` every 2-3 minutes, `rarely` every 20-30.
  const auto start = p.clock.now();
  for (auto t : {0min, 20min, 50min}) {
    p.clock.advance(start + t - p.clock.now());
    p.read(rarely);
  }
  for (auto t : {51min, 53min, 56min, 58min}) {
    p.clock.advance(start + t - p.clock.now());
    p.read(often);
  }
  REQUIRE(*p.model->typical_interval("app", canonical(often)) <= 3min);
  REQUIRE(*p.model->typical_interval("app", canonical(rarely)) >= 20min);

  p.clock.advance(10min);  // everything expired
  p.prefetcher->tick();
  p.read(often);  // the misses that fetch them
  p.read(rarely);
  p.clock.advance(2min);
  p.read(often);  // one read each since
  p.read(rarely);
  const auto refreshed = p.prefetcher->counts(Kind::refresh).issued;
  p.clock.advance(2min + 50s);
  p.prefetcher->tick();
  REQUIRE(p.primary->pending() == 1);
  CHECK(p.primary->pending_key() == canonical(often));
  p.answer_prefetches();
  CHECK(p.prefetcher->counts(Kind::refresh).issued == refreshed + 1);
}

TEST_CASE("next_tick: the soonest refresh point or periodic fetch, at most the budget minute away",
          "[predict][tick]") {
  chitty::predict::PrefetchOptions o;
  o.refresh_jitter = 0;
  o.periodic_lead = 5s;
  Predicting p(o);
  const auto start = p.clock.now();
  CHECK(p.prefetcher->next_tick() == start + 1min);

  SECTION("a value being read: its refresh point, once the minute is nearer no more") {
    p.read("op://Infra/Postgres/password");  // fetched now
    p.clock.advance(10s);
    p.read("op://Infra/Postgres/password");  // read since its fetch: refreshed at 0.95 of 5 min
    CHECK(p.prefetcher->next_tick() == start + 1min);
    p.clock.advance(50s);
    p.prefetcher->tick();  // the budget minute rolls
    CHECK(p.prefetcher->next_tick() == start + 2min);
    p.clock.advance(3min);
    p.prefetcher->tick();  // and again: the next minute ends after the refresh point
    CHECK(p.prefetcher->next_tick() == start + 285s);
  }
  SECTION("a periodic read: just before it is due, and once fetched ahead of, no longer") {
    const std::string ref = "op://Infra/Kafka/token";
    for (int i = 0; i < 4; ++i) {  // every 30 s: periodic once three intervals agree
      p.read(ref);
      p.clock.advance(30s);
    }
    p.read(ref);
    p.prefetcher->tick();
    const auto last = p.clock.now();
    const auto next = p.model->next_periodic_read(canonical(ref));
    REQUIRE(next);
    INFO((*next - last).count());
    REQUIRE(*next == last + 30s);
    CHECK(p.prefetcher->next_tick() == last + 25s);
    p.clock.advance(26s);
    p.prefetcher->tick();  // asked for (still fresh: nothing fetched)
    p.answer_prefetches();
    CHECK(p.prefetcher->next_tick() > p.clock.now());
    CHECK(p.prefetcher->next_tick() != last + 25s);
  }
}

TEST_CASE("a failed refresh keeps the value in hand and its fallback window", "[predict][refresh]") {
  Predicting p;
  p.read("op://Infra/Postgres/password");
  p.clock.advance(1min);
  p.read("op://Infra/Postgres/password");  // a hit: refresh-ahead applies
  p.clock.advance(4min - 1s);              // past the refresh point (4m07s), before expiry
  p.prefetcher->tick();
  REQUIRE(p.primary->pending() == 1);
  p.primary->fail(chitty::upstream::FetchError::unavailable, "connection refused");
  CHECK(p.prefetcher->counts(Kind::refresh).failed == 1);
  // Fallback mode now: the value fetched at 0 is served stale up to 15 min
  // after that fetch, not after the failed refresh.
  auto ask = [&p] {
    chitty::broker::Ask a;
    a.ref = *chitty::catalog::parse_reference("op://Infra/Postgres/password");
    return p.ask(std::move(a));
  };
  p.clock.advance(10min);  // 14m59s
  auto slot = ask();
  REQUIRE(slot->has_value());
  REQUIRE((*slot)->outcome.has_value());
  CHECK((*slot)->outcome->cache == CacheState::stale);
  p.clock.advance(2s);  // 15m01s
  auto late = ask();
  while (p.primary->pending() > 0) p.primary->fail(chitty::upstream::FetchError::unavailable, "connection refused");
  REQUIRE(late->has_value());
  CHECK_FALSE((*late)->outcome.has_value());
}

TEST_CASE("a service's start-up set is fetched when a new process of it first reads", "[predict][startup]") {
  Predicting p;
  auto first = restarted(1000, 100);
  p.read("op://Infra/Postgres/password", &first);
  p.read("op://Infra/Redis/password", &first);
  p.read("op://Infra/Kafka/token", &first);
  p.clock.advance(30min);  // everything expired
  auto second = restarted(1000, 200);
  p.read("op://Infra/Postgres/password", &second);  // a miss: its start-up begins
  CHECK(p.answer_prefetches() == 2);
  CHECK(p.prefetcher->counts(Kind::startup).issued == 2);
  const int misses = p.misses;
  p.read("op://Infra/Redis/password", &second);
  p.read("op://Infra/Kafka/token", &second);
  CHECK(p.misses == misses);  // both served from what was fetched ahead
  CHECK(p.prefetcher->counts(Kind::startup).used == 2);
}

TEST_CASE("a prefetched value read before it expires is used; one that expires unread is wasted",
          "[predict][startup]") {
  Predicting p;
  auto first = restarted(1000, 100);
  p.read("op://Infra/Postgres/password", &first);
  p.read("op://Infra/Redis/password", &first);
  p.read("op://Infra/Kafka/token", &first);
  p.clock.advance(30min);
  auto second = restarted(1000, 200);
  p.read("op://Infra/Postgres/password", &second);
  REQUIRE(p.answer_prefetches() == 2);
  p.clock.advance(1min);
  p.read("op://Infra/Redis/password", &second);
  p.clock.advance(3min);
  p.prefetcher->tick();
  CHECK(p.prefetcher->counts(Kind::startup).used == 1);
  CHECK(p.prefetcher->counts(Kind::startup).wasted == 0);  // Kafka's is still fresh: it may yet be read
  p.clock.advance(2min);  // past its TTL, unread
  p.prefetcher->tick();
  CHECK(p.prefetcher->counts(Kind::startup).used == 1);
  CHECK(p.prefetcher->counts(Kind::startup).wasted == 1);
}

TEST_CASE("the per-minute and upstream budgets hold under a trace that would exceed them", "[predict][budget]") {
  chitty::predict::PrefetchOptions o;
  o.max_per_minute = 3;
  o.upstream_reads_per_hour = 1000;
  Predicting p(o);
  auto first = restarted(1000, 100);
  for (int i = 0; i < 8; ++i) p.read("op://Infra/item" + std::to_string(i) + "/password", &first);
  p.clock.advance(30min);
  p.prefetcher->tick();
  auto second = restarted(1000, 200);
  p.read("op://Infra/item0/password", &second);  // seven predicted; three may go this minute
  CHECK(p.answer_prefetches() == 3);
  CHECK(p.prefetcher->counts(Kind::startup).skipped == 4);

  SECTION("the upstream's hourly reads stop prefetching, callers' fetches included") {
    chitty::predict::PrefetchOptions tight;
    tight.upstream_reads_per_hour = 10;
    Predicting q(tight);
    auto a = restarted(1000, 100);
    for (int i = 0; i < 8; ++i) q.read("op://Infra/item" + std::to_string(i) + "/password", &a);
    q.clock.advance(30min);
    auto b = restarted(1000, 200);
    q.read("op://Infra/item0/password", &b);  // fetch 9: one prefetch fits under 10
    CHECK(q.answer_prefetches() == 1);
    CHECK(q.prefetcher->upstream_reads_last_hour() == 10);
  }
}

TEST_CASE("nothing is fetched ahead that policy forbids now or that is revoked", "[predict][policy]") {
  Predicting p;
  auto first = restarted(1000, 100);
  p.read("op://Infra/Postgres/password", &first);
  p.read("op://Infra/Redis/password", &first);
  p.clock.advance(30min);

  SECTION("revoked") {
    chitty::policy::Revocation r;
    r.kind = chitty::policy::Revocation::Kind::ref;
    r.ref = *chitty::catalog::parse_reference("op://Infra/Redis/password");
    r.target = r.ref->display();
    std::optional<chitty::policy::Revocation> described;
    p.broker->describe(r, [&](chitty::policy::Revocation d) { described = std::move(d); });
    REQUIRE(described);  // the fake resolves nothing: at once
    p.broker->revoke(*described);
  }
  SECTION("no longer allowed") {
    chitty::policy::ServiceSpec s;
    s.name = "app";
    s.uid = 1000;
    s.allow = {"op://Infra/Postgres/*"};
    s.rate_limit = chitty::Rate{1000000, std::chrono::hours(1)};
    auto pol = chitty::policy::Policy::build({s});
    REQUIRE(pol);
    p.rules.set_policy(std::make_shared<const chitty::policy::Policy>(std::move(*pol)));
  }
  auto second = restarted(1000, 200);
  p.read("op://Infra/Postgres/password", &second);
  CHECK(p.primary->pending() == 0);
  CHECK(p.prefetcher->counts(Kind::startup).issued == 0);
}

TEST_CASE("prefetch events are audited, and counted into one event per kind past the minute's cap",
          "[predict][audit]") {
  chitty::predict::PrefetchOptions o;
  o.audit_events_per_minute = 2;
  Predicting p(o);
  auto first = restarted(1000, 100);
  for (int i = 0; i < 6; ++i) p.read("op://Infra/item" + std::to_string(i) + "/password", &first);
  p.clock.advance(30min);
  auto second = restarted(1000, 200);
  p.read("op://Infra/item0/password", &second);
  REQUIRE(p.answer_prefetches() == 5);
  CHECK(p.prefetch_events() == 2);
  p.clock.advance(61s);
  p.prefetcher->tick();
  REQUIRE(p.prefetch_events() == 3);
  const auto events = p.audit.recent(4096);
  const auto& agg = events.back();
  CHECK(agg.kind == chitty::audit::Kind::prefetch);
  CHECK(agg.action == "start-up");
  CHECK(agg.count == 3);
  CHECK(agg.refs.size() == 3);
  CHECK(agg.service == "app");
}

TEST_CASE("the model file: a restarted agent warms the start-up set before the first request; a tampered one is "
          "refused",
          "[predict][model-file]") {
  chitty::testing::TempDir dir;
  const std::string path = dir / "predict.model";
  Predicting p;
  auto key = chitty::secure::MacKey::from_bytes(*p.arena, std::string(32, 'k'));
  REQUIRE(key);
  auto first = restarted(1000, 100);
  p.read("op://Infra/Postgres/password", &first);
  p.read("op://Infra/Redis/password", &first);
  REQUIRE(chitty::predict::save_model(path, *p.model, **key));

  SECTION("loaded and warmed") {
    Predicting q;
    q.clock.advance(1min);  // the agent restarts a minute later
    auto loaded = chitty::predict::load_model(path, *q.model, **key);
    REQUIRE(loaded);
    CHECK(*loaded == chitty::predict::Loaded::model);
    q.prefetcher->warm();
    CHECK(q.answer_prefetches() == 2);
    auto again = restarted(1000, 100);  // the service did not restart: its pid is the one saved
    q.read("op://Infra/Postgres/password", &again);
    q.read("op://Infra/Redis/password", &again);
    CHECK(q.misses == 0);
  }
  SECTION("tampered: refused, the model left empty") {
    std::string text;
    {
      std::ifstream in(path);
      text.assign(std::istreambuf_iterator<char>(in), {});
    }
    auto at = text.find("redis");
    REQUIRE(at != std::string::npos);
    text[at] = 'R';
    dir.write("predict.model", text);
    Predicting q;
    auto loaded = chitty::predict::load_model(path, *q.model, **key);
    REQUIRE_FALSE(loaded);
    CHECK(loaded.error().message.find("does not verify") != std::string::npos);
    CHECK(q.model->services().empty());
  }
  SECTION("another key: refused") {
    auto other = chitty::secure::MacKey::from_bytes(*p.arena, std::string(32, 'x'));
    Predicting q;
    CHECK_FALSE(chitty::predict::load_model(path, *q.model, **other));
  }
  SECTION("no file yet") {
    Predicting q;
    auto loaded = chitty::predict::load_model(dir / "none.model", *q.model, **key);
    REQUIRE(loaded);
    CHECK(*loaded == chitty::predict::Loaded::none);
  }
}

TEST_CASE("nothing is fetched ahead when the audit trail does not take its event", "[predict][audit]") {
  Predicting p;
  chitty::audit::MemoryRecorder refusing(0);  // takes nothing
  p.prefetcher = std::make_unique<Prefetcher>(*p.model, *p.broker, refusing, p.clock, chitty::predict::PrefetchOptions{});
  auto first = restarted(1000, 100);
  p.read("op://Infra/Postgres/password", &first);
  p.read("op://Infra/Redis/password", &first);
  p.clock.advance(30min);
  auto second = restarted(1000, 200);
  p.read("op://Infra/Postgres/password", &second);
  CHECK(p.primary->pending() == 0);
  CHECK(p.prefetcher->counts(Kind::startup).issued == 0);
  CHECK(p.prefetcher->counts(Kind::startup).skipped == 1);
}
