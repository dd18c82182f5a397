// The risk engine on a manual clock: each factor in isolation, the bands,
// the learning period, and what a refused or failed request teaches.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>

#include "chitty/risk/engine.hpp"
#include "manual_clock.hpp"

using namespace std::chrono_literals;
using chitty::risk::Assessment;
using chitty::risk::Band;
using chitty::risk::Engine;
using chitty::risk::Factor;
using chitty::risk::Options;
using chitty::risk::Outcome;
using chitty::risk::Request;

namespace {

Options quick_learning() {
  Options o;
  o.learning_period = 1h;
  o.learning_requests = 20;
  return o;
}

struct Fixture {
  chitty::testing::ManualClock clock;
  Engine engine;
  explicit Fixture(Options o = quick_learning()) : engine(o, clock) {}

  static Request usual(std::string_view ref = "op://infra/db/password") {
    Request r;
    r.service = "app";
    r.ref = ref;
    r.uid = 1000;
    r.exe = "/usr/bin/app";
    r.unit = "app.service";
    return r;
  }
  // Scores `r` and answers it with `outcome`, as the broker will.
  Assessment ask(const Request& r, Outcome outcome = Outcome::served) {
    Assessment a = engine.assess(r);
    engine.record(r, outcome);
    return a;
  }
  // A day of ordinary traffic: two references every 15 minutes, round the clock.
  void learn_a_day() {
    for (int i = 0; i < 96; ++i) {
      ask(usual(i % 2 == 0 ? "op://infra/db/password" : "op://infra/cache/password"));
      clock.advance(15min);
    }
  }
};

bool has(const Assessment& a, Factor f) {
  return std::any_of(a.fired.begin(), a.fired.end(), [f](const auto& x) { return x.factor == f; });
}

std::vector<Factor> factors(const Assessment& a) {
  std::vector<Factor> out;
  for (const auto& f : a.fired) out.push_back(f.factor);
  return out;
}

int weight_of(const Options& o, Factor f) { return o.weights[static_cast<std::size_t>(f)]; }

}  // namespace

TEST_CASE("bands follow SPEC §6 and name themselves", "[risk][band]") {
  CHECK(chitty::risk::band_of(0) == Band::allow);
  CHECK(chitty::risk::band_of(29) == Band::allow);
  CHECK(chitty::risk::band_of(30) == Band::monitor);
  CHECK(chitty::risk::band_of(49) == Band::monitor);
  CHECK(chitty::risk::band_of(50) == Band::step_up);
  CHECK(chitty::risk::band_of(69) == Band::step_up);
  CHECK(chitty::risk::band_of(70) == Band::deny);
  CHECK(chitty::risk::band_of(100) == Band::deny);
  CHECK(chitty::risk::band_name(Band::step_up) == "step_up");
  CHECK(chitty::risk::level_name(Band::allow) == "low");
  CHECK(chitty::risk::level_name(Band::monitor) == "medium");
  CHECK(chitty::risk::level_name(Band::step_up) == "high");
  CHECK(chitty::risk::level_name(Band::deny) == "critical");
  CHECK(chitty::risk::factor_name(Factor::identity_partial) == "identity_partial");
  CHECK(chitty::risk::factor_name(Factor::recently_revoked) == "recently_revoked");
  CHECK(chitty::risk::factor_name(Factor::new_references) == "new_references");
  CHECK(chitty::risk::factor_name(Factor::unusual_hour_activity) == "unusual_hour_activity");
}

TEST_CASE("a learnt service's ordinary request fires nothing and scores 0", "[risk]") {
  Fixture f;
  f.learn_a_day();
  const Assessment a = f.engine.assess(Fixture::usual());
  CHECK_FALSE(a.learning);
  CHECK(a.fired.empty());
  CHECK(a.score == 0);
  CHECK(a.band == Band::allow);
}

TEST_CASE("each factor in isolation adds its weight", "[risk][factor]") {
  Fixture f;
  f.learn_a_day();
  const Options& o = f.engine.options();
  auto only = [&](const Request& r, Factor factor) {
    const Assessment a = f.engine.assess(r);
    INFO(chitty::risk::factor_name(factor));
    REQUIRE(factors(a) == std::vector<Factor>{factor});
    CHECK(a.fired[0].weight == weight_of(o, factor));
    CHECK(a.score == std::min(100, weight_of(o, factor)));
    CHECK(a.band == chitty::risk::band_of(a.score));
  };

  SECTION("identity only partly established") {
    Request r = Fixture::usual();
    r.identity_partial = true;
    only(r, Factor::identity_partial);
  }
  SECTION("claimed service mismatch: 100, denied") {
    Request r = Fixture::usual();
    r.service_mismatch = true;
    only(r, Factor::service_mismatch);
    CHECK(f.engine.assess(r).band == Band::deny);
  }
  SECTION("purpose not allowed") {
    Request r = Fixture::usual();
    r.purpose_not_allowed = true;
    only(r, Factor::purpose_not_allowed);
  }
  SECTION("first access to a reference") { only(Fixture::usual("op://infra/s3/secret"), Factor::first_access); }
  SECTION("a new executable") {
    Request r = Fixture::usual();
    r.exe = "/tmp/x";
    only(r, Factor::new_executable);
  }
  SECTION("a new unit") {
    Request r = Fixture::usual();
    r.unit = "other.service";
    only(r, Factor::new_unit);
  }
  SECTION("a new uid") {
    Request r = Fixture::usual();
    r.uid = 1001;
    only(r, Factor::new_uid);
  }
  SECTION("recently revoked, and no longer after revoked_within") {
    f.engine.revoked("op://infra/db/password");
    only(Fixture::usual(), Factor::recently_revoked);
    f.clock.advance(o.revoked_within + 1s);
    CHECK(f.engine.assess(Fixture::usual()).fired.empty());
  }
}

TEST_CASE("an hour the service is rarely active in is unusual", "[risk][factor]") {
  Fixture f;
  // Ten days of office hours: 09:00-17:00 UTC, a request every 20 minutes.
  for (int day = 0; day < 10; ++day) {
    f.clock.advance(9h);
    for (int i = 0; i < 24; ++i) {
      f.ask(Fixture::usual());
      f.clock.advance(20min);
    }
    f.clock.advance(7h);  // to midnight
  }
  f.clock.advance(10h);  // 10:00: usual
  CHECK(f.engine.assess(Fixture::usual()).fired.empty());
  f.clock.advance(14h + 30min);  // 00:30 the day after: nothing was ever read then
  const Assessment a = f.engine.assess(Fixture::usual());
  REQUIRE(factors(a) == std::vector<Factor>{Factor::unusual_hour});
  CHECK(a.score == weight_of(f.engine.options(), Factor::unusual_hour));
}

TEST_CASE("several references new to the service within the hour: reading outside its set", "[risk][factor]") {
  Fixture f;
  f.learn_a_day();
  const Options& o = f.engine.options();
  for (std::uint32_t i = 1; i < o.novelty_refs; ++i) {
    const Assessment a = f.ask(Fixture::usual("op://infra/spare" + std::to_string(i) + "/password"));
    INFO(i);
    REQUIRE(factors(a) == std::vector<Factor>{Factor::first_access});  // served: learnt
    f.clock.advance(10min);
  }
  const Assessment a = f.engine.assess(Fixture::usual("op://infra/spare9/password"));
  REQUIRE(factors(a) == std::vector<Factor>{Factor::first_access, Factor::new_references});
  CHECK(a.score == weight_of(o, Factor::first_access) + weight_of(o, Factor::new_references));
  CHECK(a.band == Band::monitor);
  // An hour after the first of them, only two are in the window.
  f.clock.advance(o.novelty_window - 20min + 1s);
  CHECK(factors(f.engine.assess(Fixture::usual("op://infra/spare9/password"))) ==
        std::vector<Factor>{Factor::first_access});
}

TEST_CASE("several requests at an unusual hour within minutes are activity, one stray request is not",
          "[risk][factor]") {
  Fixture f;
  // Ten days of office hours: 09:00-17:00 UTC, a request every 20 minutes.
  for (int day = 0; day < 10; ++day) {
    f.clock.advance(9h);
    for (int i = 0; i < 24; ++i) {
      f.ask(Fixture::usual());
      f.clock.advance(20min);
    }
    f.clock.advance(7h);
  }
  f.clock.advance(3h);  // 03:00
  const Options& o = f.engine.options();
  for (std::uint32_t i = 1; i < o.odd_hours_requests; ++i) {
    const Assessment a = f.ask(Fixture::usual());
    INFO(i);
    REQUIRE(factors(a) == std::vector<Factor>{Factor::unusual_hour});
    f.clock.advance(2min);
  }
  const Assessment a = f.engine.assess(Fixture::usual());
  REQUIRE(factors(a) == std::vector<Factor>{Factor::unusual_hour, Factor::unusual_hour_activity});
  CHECK(a.band == Band::monitor);
  f.clock.advance(o.odd_hours_window);  // the window has moved on
  CHECK(factors(f.engine.assess(Fixture::usual())) == std::vector<Factor>{Factor::unusual_hour});
}

TEST_CASE("a new working hour becomes usual: served while flagged, its hour is learnt", "[risk][learning]") {
  Options o = quick_learning();
  o.hours_learning_period = 1h;
  Fixture f(o);
  // Two hours of history, 00:00-02:00, 2400 requests: then 10:00 is an
  // unusual hour until it holds 1% of them.
  for (int i = 0; i < 2400; ++i) {
    f.ask(Fixture::usual());
    f.clock.advance(3s);
  }
  f.clock.advance(8h);
  // From 10:00 to 11:00, a request a minute, answered as the broker will.
  int flagged = 0;
  int last_flagged = -1;
  for (int i = 0; i < 60; ++i) {
    const Assessment a = f.engine.assess(Fixture::usual());
    const bool monitor = a.band == Band::monitor;
    f.engine.record(Fixture::usual(), monitor ? Outcome::monitored : Outcome::served);
    if (a.band != Band::allow) {
      ++flagged;
      last_flagged = i;
    }
    f.clock.advance(1min);
  }
  CHECK(flagged > 0);        // the new hour was flagged at first
  CHECK(last_flagged < 40);  // and learnt within the hour, not locked out
}

TEST_CASE("a burst above the service's busiest minute", "[risk][factor]") {
  Fixture f;
  f.learn_a_day();  // one request a quarter of an hour: its busiest minute had 1
  const std::uint32_t burst_min = f.engine.options().burst_min;
  // burst_min is above burst_factor x 1: the first burst_min requests of a
  // minute are within bounds, the next is a burst.
  for (std::uint32_t i = 0; i < burst_min; ++i) {
    INFO(i);
    const Assessment a = f.ask(Fixture::usual());
    REQUIRE_FALSE(has(a, Factor::burst));
    f.clock.advance(100ms);
  }
  const Assessment a = f.engine.assess(Fixture::usual());
  CHECK(has(a, Factor::burst));
  // A minute later the count starts again.
  f.clock.advance(1min);
  CHECK(f.engine.assess(Fixture::usual()).fired.empty());

  SECTION("a minute that was a burst does not raise the bar for the next") {
    for (int i = 0; i < 500; ++i) {
      f.ask(Fixture::usual());
      f.clock.advance(10ms);
    }
    f.clock.advance(1min);  // the burst minute is over
    bool fired = false;
    for (int i = 0; i < 400 && !fired; ++i) {
      fired = has(f.ask(Fixture::usual()), Factor::burst);
      f.clock.advance(10ms);
    }
    CHECK(fired);
  }
}

TEST_CASE("a service busy from its first minute learns its rate: not a burst once it has learnt", "[risk][learning]") {
  Options o = quick_learning();
  o.learning_period = 2min;
  o.learning_requests = 100;
  Fixture f(o);
  // 20 requests a second (1,200 a minute, far above burst_min) from the start.
  for (int i = 0; i < 3 * 60 * 20; ++i) {
    f.ask(Fixture::usual());
    f.clock.advance(50ms);
  }
  const Assessment steady = f.engine.assess(Fixture::usual());
  CHECK_FALSE(steady.learning);
  CHECK_FALSE(has(steady, Factor::burst));
  // Ten times the rate is a burst.
  bool fired = false;
  for (int i = 0; i < 60 * 200 && !fired; ++i) {
    fired = has(f.ask(Fixture::usual()), Factor::burst);
    f.clock.advance(5ms);
  }
  CHECK(fired);
}

TEST_CASE("enumeration: many distinct references or many failures in a short window", "[risk][factor]") {
  Fixture f;
  f.learn_a_day();
  const Options& o = f.engine.options();

  SECTION("references new to the service: fired at the enumeration_refs-th within the window") {
    for (std::uint32_t i = 1; i < o.enumeration_refs; ++i) {
      const Assessment a = f.ask(Fixture::usual("op://infra/item" + std::to_string(i) + "/password"),
                                 Outcome::monitored);
      INFO(i);
      REQUIRE(has(a, Factor::first_access));
      REQUIRE_FALSE(has(a, Factor::enumeration));
      f.clock.advance(100ms);
    }
    const Assessment a = f.engine.assess(Fixture::usual("op://infra/another/password"));
    CHECK(factors(a) == std::vector<Factor>{Factor::first_access, Factor::new_references, Factor::enumeration});
    CHECK(a.band == Band::deny);
    // Its own references are no enumeration, however many.
    CHECK(f.engine.assess(Fixture::usual()).fired.empty());
    f.clock.advance(o.enumeration_window + 1s);  // the window has moved on (not the novelty one)
    CHECK(factors(f.engine.assess(Fixture::usual("op://infra/another/password"))) ==
          std::vector<Factor>{Factor::first_access, Factor::new_references});
  }
  SECTION("not_found and forbidden answers: fired once enumeration_failures are in the window") {
    for (std::uint32_t i = 0; i < o.enumeration_failures; ++i) {
      const std::string ref = "op://guess/item" + std::to_string(i) + "/password";
      const Assessment a = f.ask(Fixture::usual(ref), i % 2 == 0 ? Outcome::not_found : Outcome::forbidden);
      INFO(i);
      REQUIRE_FALSE(has(a, Factor::enumeration));
    }
    // The usual reference itself is now denied: the caller is probing.
    const Assessment a = f.engine.assess(Fixture::usual());
    REQUIRE(factors(a) == std::vector<Factor>{Factor::enumeration});
    CHECK(a.band == Band::deny);
  }
  SECTION("a learning service reading many references at once is not judged on them") {
    Fixture g;
    for (int i = 0; i < 30; ++i) {
      const Assessment a = g.ask(Fixture::usual("op://infra/item" + std::to_string(i) + "/password"));
      INFO(i);
      CHECK(a.learning);
      CHECK_FALSE(has(a, Factor::enumeration));
      g.clock.advance(50ms);
    }
  }
}

TEST_CASE("the score is capped at 100", "[risk]") {
  Fixture f;
  f.learn_a_day();
  Request r = Fixture::usual("op://other/thing/password");
  r.service_mismatch = true;
  r.identity_partial = true;
  r.exe = "/tmp/x";
  const Assessment a = f.engine.assess(r);
  CHECK(a.fired.size() == 4);
  CHECK(a.score == 100);
}

TEST_CASE("a new service learns: soft factors fire at weight 0, hard ones count", "[risk][learning]") {
  Fixture f;
  const Assessment first = f.engine.assess(Fixture::usual());
  CHECK(first.learning);
  CHECK(factors(first) == std::vector<Factor>{Factor::first_access, Factor::new_executable, Factor::new_unit,
                                              Factor::new_uid});
  CHECK(first.score == 0);
  CHECK(first.band == Band::allow);

  Request mismatch = Fixture::usual();
  mismatch.service_mismatch = true;
  CHECK(f.engine.assess(mismatch).score == 100);

  SECTION("still learning after enough requests, until the period has passed too") {
    for (int i = 0; i < 30; ++i) {
      f.ask(Fixture::usual());
      f.clock.advance(1s);
    }
    CHECK(f.engine.assess(Fixture::usual("op://infra/new/password")).learning);
    f.clock.advance(1h);
    const Assessment a = f.engine.assess(Fixture::usual("op://infra/new/password"));
    CHECK_FALSE(a.learning);
    // (An hour is judged only after a week of history.)
    CHECK(factors(a) == std::vector<Factor>{Factor::first_access});
    CHECK(a.score == weight_of(f.engine.options(), Factor::first_access));
  }
  SECTION("still learning after the period, until enough requests") {
    f.ask(Fixture::usual());
    f.clock.advance(2h);
    CHECK(f.engine.assess(Fixture::usual()).learning);
  }
}

TEST_CASE("refused requests teach the baseline nothing; failed ones only count in the window", "[risk][learning]") {
  Fixture f;
  f.learn_a_day();
  const Request stranger_ref = Fixture::usual("op://infra/s3/secret");
  for (int i = 0; i < 50; ++i) {
    f.ask(stranger_ref, Outcome::refused);
    f.clock.advance(1min);
  }
  CHECK(factors(f.engine.assess(stranger_ref)) == std::vector<Factor>{Factor::first_access});
  // Served while flagged (the monitor band): not learnt either.
  Request flagged = stranger_ref;
  flagged.uid = 4242;
  for (int i = 0; i < 50; ++i) {
    f.ask(flagged, Outcome::monitored);
    f.clock.advance(1min);
  }
  CHECK(factors(f.engine.assess(flagged)) == std::vector<Factor>{Factor::first_access, Factor::new_uid});
  f.ask(stranger_ref, Outcome::served);
  CHECK(f.engine.assess(stranger_ref).fired.empty());
}

TEST_CASE("a caller that is no service: hard factors and enumeration only", "[risk]") {
  Fixture f;
  Request r;
  r.ref = "op://infra/db/password";
  r.uid = 4242;
  r.exe = "/usr/bin/curl";
  const Assessment a = f.engine.assess(r);
  CHECK_FALSE(a.learning);
  CHECK(a.fired.empty());
  for (std::uint32_t i = 0; i < f.engine.options().enumeration_failures; ++i) {
    f.ask(r, Outcome::forbidden);
  }
  CHECK(factors(f.engine.assess(r)) == std::vector<Factor>{Factor::enumeration});
  // Another uid has a window of its own.
  r.uid = 4243;
  CHECK(f.engine.assess(r).fired.empty());
}

TEST_CASE("bounds: past max_refs_per_service the least recently read reference is first again", "[risk][bounds]") {
  Options o = quick_learning();
  o.max_refs_per_service = 2;
  Fixture f(o);
  f.learn_a_day();  // db and cache
  f.ask(Fixture::usual("op://infra/third/password"));  // evicts the least recently read
  f.clock.advance(1s);
  const Assessment a = f.engine.assess(Fixture::usual("op://infra/db/password"));
  const Assessment b = f.engine.assess(Fixture::usual("op://infra/cache/password"));
  // One of the two learnt ones was forgotten, the other kept.
  CHECK(a.fired.size() + b.fired.size() == 1);
}
