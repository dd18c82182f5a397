#include <catch2/catch.hpp>

#include "chitty/policy/gate.hpp"
#include "chitty/policy/rate_limiter.hpp"
#include "chitty/policy/revocations.hpp"
#include "chitty/policy/rules.hpp"
#include "manual_clock.hpp"

using namespace std::chrono_literals;
using chitty::MonoTime;
using chitty::Rate;
using chitty::policy::RateLimiter;
using chitty::policy::Revocation;
using chitty::policy::Revocations;
using chitty::testing::ManualClock;

TEST_CASE("a bucket of 100/h: the 101st request within the hour is refused, with when to retry",
          "[policy][rate]") {
  RateLimiter limiter;
  Rate hourly{100, 1h};
  MonoTime t0{};
  for (int i = 0; i < 100; ++i) REQUIRE(limiter.take("svc", hourly, t0 + std::chrono::milliseconds(i)).allowed);
  auto refused = limiter.take("svc", hourly, t0 + 10s);
  CHECK_FALSE(refused.allowed);
  // One token is back every 36 s; 10 s have passed.
  CHECK(refused.retry_after > 25s);
  CHECK(refused.retry_after <= 26s + 100ms);
  // Another service is unaffected.
  CHECK(limiter.take("other", hourly, t0 + 10s).allowed);
  // At the retry time one more request passes, and only one.
  auto at = t0 + 10s + refused.retry_after;
  CHECK(limiter.take("svc", hourly, at).allowed);
  CHECK_FALSE(limiter.take("svc", hourly, at).allowed);
}

TEST_CASE("buckets refill continuously up to their size, and a reload keeps the level", "[policy][rate]") {
  RateLimiter limiter;
  Rate per_minute{10, 1min};
  MonoTime t0{};
  for (int i = 0; i < 10; ++i) REQUIRE(limiter.take("s", per_minute, t0).allowed);
  CHECK(limiter.level("s", per_minute, t0) < 1.0);
  CHECK(limiter.level("s", per_minute, t0 + 30s) == Approx(5.0));
  CHECK(limiter.level("s", per_minute, t0 + 1h) == Approx(10.0));  // capped
  // A smaller limit after a reload caps the level; a larger one keeps it.
  CHECK(limiter.take("s", Rate{3, 1min}, t0 + 1h).allowed);
  CHECK(limiter.level("s", Rate{3, 1min}, t0 + 1h) == Approx(2.0));
  CHECK(limiter.level("never-seen", per_minute, t0) == Approx(10.0));
}

TEST_CASE("revocations match by any spelling, type, service, or everything", "[policy][revocation]") {
  Revocations r;
  chitty::catalog::Entry openai;
  openai.type = "openai_api_key";
  CHECK(r.blocking("svc", &openai, {"op://a/b/c"}) == nullptr);

  Revocation by_ref;
  by_ref.kind = Revocation::Kind::ref;
  by_ref.target = "op://Vault/Item/field";
  by_ref.forms = {"op://vault/item/field", "op://vid/iid/fid"};
  by_ref.types = {"db_password"};
  CHECK(r.add(by_ref));
  CHECK_FALSE(r.add(by_ref));  // already in force
  Revocation more = by_ref;    // the same secret, learnt by another spelling: merged
  more.forms = {"op://vid/iid/fid", "op://vault/item title/field"};
  CHECK_FALSE(r.add(more));
  CHECK(r.list().size() == 1);
  CHECK(r.list()[0].known_as("op://vault/item title/field"));
  CHECK(r.blocking("svc", nullptr, {"op://x/y/z", "op://vid/iid/fid"}) != nullptr);  // any of its spellings
  CHECK(r.blocking("svc", nullptr, {"op://other/x/y"}) == nullptr);
  chitty::catalog::Entry db;
  db.type = "db_password";
  CHECK(r.blocking("svc", &db, {"op://other/x/y"}) != nullptr);  // a catalog type that names it

  Revocation by_type;
  by_type.kind = Revocation::Kind::type;
  by_type.target = "openai_api_key";
  r.add(by_type);
  CHECK(r.blocking("svc", &openai, {"op://x/y/z"}) == &r.list()[1]);

  Revocation by_service;
  by_service.kind = Revocation::Kind::service;
  by_service.target = "batch";
  r.add(by_service);
  CHECK(r.blocking("batch", nullptr, {}) != nullptr);
  CHECK(r.blocking("web", nullptr, {}) == nullptr);
  CHECK(r.blocking_service("batch") != nullptr);
  CHECK(r.blocking_service("web") == nullptr);

  // Clearing: by any spelling of the secret, by kind; `all` clears everything.
  Revocation lift;
  lift.kind = Revocation::Kind::ref;
  lift.forms = {"op://vault/item title/field"};
  CHECK(r.clear(lift) == 1);
  CHECK(r.list().size() == 2);
  Revocation everything;
  everything.kind = Revocation::Kind::all;
  r.add(everything);
  CHECK(r.blocking("web", nullptr, {"op://anything/at/all"}) != nullptr);
  CHECK(r.blocking_service("web") != nullptr);
  CHECK(r.clear(everything) == 3);
  CHECK(r.empty());
  CHECK(chitty::policy::revocation_kind("service") == Revocation::Kind::service);
  CHECK_FALSE(chitty::policy::revocation_kind("bogus"));
}

namespace {

chitty::identity::Identity caller_with_uid(uid_t uid) {
  chitty::identity::Identity id;
  id.raw_uid = uid;
  id.uid = chitty::identity::Fact<uid_t>::known(uid);
  return id;
}

std::shared_ptr<const chitty::policy::Policy> one_service(Rate limit, Rate strangers) {
  chitty::policy::ServiceSpec s;
  s.name = "app";
  s.uid = 1000;
  s.allow = {"op://Infra/**"};
  s.rate_limit = limit;
  auto p = chitty::policy::Policy::build({s}, strangers);
  REQUIRE(p);
  return std::make_shared<const chitty::policy::Policy>(std::move(*p));
}

}  // namespace

TEST_CASE("the gate: a service's own bucket, one bucket for every stranger, the policy in force read at each request",
          "[policy][rate][gate]") {
  ManualClock clock;
  chitty::policy::Rules rules;
  chitty::policy::Gate gate(rules, clock);
  rules.set_policy(one_service({2, 1h}, {1, 1h}));
  auto app = caller_with_uid(1000), s1 = caller_with_uid(5001), s2 = caller_with_uid(5002);
  CHECK_FALSE(gate.take(app));
  CHECK_FALSE(gate.take(app));
  auto held = gate.take(app);
  REQUIRE(held);
  CHECK_THAT(held->message, Catch::Contains("service \"app\"") && Catch::Contains("2/h") &&
                                Catch::Contains("retry in 30m"));
  CHECK(held->retry_after == 30min);
  // Strangers share one bucket, apart from the service's.
  CHECK_FALSE(gate.take(s1));
  auto stranger = gate.take(s2);
  REQUIRE(stranger);
  CHECK_THAT(stranger->message, Catch::Contains("callers without a [[service]]"));
  CHECK(gate.limited() == 2);
  // A reload that raises the limit keeps the level and refills at the new rate.
  rules.set_policy(one_service({60, 1h}, {1, 1h}));
  CHECK(gate.take(app));  // still empty right now
  clock.advance(1min);
  CHECK_FALSE(gate.take(app));
  CHECK(gate.limited() == 3);
}

TEST_CASE("rules: the catalog listener runs on every catalog change, and only then", "[policy][rules]") {
  chitty::policy::Rules rules;
  CHECK(rules.catalog().entries().empty());
  CHECK(rules.service_of(caller_with_uid(1000)) == nullptr);
  int changes = 0;
  rules.on_catalog_change([&] { ++changes; });
  auto cat = chitty::catalog::Catalog::build({{"db_password", "op://Infra/Postgres/password", "", "", "", ""}});
  REQUIRE(cat);
  rules.set_catalog(std::make_shared<const chitty::catalog::Catalog>(std::move(*cat)));
  CHECK(changes == 1);
  CHECK(rules.catalog().by_type("db_password"));
  rules.set_policy(one_service({2, 1h}, {1, 1h}));
  CHECK(changes == 1);
  REQUIRE(rules.service_of(caller_with_uid(1000)) != nullptr);
  CHECK(rules.service_of(caller_with_uid(1000))->name == "app");
  rules.on_catalog_change(nullptr);
  rules.set_catalog(std::make_shared<const chitty::catalog::Catalog>());
  CHECK(changes == 1);
}
