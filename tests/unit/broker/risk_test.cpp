// The broker with a risk engine: every request scored before any value is
// unsealed (or fetched), each band's decision and what it tells the engine,
// step-up with the right, wrong and missing token, the alert on the deny
// band, and the factors the broker establishes (identity, context, purpose,
// revocation, enumeration through refusals).
#include <catch2/catch.hpp>

#include <algorithm>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "broker_fixture.hpp"
#include "chitty/risk/engine.hpp"

using namespace std::chrono_literals;
using chitty::broker::Answer;
using chitty::broker::Ask;
using chitty::broker::RiskAlert;
using chitty::broker::StepUp;
using chitty::http::ErrorCode;
using chitty::risk::Factor;
using chitty::testing::code_of;
using chitty::testing::value_of;
using chitty::upstream::FetchError;

namespace {

// Learning over at once (soft factors count from the first request); hours
// never judged (the clock starts at the epoch's first hour).
chitty::risk::Options scoring(Factor heavy = Factor::first_access, int weight = 10) {
  chitty::risk::Options o;
  o.learning_period = 0s;
  o.learning_requests = 0;
  o.hours_learning_period = std::chrono::hours(24 * 365);
  o.weights[static_cast<std::size_t>(heavy)] = weight;
  return o;
}

// The same with the fixture's caller never new: its executable and uid
// weigh nothing, so that a test sees only the factor it is about.
chitty::risk::Options scoring_known_caller(Factor heavy = Factor::first_access, int weight = 10) {
  chitty::risk::Options o = scoring(heavy, weight);
  o.weights[static_cast<std::size_t>(Factor::new_executable)] = 0;
  o.weights[static_cast<std::size_t>(Factor::new_uid)] = 0;
  return o;
}

// The broker fixture with an engine and a caller whose identity is
// established in full (unit and container known: none).
struct RiskFixture : chitty::testing::Fixture {
  chitty::risk::Engine engine;
  std::vector<RiskAlert> alerts;

  explicit RiskFixture(chitty::risk::Options o = scoring()) : engine(std::move(o), clock) {
    app.unit = chitty::identity::Fact<std::string>::known("");
    app.container = chitty::identity::Fact<std::string>::known("");
    broker->set_risk(&engine);
    broker->on_risk_alert([this](const RiskAlert& a) { alerts.push_back(a); });
  }

  std::shared_ptr<std::optional<Answer>> ask_with(const std::string& ref, StepUp step_up = StepUp::absent,
                                                  std::string purpose = "") {
    Ask a;
    a.ref = *chitty::catalog::parse_reference(ref);
    a.step_up = step_up;
    a.purpose = std::move(purpose);
    return ask(std::move(a));
  }
};

bool fired(const Answer& a, std::string_view factor) {
  const auto& fs = a.event.risk->factors;
  return std::any_of(fs.begin(), fs.end(), [&](const auto& f) { return f.first == factor; });
}

int weight_of(const Answer& a, std::string_view factor) {
  for (const auto& [name, weight] : a.event.risk->factors) {
    if (name == factor) return weight;
  }
  return -1;
}

}  // namespace

TEST_CASE("risk: a refusal carries its score; nothing is fetched for it", "[broker][risk]") {
  // Out of learning with nothing learnt: a new reference, executable and uid.
  RiskFixture f;
  auto first = f.ask_with("op://Infra/Postgres/password");
  REQUIRE(first->has_value());
  const Answer& a = **first;
  REQUIRE_FALSE(a.outcome);
  CHECK(code_of(a) == ErrorCode::step_up_required);
  REQUIRE(a.event.risk);
  CHECK(a.event.risk->score == 10 + 25 + 25);
  CHECK(a.event.risk->level == "high");
  CHECK(a.event.risk->decision == "step_up");
  CHECK(a.event.risk->factors ==
        std::vector<std::pair<std::string, int>>{{"first_access", 10}, {"new_executable", 25}, {"new_uid", 25}});
  CHECK(f.primary->fetches == 0);
}

TEST_CASE("risk: a first request of a known caller scores only what is new", "[broker][risk]") {
  // New executables and uids weigh nothing here: the reference alone is new.
  auto o = scoring_known_caller();
  RiskFixture f(o);
  auto first = f.ask_with("op://Infra/Postgres/password");
  f.primary->answer("pw");
  REQUIRE((*first)->outcome);
  const Answer& a = **first;
  CHECK(a.event.risk->score == 10);
  CHECK(a.event.risk->level == "low");
  CHECK(a.event.risk->decision == "allow");
  CHECK(fired(a, "first_access"));
  CHECK_FALSE(fired(a, "identity_partial"));
  CHECK(weight_of(a, "new_executable") == 0);  // reported, weighing nothing

  // Served in the allow band: learnt. The second read is not a first access.
  auto second = f.ask_with("op://Infra/Postgres/password");
  REQUIRE((*second)->outcome);
  CHECK((*second)->event.risk->score == 0);
  CHECK((*second)->event.risk->factors.empty());
  CHECK(f.alerts.empty());
}

TEST_CASE("risk: an identity not fully established scores identity_partial", "[broker][risk]") {
  auto o = scoring_known_caller();
  RiskFixture f(o);
  chitty::identity::Identity partial = f.app;
  partial.unit = chitty::identity::Fact<std::string>::unknown("cgroup unreadable");
  Ask a;
  a.ref = *chitty::catalog::parse_reference("op://Infra/Postgres/password");
  auto slot = f.ask(std::move(a), &partial);
  REQUIRE(f.primary->pending() == 1);
  f.primary->answer("pw");
  REQUIRE((*slot)->outcome);
  CHECK(weight_of(**slot, "identity_partial") == 20);
}

TEST_CASE("risk: an executable the agent may not read, or a unit systemd names, is not a partial identity",
          "[broker][risk]") {
  auto o = scoring_known_caller();
  o.weights[static_cast<std::size_t>(Factor::new_unit)] = 0;
  o.weights[static_cast<std::size_t>(Factor::first_access)] = 0;
  RiskFixture f(o);
  auto score = [&](const chitty::identity::Identity& who) {
    Ask a;
    a.ref = *chitty::catalog::parse_reference("op://Infra/Postgres/password");
    auto slot = f.ask(std::move(a), &who);
    if (f.primary->pending() > 0) f.primary->answer("pw");
    REQUIRE(slot->has_value());
    return fired(**slot, "identity_partial");
  };
  // Another user's process under the shipped unit (no CAP_SYS_PTRACE).
  chitty::identity::Identity withheld = f.app;
  withheld.exe = chitty::identity::Fact<std::string>::unknown("permission denied reading /proc/42/exe");
  withheld.exe_withheld = true;
  CHECK_FALSE(score(withheld));
  // An executable that could not be established for another reason counts.
  chitty::identity::Identity hidden = withheld;
  hidden.exe_withheld = false;
  CHECK(score(hidden));
  // A LoadCredential= request: the unit, and nothing else, is established.
  chitty::identity::Identity unit = f.app;
  unit.origin = chitty::identity::Origin::load_credential;
  unit.exe = chitty::identity::Fact<std::string>::unknown("a LoadCredential= request");
  unit.unit = chitty::identity::Fact<std::string>::known("app.service");
  unit.container = chitty::identity::Fact<std::string>::unknown("the helper's cgroup is unreadable");
  CHECK_FALSE(score(unit));
  unit.unit = chitty::identity::Fact<std::string>::unknown("not named");
  CHECK(score(unit));
}

TEST_CASE("risk: the monitor band serves, flags, and does not teach the reference", "[broker][risk]") {
  auto o = scoring_known_caller(Factor::first_access, 35);
  RiskFixture f(o);
  auto first = f.ask_with("op://Infra/Postgres/password");
  f.primary->answer("pw");
  REQUIRE((*first)->outcome);
  CHECK((*first)->event.risk->decision == "monitor");
  CHECK((*first)->event.risk->level == "medium");
  // Not learnt: the next read is still a first access (and served).
  auto second = f.ask_with("op://Infra/Postgres/password");
  REQUIRE((*second)->outcome);
  CHECK((*second)->event.risk->decision == "monitor");
  CHECK(fired(**second, "first_access"));
}

TEST_CASE("risk: the step-up band needs the service's step-up token", "[broker][risk][step-up]") {
  auto o = scoring_known_caller(Factor::first_access, 55);
  RiskFixture f(o);

  SECTION("missing: refused step_up_required, nothing fetched") {
    auto a = f.ask_with("op://Infra/Postgres/password");
    REQUIRE(a->has_value());
    CHECK(code_of(**a) == ErrorCode::step_up_required);
    CHECK((**a).outcome.error().message.find("X-Chitty-Step-Up") != std::string::npos);
    CHECK((**a).event.risk->decision == "step_up");
    CHECK(f.primary->fetches == 0);
  }
  SECTION("wrong: refused step_up_required, nothing fetched") {
    auto a = f.ask_with("op://Infra/Postgres/password", StepUp::wrong);
    REQUIRE(a->has_value());
    CHECK(code_of(**a) == ErrorCode::step_up_required);
    CHECK((**a).outcome.error().message.find("does not carry") != std::string::npos);
    CHECK(f.primary->fetches == 0);
  }
  SECTION("no memory to compare: 503 server_busy, not a wrong token") {
    auto a = f.ask_with("op://Infra/Postgres/password", StepUp::unavailable);
    REQUIRE(a->has_value());
    CHECK(code_of(**a) == ErrorCode::server_busy);
    CHECK(f.primary->fetches == 0);
  }
  SECTION("right: served, marked as stepped up, and not learnt as usual") {
    auto a = f.ask_with("op://Infra/Postgres/password", StepUp::valid);
    f.primary->answer("pw");
    REQUIRE((*a)->outcome);
    CHECK(value_of(**a) == "pw");
    CHECK((**a).event.risk->step_up);
    CHECK((**a).event.risk->decision == "step_up");
    auto again = f.ask_with("op://Infra/Postgres/password");
    REQUIRE(again->has_value());
    CHECK(code_of(**again) == ErrorCode::step_up_required);  // still a first access: not learnt
  }
  CHECK(f.alerts.empty());
}

TEST_CASE("risk: the deny band refuses before any fetch and alerts", "[broker][risk][deny]") {
  auto o = scoring(Factor::first_access, 80);
  RiskFixture f(o);
  auto a = f.ask_with("op://Infra/Postgres/password", StepUp::valid);  // a step-up token does not lift a deny
  REQUIRE(a->has_value());
  CHECK(code_of(**a) == ErrorCode::risk_denied);
  CHECK((**a).outcome.error().message.find("risk score 100") != std::string::npos);
  CHECK((**a).event.risk->level == "critical");
  CHECK((**a).event.risk->decision == "deny");
  CHECK(f.primary->fetches == 0);
  CHECK(f.cache->stats().entries == 0);
  REQUIRE(f.alerts.size() == 1);
  CHECK(f.alerts[0].service == "app");
  CHECK(f.alerts[0].code == "risk_denied");
  CHECK(f.alerts[0].ref == "op://infra/postgres/password");
  CHECK(f.alerts[0].assessment.score == 100);
}

TEST_CASE("risk: a cached value is not unsealed for a refused score", "[broker][risk][deny]") {
  auto o = scoring_known_caller();
  RiskFixture f(o);
  f.ask_with("op://Infra/Postgres/password");
  f.primary->answer("pw");
  REQUIRE(f.cache->stats().entries == 1);
  const auto hits = f.cache->stats().hits;
  // Another executable of the service, with new executables now weighing 80.
  auto heavy = scoring(Factor::new_executable, 80);
  heavy.weights[static_cast<std::size_t>(Factor::new_uid)] = 0;
  f.engine.set_options(heavy);
  chitty::identity::Identity other = f.app;
  other.exe = chitty::identity::Fact<std::string>::known("/tmp/stolen");
  Ask a;
  a.ref = *chitty::catalog::parse_reference("op://Infra/Postgres/password");
  auto slot = f.ask(std::move(a), &other);
  REQUIRE(slot->has_value());
  CHECK(code_of(**slot) == ErrorCode::risk_denied);
  CHECK(weight_of(**slot, "new_executable") == 80);
  CHECK(f.cache->stats().hits == hits);  // never looked up, never unsealed
}

TEST_CASE("risk: a claimed service that is not the caller scores 100 and alerts", "[broker][risk]") {
  RiskFixture f;
  Ask a;
  a.ref = *chitty::catalog::parse_reference("op://Infra/Postgres/password");
  a.claimed_service = "batch";
  auto slot = f.ask(std::move(a));
  REQUIRE(slot->has_value());
  CHECK(code_of(**slot) == ErrorCode::context_mismatch);
  CHECK((**slot).event.risk->score == 100);
  CHECK(weight_of(**slot, "service_mismatch") == 100);
  REQUIRE(f.alerts.size() == 1);
  CHECK(f.alerts[0].code == "context_mismatch");
}

TEST_CASE("risk: a purpose the credential's category does not allow", "[broker][risk]") {
  auto o = scoring_known_caller();
  o.category_purposes = {{"ai", {"chat", "embeddings"}}};
  RiskFixture f(o);
  auto ok = f.ask_type("openai_api_key");  // no purpose stated: not judged
  f.primary->answer("sk");
  REQUIRE((*ok)->outcome);
  CHECK_FALSE(fired(**ok, "purpose_not_allowed"));

  Ask chat;
  chat.credential_type = "openai_api_key";
  chat.purpose = "chat";
  auto fine = f.ask(std::move(chat));
  REQUIRE((*fine)->outcome);
  CHECK_FALSE(fired(**fine, "purpose_not_allowed"));

  Ask mining;
  mining.credential_type = "openai_api_key";
  mining.purpose = "mining";
  auto odd = f.ask(std::move(mining));
  REQUIRE((*odd)->outcome);
  CHECK(weight_of(**odd, "purpose_not_allowed") == 40);
  CHECK((**odd).event.risk->decision == "monitor");
}

TEST_CASE("risk: a reference revoked and cleared scores recently_revoked", "[broker][risk]") {
  auto o = scoring_known_caller();
  RiskFixture f(o);
  f.ask_with("op://Infra/Postgres/password");
  f.primary->answer("pw");
  chitty::policy::Revocation r;
  r.kind = chitty::policy::Revocation::Kind::ref;
  r.ref = *chitty::catalog::parse_reference("op://Infra/Postgres/password");
  r.target = r.ref->display();
  std::optional<chitty::policy::Revocation> described;
  f.broker->describe(r, [&](chitty::policy::Revocation d) { described = std::move(d); });
  REQUIRE(described);
  f.broker->revoke(*described);
  CHECK(f.broker->clear_revocation(*described) == 1);
  auto after = f.ask_with("op://Infra/Postgres/password");
  REQUIRE(after->has_value());
  CHECK(weight_of(**after, "recently_revoked") == 50);
  CHECK(code_of(**after) == ErrorCode::step_up_required);
  f.clock.advance(25h);
  auto later = f.ask_with("op://Infra/Postgres/password");
  f.primary->answer("pw2");
  REQUIRE((*later)->outcome);
  CHECK_FALSE(fired(**later, "recently_revoked"));
}

TEST_CASE("risk: enumeration of new references is denied within 10 requests", "[broker][risk][enumeration]") {
  auto o = scoring_known_caller();
  RiskFixture f(o);
  // A baseline: one reference, read for a while.
  for (int i = 0; i < 3; ++i) {
    f.ask_with("op://Infra/Postgres/password");
    if (f.primary->pending() > 0) f.primary->answer("pw");
    f.clock.advance(1min);
  }
  int denied_at = 0;
  for (int i = 1; i <= 10 && denied_at == 0; ++i) {
    auto a = f.ask_with("op://Infra/item" + std::to_string(i) + "/password");
    if (f.primary->pending() > 0) f.primary->answer("v");
    REQUIRE(a->has_value());
    if (!(**a).outcome && code_of(**a) == ErrorCode::risk_denied) {
      CHECK(fired(**a, "enumeration"));
      denied_at = i;
    }
    f.clock.advance(50ms);
  }
  CHECK(denied_at > 0);
  CHECK(denied_at <= 8);
  CHECK_FALSE(f.alerts.empty());
}

TEST_CASE("risk: probing what the policy refuses makes every later request enumeration", "[broker][risk][enumeration]") {
  auto o = scoring_known_caller();
  RiskFixture f(o);
  f.ask_with("op://Infra/Postgres/password");
  f.primary->answer("pw");
  for (int i = 0; i < 5; ++i) {
    auto probe = f.ask_with("op://Payroll/secret" + std::to_string(i) + "/password");
    REQUIRE(probe->has_value());
    CHECK(code_of(**probe) == ErrorCode::forbidden);
    REQUIRE((**probe).event.risk);  // refusals by policy are scored too
  }
  // Its own, usual reference: refused while the window holds the failures.
  auto own = f.ask_with("op://Infra/Postgres/password");
  REQUIRE(own->has_value());
  CHECK(code_of(**own) == ErrorCode::risk_denied);
  CHECK(weight_of(**own, "enumeration") == 75);
  f.clock.advance(11s);
  auto later = f.ask_with("op://Infra/Postgres/password");
  REQUIRE((*later)->outcome);
  CHECK(value_of(**later) == "pw");
}

TEST_CASE("risk: not_found answers from the upstream count towards enumeration", "[broker][risk][enumeration]") {
  auto o = scoring_known_caller();
  o.weights[static_cast<std::size_t>(Factor::first_access)] = 0;
  o.weights[static_cast<std::size_t>(Factor::new_references)] = 0;
  o.enumeration_refs = 1000;  // only the failures count here
  RiskFixture f(o);
  for (int i = 0; i < 5; ++i) {
    auto a = f.ask_with("op://Infra/missing" + std::to_string(i) + "/password");
    f.primary->fail(FetchError::not_found, "no such item");
    REQUIRE(a->has_value());
    CHECK(code_of(**a) == ErrorCode::not_found);
  }
  auto next = f.ask_with("op://Infra/Postgres/password");
  REQUIRE(next->has_value());
  CHECK(code_of(**next) == ErrorCode::risk_denied);
  CHECK(f.primary->pending() == 0);
}

TEST_CASE("risk: without an engine nothing is scored", "[broker][risk]") {
  chitty::testing::Fixture f;
  auto a = f.ask_ref("op://Infra/Postgres/password");
  f.primary->answer("pw");
  REQUIRE((*a)->outcome);
  CHECK_FALSE((**a).event.risk.has_value());
}
