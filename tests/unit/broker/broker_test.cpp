// The retrieval pipeline on values: a fake upstream completed by hand, a
// manual clock, the real cache, sealer and arena.
#include <catch2/catch.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "chitty/broker/broker.hpp"
#include "broker_fixture.hpp"

using namespace std::chrono_literals;
using chitty::broker::Answer;
using chitty::broker::Ask;
using chitty::broker::Broker;
using chitty::broker::CacheState;
using chitty::cache::Mode;
using chitty::http::ErrorCode;
using chitty::testing::FakeProvider;
using chitty::testing::ManualClock;
using chitty::upstream::FetchError;

using chitty::testing::caller_with_uid;
using chitty::testing::code_of;
using chitty::testing::Fixture;
using chitty::testing::value_of;

namespace {

// A revocation as the emergency route makes it: described by the broker.
chitty::policy::Revocation described(Broker& b, chitty::policy::Revocation r) {
  std::optional<chitty::policy::Revocation> out;
  b.describe(std::move(r), [&](chitty::policy::Revocation d) { out = std::move(d); });
  REQUIRE(out.has_value());  // the fakes resolve nothing, so it completes at once
  return *out;
}

}  // namespace

TEST_CASE("a miss makes one fetch; the value is then served from the cache", "[broker]") {
  Fixture f;
  auto first = f.ask_ref("op://Infra/Postgres/password");
  CHECK_FALSE(first->has_value());  // waiting on the upstream
  REQUIRE(f.primary->pending() == 1);
  CHECK(f.primary->pending_key() == "op://infra/postgres/password");
  f.primary->answer("pg-secret");
  REQUIRE(first->has_value());
  const Answer& a = **first;
  REQUIRE(a.outcome);
  CHECK(value_of(a) == "pg-secret");
  CHECK(a.outcome->cache == CacheState::miss);
  CHECK(a.outcome->source == "1password");
  CHECK(a.outcome->ref == "op://Infra/Postgres/password");
  CHECK(a.outcome->expires_at - a.outcome->fetched_at == 5min);
  CHECK(a.event.ref == "op://infra/postgres/password");
  CHECK(a.event.service == "app");
  CHECK(a.event.uid == 1000);
  CHECK(a.event.pid == 4242);
  CHECK(a.event.cache == "miss");
  CHECK(a.event.source == "1password");

  f.clock.advance(2min);
  auto second = f.ask_ref("op://INFRA/postgres/Password");  // another spelling: the same secret
  REQUIRE(second->has_value());  // answered at once
  REQUIRE((*second)->outcome);
  CHECK(value_of(**second) == "pg-secret");
  CHECK((*second)->outcome->cache == CacheState::hit);
  CHECK((*second)->outcome->age == 2min);
  CHECK(f.primary->fetches == 1);
}

TEST_CASE("1000 concurrent misses of one reference make one fetch, and every one is answered", "[broker][single-flight]") {
  Fixture f;
  std::vector<std::shared_ptr<std::optional<Answer>>> slots;
  for (int i = 0; i < 1000; ++i) slots.push_back(f.ask_ref("op://Infra/Postgres/password"));
  CHECK(f.primary->fetches == 1);
  CHECK(f.broker->fetches_in_flight() == 1);
  f.primary->answer("pg-secret");
  int served = 0;
  for (const auto& s : slots) {
    REQUIRE(s->has_value());
    REQUIRE((*s)->outcome);
    served += value_of(**s) == "pg-secret" ? 1 : 0;
  }
  CHECK(served == 1000);
  CHECK(f.broker->fetches_in_flight() == 0);
}

TEST_CASE("a failed fetch answers every waiter with the same refusal", "[broker][single-flight]") {
  Fixture f;
  auto a = f.ask_ref("op://Infra/Postgres/password");
  auto b = f.ask_ref("op://Infra/Postgres/password");
  f.primary->fail(FetchError::denied, "the token may not read this vault");
  REQUIRE(a->has_value());
  REQUIRE(b->has_value());
  CHECK(code_of(**a) == ErrorCode::forbidden);
  CHECK(code_of(**b) == ErrorCode::forbidden);
  CHECK(f.primary->fetches == 1);
}

TEST_CASE("refresh forces a fetch and replaces the cached value", "[broker]") {
  Fixture f;
  f.ask_ref("op://Infra/Postgres/password");
  f.primary->answer("old");
  auto refreshed = f.ask_ref("op://Infra/Postgres/password", true);
  REQUIRE(f.primary->pending() == 1);
  f.primary->answer("rotated");
  REQUIRE((*refreshed)->outcome);
  CHECK(value_of(**refreshed) == "rotated");
  CHECK((*refreshed)->outcome->cache == CacheState::miss);
  auto after = f.ask_ref("op://Infra/Postgres/password");
  REQUIRE(after->has_value());
  CHECK(value_of(**after) == "rotated");
  CHECK((*after)->outcome->cache == CacheState::hit);
}

TEST_CASE("invalidation forgets a value: the next request fetches", "[broker]") {
  Fixture f;
  f.ask_ref("op://Infra/Postgres/password");
  f.primary->answer("v1");
  CHECK(f.broker->invalidate("op://infra/postgres/password"));
  auto again = f.ask_ref("op://Infra/Postgres/password");
  CHECK_FALSE(again->has_value());
  CHECK(f.primary->fetches == 2);
  f.primary->answer("v2");
  CHECK(value_of(**again) == "v2");
}

TEST_CASE("upstream down: each entry is served STALE until 15 minutes after its fetch, then fails closed",
          "[broker][fallback]") {
  Fixture f;
  // Entry A fetched at t0, entry B five minutes later.
  f.ask_ref("op://Infra/Postgres/password");
  f.primary->answer("a-secret");
  f.clock.advance(5min);
  f.ask_ref("op://Infra/Redis/password");
  f.primary->answer("b-secret");

  // t0 + 14m59s: A's TTL is long past; the upstream is down.
  f.clock.advance(9min + 59s);
  auto a = f.ask_ref("op://Infra/Postgres/password");
  f.primary->fail(FetchError::unavailable, "connect timed out");
  REQUIRE(a->has_value());
  REQUIRE((*a)->outcome);
  CHECK(value_of(**a) == "a-secret");
  CHECK((*a)->outcome->cache == CacheState::stale);
  CHECK((*a)->outcome->mode == Mode::fallback);
  CHECK((*a)->outcome->age == 14min + 59s);
  CHECK(f.broker->mode() == Mode::fallback);

  // In fallback mode stale entries are served straight from the cache.
  auto a2 = f.ask_ref("op://Infra/Postgres/password");
  REQUIRE(a2->has_value());
  CHECK((*a2)->outcome->cache == CacheState::stale);
  CHECK(f.primary->pending() == 0);

  // t0 + 15m01s: A is past its window — no cached value, no fallback source
  // for it: 503. B (fetched at t0 + 5m) is still within its own.
  f.clock.advance(2s);
  auto late = f.ask_ref("op://Infra/Postgres/password");
  REQUIRE(f.primary->pending() == 1);
  f.primary->fail(FetchError::unavailable, "connect timed out");
  REQUIRE(late->has_value());
  REQUIRE_FALSE((*late)->outcome);
  CHECK(code_of(**late) == ErrorCode::upstream_unavailable);
  CHECK_THAT((*late)->outcome.error().message, Catch::Contains("fallback window"));
  CHECK_THAT((*late)->outcome.error().message, Catch::Contains("connect timed out"));
  CHECK(f.cache->stats().entries == 1);  // A was wiped, B stays

  auto b = f.ask_ref("op://Infra/Redis/password");
  REQUIRE(b->has_value());
  REQUIRE((*b)->outcome);
  CHECK(value_of(**b) == "b-secret");
  CHECK((*b)->outcome->cache == CacheState::stale);

  // The upstream recovers: normal mode, fresh values.
  f.clock.advance(1min);
  auto fresh = f.ask_ref("op://Infra/Postgres/password");
  f.primary->answer("a-rotated");
  REQUIRE((*fresh)->outcome);
  CHECK(value_of(**fresh) == "a-rotated");
  CHECK((*fresh)->outcome->mode == Mode::normal);
  CHECK(f.broker->mode() == Mode::normal);
  // ... and B, past its TTL in normal mode, is fetched again rather than served stale.
  auto b2 = f.ask_ref("op://Infra/Redis/password");
  CHECK_FALSE(b2->has_value());
  f.primary->answer("b-rotated");
  CHECK(value_of(**b2) == "b-rotated");
}

TEST_CASE("past the window, the catalog's env fallback bridges the outage (and is not cached)", "[broker][fallback]") {
  Fixture f;
  auto a = f.ask_type("openai_api_key");
  f.primary->fail(FetchError::unavailable, "503 from Connect");
  REQUIRE(f.env->pending() == 1);  // nothing cached: straight to the fallback
  f.env->answer("sk-from-env");
  REQUIRE(a->has_value());
  REQUIRE((*a)->outcome);
  CHECK(value_of(**a) == "sk-from-env");
  CHECK((*a)->outcome->source == "env");
  CHECK((*a)->outcome->cache == CacheState::miss);
  CHECK((*a)->outcome->mode == Mode::fallback);
  CHECK(f.cache->stats().entries == 0);  // the upstream's value wins once it is back
}

TEST_CASE("a 404 or 403 from the upstream never falls back, and drops the cached copy", "[broker][fallback]") {
  Fixture f;
  f.ask_type("openai_api_key");
  f.primary->answer("sk-1");
  auto gone = f.ask_ref("op://AI/OpenAI/api_key", true);
  f.primary->fail(FetchError::not_found, "item not found");
  REQUIRE(gone->has_value());
  CHECK(code_of(**gone) == ErrorCode::not_found);
  CHECK(f.env->fetches == 0);
  CHECK(f.cache->stats().entries == 0);
  CHECK(f.broker->mode() == Mode::normal);
}

TEST_CASE("without an upstream the catalog's sources are the sources, cached like any value", "[broker]") {
  Fixture f(false);
  auto a = f.ask_type("openai_api_key");
  REQUIRE(f.env->pending() == 1);
  f.env->answer("sk-env");
  REQUIRE((*a)->outcome);
  CHECK((*a)->outcome->source == "env");
  CHECK((*a)->outcome->expires_at - (*a)->outcome->fetched_at == 5min);
  auto b = f.ask_type("openai_api_key");
  REQUIRE(b->has_value());
  CHECK((*b)->outcome->cache == CacheState::hit);
  CHECK(f.env->fetches == 1);

  SECTION("a source named but empty is a 503; a secret nothing can provide is a 404") {
    auto unset = f.ask_ref("op://AI/OpenAI/api_key", true);
    f.env->fail(FetchError::not_found, "environment variable OPENAI_API_KEY was not set at start");
    CHECK(code_of(**unset) == ErrorCode::upstream_unavailable);
    CHECK_THAT((*unset)->outcome.error().message, Catch::Contains("OPENAI_API_KEY"));
    auto none = f.ask_ref("op://Infra/Postgres/password");
    REQUIRE(none->has_value());
    CHECK(code_of(**none) == ErrorCode::not_found);
  }
}

TEST_CASE("policy: only a configured service, only what it may read, only as itself", "[broker][policy]") {
  Fixture f;
  SECTION("a caller no service matches is refused") {
    auto stranger = caller_with_uid(3000);
    Ask a;
    a.credential_type = "openai_api_key";
    auto r = f.ask(std::move(a), &stranger);
    REQUIRE(r->has_value());
    CHECK(code_of(**r) == ErrorCode::forbidden);
    CHECK_THAT((*r)->outcome.error().message, Catch::Contains("uid 3000"));
    CHECK((*r)->event.service.empty());
  }
  SECTION("a caller whose uid is unknown matches no service") {
    auto unknown = caller_with_uid(1000);
    unknown.uid = chitty::identity::Fact<uid_t>::unknown("overflow uid");
    Ask a;
    a.credential_type = "openai_api_key";
    auto r = f.ask(std::move(a), &unknown);
    CHECK(code_of(**r) == ErrorCode::forbidden);
  }
  SECTION("a claimed service other than the attested one") {
    Ask a;
    a.credential_type = "openai_api_key";
    a.claimed_service = "batch";
    auto r = f.ask(std::move(a));
    CHECK(code_of(**r) == ErrorCode::context_mismatch);
    CHECK((*r)->event.service == "app");
  }
  SECTION("the claimed service is the attested one") {
    Ask a;
    a.credential_type = "openai_api_key";
    a.claimed_service = "app";
    auto r = f.ask(std::move(a));
    CHECK_FALSE(r->has_value());  // allowed: fetching
    f.primary->answer("sk");
    CHECK((*r)->outcome);
  }
  SECTION("a reference outside the allow rules") {
    auto r = f.ask_ref("op://Finance/Stripe/secret_key");
    CHECK(code_of(**r) == ErrorCode::forbidden);
    CHECK(f.primary->fetches == 0);  // refused before any fetch
  }
  SECTION("type: rules apply to the reference too; globs match any spelling") {
    auto by_ref = f.ask_ref("op://ai/openai/API_KEY");
    CHECK_FALSE(by_ref->has_value());
    f.primary->answer("sk");
    CHECK((*by_ref)->outcome);
    auto glob = f.ask_ref("op://shared/github/TOKEN");
    CHECK_FALSE(glob->has_value());
    auto too_deep = f.ask_ref("op://Shared/github/ci/token");  // '*' is one part only
    CHECK(code_of(**too_deep) == ErrorCode::forbidden);
  }
  SECTION("another service is held to its own rules") {
    auto batch = caller_with_uid(2000);
    Ask a;
    a.credential_type = "openai_api_key";
    auto r = f.ask(std::move(a), &batch);
    CHECK(code_of(**r) == ErrorCode::forbidden);
    CHECK((*r)->event.service == "batch");
  }
  SECTION("an unknown credential type is a 404") {
    auto r = f.ask_type("no_such_type");
    CHECK(code_of(**r) == ErrorCode::not_found);
  }
}

TEST_CASE("rate limits: per service, a shared bucket for callers without one, 429 with when to retry",
          "[broker][rate]") {
  Fixture f;
  auto spec = [](std::string name, std::int64_t uid, std::vector<std::string> allow, chitty::Rate rate) {
    chitty::policy::ServiceSpec s;
    s.name = std::move(name);
    s.uid = uid;
    s.allow = std::move(allow);
    s.rate_limit = rate;
    return s;
  };
  auto pol = chitty::policy::Policy::build({spec("app", 1000, {"op://Infra/**"}, {3, 1h}),
                                            spec("other", 2000, {"op://Infra/**"}, {3, 1h})},
                                           chitty::Rate{2, 1h});
  REQUIRE(pol);
  f.rules.set_policy(std::make_shared<const chitty::policy::Policy>(std::move(*pol)));
  f.ask_ref("op://Infra/Postgres/password");
  f.primary->answer("pw");
  CHECK((*f.ask_ref("op://Infra/Postgres/password"))->outcome);
  CHECK((*f.ask_ref("op://Infra/Postgres/password"))->outcome);
  auto fourth = f.ask_ref("op://Infra/Postgres/password");
  REQUIRE(fourth->has_value());
  CHECK(code_of(**fourth) == ErrorCode::rate_limited);
  REQUIRE((*fourth)->outcome.error().retry_after);
  CHECK(*(*fourth)->outcome.error().retry_after <= 20min);  // one token per 20 min
  CHECK(f.gate.limited() == 1);
  // Another service has its own bucket.
  auto other = caller_with_uid(2000);
  Ask a;
  a.ref = *chitty::catalog::parse_reference("op://Infra/Postgres/password");
  CHECK((*f.ask(a, &other))->outcome);
  // Strangers share one small bucket (charged by the API before it asks
  // the broker: api::admit), which the gate's take() spends.
  auto s1 = caller_with_uid(5001), s2 = caller_with_uid(5002);
  CHECK_FALSE(f.gate.take(s1));
  CHECK_FALSE(f.gate.take(s2));
  auto limited = f.gate.take(s1);
  REQUIRE(limited);
  CHECK(limited->retry_after > 0s);
  CHECK(f.gate.limited() == 2);  // the service's refusal above, and this one
  CHECK_THAT(limited->message, Catch::Contains("callers without a [[service]]"));
  CHECK(code_of(**f.ask(a, &s1)) == ErrorCode::forbidden);  // the broker itself does not charge them again
  // Time refills the bucket (the value has expired meanwhile: a fetch).
  f.clock.advance(21min);
  auto later = f.ask_ref("op://Infra/Postgres/password");
  REQUIRE_FALSE(later->has_value());
  f.primary->answer("pw");
  CHECK((*later)->outcome);
}

TEST_CASE("purposes: required and checked where the service lists them", "[broker][purposes]") {
  Fixture f;
  chitty::policy::ServiceSpec s;
  s.name = "app";
  s.uid = 1000;
  s.allow = {"op://Infra/**"};
  s.purposes = {"api-call"};
  s.rate_limit = {1000, 1h};
  f.rules.set_policy(std::make_shared<const chitty::policy::Policy>(*chitty::policy::Policy::build({s})));
  Ask a;
  a.ref = *chitty::catalog::parse_reference("op://Infra/Postgres/password");
  auto none = f.ask(a);
  CHECK(code_of(**none) == ErrorCode::bad_request);
  CHECK_THAT((*none)->outcome.error().message, Catch::Contains("api-call"));
  a.purpose = "debugging";
  CHECK(code_of(**f.ask(a)) == ErrorCode::forbidden);
  a.purpose = "api-call";
  auto ok = f.ask(a);
  f.primary->answer("pw");
  CHECK((*ok)->outcome);
}

TEST_CASE("emergency revocation: every source blocked, cache wiped, fetches in flight answered at once",
          "[broker][revocation]") {
  using chitty::policy::Revocation;
  Fixture f;
  f.ask_ref("op://Infra/Postgres/password");
  f.primary->answer("pw");
  REQUIRE(f.cache->stats().entries == 1);

  SECTION("a reference: cached copy wiped, no fetch, then cleared") {
    Revocation r;
    r.kind = Revocation::Kind::ref;
    r.ref = *chitty::catalog::parse_reference("op://infra/postgres/PASSWORD");
    r.target = r.ref->display();
    r.reason = "leaked";
    r = described(*f.broker, r);
    f.broker->revoke(r);
    CHECK(f.cache->stats().entries == 0);
    auto blocked = f.ask_ref("op://Infra/Postgres/password");
    CHECK(code_of(**blocked) == ErrorCode::revoked);
    CHECK_THAT((*blocked)->outcome.error().message, Catch::Contains("leaked"));
    CHECK(f.primary->fetches == 1);  // nothing was fetched
    CHECK(f.broker->clear_revocation(r) == 1);
    auto again = f.ask_ref("op://Infra/Postgres/password");
    f.primary->answer("pw2");
    CHECK((*again)->outcome);
  }
  SECTION("a type blocks the env fallback too") {
    Revocation r;
    r.kind = Revocation::Kind::type;
    r.target = "openai_api_key";
    f.broker->revoke(described(*f.broker, r));
    auto blocked = f.ask_type("openai_api_key");
    CHECK(code_of(**blocked) == ErrorCode::revoked);
    CHECK(f.env->fetches == 0);
  }
  SECTION("a fetch in flight is answered revoked at once, and its late value is not kept") {
    auto waiting = f.ask_ref("op://Infra/Redis/password");
    auto also = f.ask_ref("op://Infra/Redis/password");
    REQUIRE_FALSE(waiting->has_value());
    Revocation r;
    r.kind = Revocation::Kind::all;
    f.broker->revoke(r);
    REQUIRE(waiting->has_value());
    CHECK(code_of(**waiting) == ErrorCode::revoked);
    CHECK(code_of(**also) == ErrorCode::revoked);
    f.primary->answer("late");  // the upstream answers after all
    CHECK(f.cache->stats().entries == 0);
    CHECK(f.broker->fetches_in_flight() == 0);
  }
  SECTION("a service: its requests refused, others served") {
    Revocation r;
    r.kind = Revocation::Kind::service;
    r.target = "app";
    f.broker->revoke(described(*f.broker, r));
    CHECK(code_of(**f.ask_ref("op://Infra/Postgres/password")) == ErrorCode::revoked);
    auto batch = caller_with_uid(2000);
    Ask a;
    a.credential_type = "db_password";
    CHECK((*f.ask(a, &batch))->outcome);  // cached, served to the other service
  }
}

TEST_CASE("a glob on names allows a request by IDs once a primary spells it, and only then", "[broker][policy]") {
  Fixture f;
  // The fake primary resolves nothing (resolves() is false): a request by IDs
  // that no glob covers as written is refused without a fetch.
  auto by_id = f.ask_ref("op://k3m9servicesvault000000001/abcdefghijklmnopqrstuvwxyz/token");
  REQUIRE(by_id->has_value());
  CHECK(code_of(**by_id) == ErrorCode::forbidden);
  CHECK(f.primary->fetches == 0);
}

namespace {

// One secret in a sectioned item, by its IDs (as Connect spells them, mixed
// case) and by its names.
const chitty::catalog::Reference kIds{"v1d0000000000000000000000a", "abcdefghijklmnopqrstuvwxyz", std::string("Section_Abc"),
                                      "notesPlain"};
const chitty::catalog::Reference kNames{"Infra", "Postgres", std::string("Main"), "Notes"};

chitty::policy::Revocation ref_revocation(const chitty::catalog::Reference& ref) {
  chitty::policy::Revocation r;
  r.kind = chitty::policy::Revocation::Kind::ref;
  r.ref = ref;
  r.target = ref.display();
  r.reason = "leaked";
  return r;
}

}  // namespace

TEST_CASE("a revocation in the resolved-ID form the audit shows blocks every spelling, cached, refreshed, restarted",
          "[broker][revocation]") {
  Fixture f;
  f.primary->resolving = true;
  // Connect resolves a mixed spelling too (vault by name, item by ID, ...).
  f.primary->same_secret(kIds, kNames, {*chitty::catalog::parse_reference("op://Infra/abcdefghijklmnopqrstuvwxyz/Main/notesPlain")});
  // Served by names: the fetch resolves the names to the IDs (as Connect's
  // provider does), the value is cached under the IDs verbatim.
  auto served = f.ask_ref("op://Infra/Postgres/Main/Notes");
  f.primary->resolved[kNames.canonical()] = kIds.id_key();
  f.primary->answer("pw");
  REQUIRE((*served)->outcome);
  CHECK((*served)->event.ref == kIds.id_key());  // what the audit event shows
  REQUIRE(f.cache->stats().entries == 1);

  // The operator copies the reference from the audit event.
  auto rv = described(*f.broker, ref_revocation(kIds));
  CHECK(rv.resolved);
  CHECK(rv.key == kIds.id_key());
  f.broker->revoke(rv);
  CHECK(f.cache->stats().entries == 0);  // the cached value is wiped
  int fetches = f.primary->fetches;
  for (const char* spelling :
       {"op://Infra/Postgres/Main/Notes", "op://INFRA/postgres/main/NOTES",
        "op://v1d0000000000000000000000a/abcdefghijklmnopqrstuvwxyz/section_abc/notesplain",
        "op://Infra/abcdefghijklmnopqrstuvwxyz/Main/notesPlain"}) {
    INFO(spelling);
    CHECK(code_of(**f.ask_ref(spelling)) == ErrorCode::revoked);
    CHECK(code_of(**f.ask_ref(spelling, true)) == ErrorCode::revoked);  // refresh=true too
  }
  CHECK(f.primary->fetches == fetches);  // not even fetched

  // A restart: the revocation as persisted, a new broker whose upstream is
  // down and knows no resolution yet, an environment fallback for the
  // names (through the catalog).
  Fixture g;
  g.primary->up = false;
  g.broker->update_mode();
  g.broker->set_revocations(f.broker->revocations());
  CHECK(code_of(**g.ask_ref("op://infra/POSTGRES/Main/Notes")) == ErrorCode::revoked);
  CHECK(code_of(**g.ask_ref("op://v1d0000000000000000000000a/abcdefghijklmnopqrstuvwxyz/Section_Abc/NOTESPLAIN")) ==
        ErrorCode::revoked);
  CHECK(g.primary->fetches == 0);
  CHECK(g.env->fetches == 0);
}

TEST_CASE("a revocation by names made while the upstream is down covers the IDs once it can resolve them",
          "[broker][revocation]") {
  Fixture f;
  f.primary->resolving = true;
  f.primary->same_secret(kIds, kNames, {});
  f.primary->up = false;
  f.broker->update_mode();
  REQUIRE(f.broker->mode() == Mode::fallback);
  auto rv = described(*f.broker, ref_revocation(*chitty::catalog::parse_reference("op://infra/postgres/main/notes")));
  CHECK_FALSE(rv.resolved);  // nobody could say which IDs these names are
  f.broker->revoke(rv);
  bool changed = false;
  f.broker->on_revocations_changed([&] { changed = true; });

  // The upstream is back (the provider's listener updates the mode): the
  // revocation is resolved at once and learns the IDs.
  f.primary->up = true;
  f.broker->update_mode();
  CHECK(changed);  // the app persists what was learnt
  REQUIRE(f.broker->revocations().list().size() == 1);
  CHECK(f.broker->revocations().list()[0].resolved);
  CHECK(f.broker->revocations().list()[0].key == kIds.id_key());
  auto by_ids = f.ask_ref(kIds.display());
  CHECK(code_of(**by_ids) == ErrorCode::revoked);
  CHECK(f.primary->fetches == 0);
}

TEST_CASE("an unresolved revocation is resolved before a primary's value is kept or served", "[broker][revocation]") {
  Fixture f;
  f.primary->same_secret(kIds, kNames, {});
  f.primary->up = false;
  f.broker->update_mode();
  f.primary->resolving = true;
  f.broker->revoke(described(*f.broker, ref_revocation(kNames)));
  // A request by the IDs goes out while the revocation cannot be resolved
  // (the upstream is still marked down); its answer arrives after the
  // upstream is back: the revocation is resolved before the value is kept.
  auto by_ids = f.ask_ref(kIds.display());
  REQUIRE_FALSE(by_ids->has_value());
  // Resolutions answer on a later turn, as the real provider's do: the value
  // waits for the resolution the upstream's return started.
  f.primary->resolve_later = true;
  f.primary->resolved[kIds.canonical()] = kIds.id_key();
  f.primary->answer("pw");
  CHECK_FALSE(by_ids->has_value());  // held, neither served nor cached
  CHECK(f.cache->stats().entries == 0);
  REQUIRE(f.primary->resolves_held() > 0);
  f.primary->complete_resolves();
  REQUIRE(by_ids->has_value());
  CHECK(code_of(**by_ids) == ErrorCode::revoked);
  CHECK(f.cache->stats().entries == 0);
}

TEST_CASE("while a revocation cannot be told apart from a catalog entry, that entry's fallbacks are withheld",
          "[broker][revocation]") {
  Fixture f;
  f.primary->resolving = true;
  // The catalog's openai_api_key (env OPENAI_API_KEY) is op://AI/OpenAI/api_key;
  // the operator revokes the IDs form of some secret while Connect is down.
  f.primary->up = false;
  f.broker->update_mode();
  f.broker->revoke(described(*f.broker, ref_revocation(kIds)));
  auto r = f.ask_type("openai_api_key");
  f.primary->fail(FetchError::unavailable);
  REQUIRE(r->has_value());
  CHECK(code_of(**r) == ErrorCode::upstream_unavailable);
  CHECK_THAT((*r)->outcome.error().message, Catch::Contains("withheld"));
  CHECK(f.env->fetches == 0);
  // Connect resolves both: different secrets. The fallback is served again.
  f.primary->same_secret(kIds, kNames, {});
  f.primary->same_secret(chitty::catalog::Reference{"v2000000000000000000000000a", "openaiitem000000000000000a", std::nullopt, "api_key"},
                         *chitty::catalog::parse_reference("op://AI/OpenAI/api_key"), {});
  f.primary->up = true;
  f.broker->update_mode();
  REQUIRE(f.broker->revocations().list().size() == 1);
  CHECK(f.broker->revocations().list()[0].checked("openai_api_key"));
  CHECK(f.broker->revocations().list()[0].checked("db_password"));  // not found: names nothing
  f.primary->up = false;
  f.broker->update_mode();
  auto again = f.ask_type("openai_api_key");
  f.primary->fail(FetchError::unavailable);
  REQUIRE(f.env->pending() == 1);
  f.env->answer("sk-env");
  REQUIRE(again->has_value());
  CHECK((*again)->outcome);
}

TEST_CASE("clearing by another spelling lifts the revocation of the same secret", "[broker][revocation]") {
  Fixture f;
  f.primary->resolving = true;
  f.primary->same_secret(kIds, kNames, {});
  f.broker->revoke(described(*f.broker, ref_revocation(kNames)));
  CHECK(code_of(**f.ask_ref(kIds.display())) == ErrorCode::revoked);
  CHECK(f.broker->clear_revocation(described(*f.broker, ref_revocation(kIds))) == 1);
  auto again = f.ask_ref(kIds.display());
  f.primary->answer("pw");
  CHECK((*again)->outcome);
}

TEST_CASE("cache states have the names of the audit line and the X-Cache header", "[broker]") {
  using chitty::broker::CacheState;
  CHECK(chitty::broker::cache_state_name(CacheState::hit) == "hit");
  CHECK(chitty::broker::cache_state_name(CacheState::stale) == "stale");
  CHECK(chitty::broker::cache_state_name(CacheState::miss) == "miss");
  CHECK(chitty::broker::cache_header(CacheState::hit) == "HIT");
  CHECK(chitty::broker::cache_header(CacheState::stale) == "STALE");
  CHECK(chitty::broker::cache_header(CacheState::miss) == "MISS");
}
