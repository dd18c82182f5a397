#include <catch2/catch.hpp>

#include "chitty/upstream/breaker.hpp"

using namespace std::chrono_literals;
using chitty::Duration;
using chitty::MonoTime;
using chitty::upstream::Breaker;
using State = Breaker::State;

namespace {

Breaker make(double jitter = 0.5, unsigned threshold = 2) {
  Breaker::Options o;
  o.failure_threshold = threshold;
  o.backoff = 1s;
  o.max_backoff = 8s;
  return Breaker(o, [jitter] { return jitter; });
}

MonoTime at(Duration d) { return MonoTime{} + d; }

}  // namespace

TEST_CASE("closed until the threshold of consecutive failures, then open", "[upstream][breaker]") {
  Breaker b = make();
  CHECK(b.state() == State::closed);
  CHECK(b.allow(at(0s)));
  b.failure(at(0s));
  CHECK(b.state() == State::closed);  // one failure is not an outage yet
  b.success(at(1s));
  b.failure(at(2s));
  CHECK(b.state() == State::closed);  // the success reset the count
  b.failure(at(3s));
  CHECK(b.state() == State::open);
  CHECK(b.times_opened() == 1);
  CHECK_FALSE(b.allow(at(3s)));
  CHECK(b.retry_at() == at(4s));  // 1 s backoff, jitter 0.5 → exactly 100%
}

TEST_CASE("after the backoff exactly one trial goes out (half-open)", "[upstream][breaker]") {
  Breaker b = make();
  b.failure(at(0s));
  b.failure(at(0s));
  REQUIRE(b.state() == State::open);
  CHECK_FALSE(b.allow(at(999ms)));
  CHECK(b.allow(at(1s)));  // the trial
  CHECK(b.state() == State::half_open);
  CHECK_FALSE(b.allow(at(1s)));  // no second one while it is out
  CHECK_FALSE(b.allow(at(5s)));

  SECTION("its success closes the circuit") {
    b.success(at(1100ms));
    CHECK(b.state() == State::closed);
    CHECK(b.allow(at(1100ms)));
    CHECK(b.consecutive_failures() == 0);
  }
  SECTION("its failure reopens it with a doubled backoff, capped") {
    b.failure(at(1s));
    CHECK(b.state() == State::open);
    CHECK(b.retry_at() == at(3s));  // 2 s
    REQUIRE(b.allow(at(3s)));
    b.failure(at(3s));
    CHECK(b.retry_at() == at(7s));  // 4 s
    REQUIRE(b.allow(at(7s)));
    b.failure(at(7s));
    CHECK(b.retry_at() == at(15s));  // 8 s (the cap)
    REQUIRE(b.allow(at(15s)));
    b.failure(at(15s));
    CHECK(b.retry_at() == at(23s));  // still 8 s
    // Recovery resets the doubling.
    REQUIRE(b.allow(at(23s)));
    b.success(at(23s));
    b.failure(at(24s));
    b.failure(at(24s));
    CHECK(b.retry_at() == at(25s));
  }
}

TEST_CASE("jitter spreads the open period over 75% to 125% of the backoff", "[upstream][breaker]") {
  for (auto [j, expected] : {std::pair{0.0, 750ms}, {0.5, 1000ms}, {0.999999, 1250ms}}) {
    Breaker b = make(j, 1);
    b.failure(at(0s));
    auto period = b.retry_at() - at(0s);
    CHECK(std::chrono::abs(period - Duration(expected)) < 1ms);
  }
}

TEST_CASE("a failure reported while already open changes nothing", "[upstream][breaker]") {
  Breaker b = make(0.5, 1);
  b.failure(at(0s));
  MonoTime retry = b.retry_at();
  b.failure(at(500ms));  // a request that went out before the circuit opened
  CHECK(b.state() == State::open);
  CHECK(b.retry_at() == retry);
  CHECK(b.times_opened() == 1);
}
