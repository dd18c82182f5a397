// [risk] as the configuration describes it: the documented defaults are the
// engine's, and each key reaches its option.
#include <catch2/catch.hpp>

#include "chitty/config/config.hpp"
#include "chitty/risk/options_from.hpp"

using namespace std::chrono_literals;

TEST_CASE("[risk]'s defaults are the engine's defaults", "[risk][config]") {
  const chitty::config::Config c = chitty::config::defaults();
  CHECK(c.risk.enabled);
  const chitty::risk::Options o = chitty::risk::options_from(c.risk);
  const chitty::risk::Options engine;
  CHECK(o.weights == engine.weights);
  CHECK(o.learning_period == engine.learning_period);
  CHECK(o.learning_requests == engine.learning_requests);
  CHECK(o.enumeration_window == engine.enumeration_window);
  CHECK(o.enumeration_refs == engine.enumeration_refs);
  CHECK(o.enumeration_failures == engine.enumeration_failures);
  CHECK(o.novelty_window == engine.novelty_window);
  CHECK(o.novelty_refs == engine.novelty_refs);
  CHECK(o.odd_hours_window == engine.odd_hours_window);
  CHECK(o.odd_hours_requests == engine.odd_hours_requests);
  CHECK(o.burst_min == engine.burst_min);
  CHECK(o.burst_factor == Approx(engine.burst_factor));
  CHECK(o.unusual_hour_share == Approx(engine.unusual_hour_share));
  CHECK(o.hours_learning_period == engine.hours_learning_period);
  CHECK(o.revoked_within == engine.revoked_within);
  CHECK(o.category_purposes.empty());
}

TEST_CASE("each [risk] key reaches its option", "[risk][config]") {
  chitty::config::RiskConfig c = chitty::config::defaults().risk;
  c.weights.identity_partial = 1;
  c.weights.service_mismatch = 2;
  c.weights.purpose_not_allowed = 3;
  c.weights.first_access = 4;
  c.weights.new_references = 5;
  c.weights.new_executable = 6;
  c.weights.new_unit = 7;
  c.weights.new_uid = 8;
  c.weights.unusual_hour = 9;
  c.weights.unusual_hour_activity = 10;
  c.weights.burst = 11;
  c.weights.enumeration = 12;
  c.weights.recently_revoked = 13;
  c.burst_factor_percent = 250;
  c.unusual_hour_percent = 4;
  c.enumeration_refs = 3;
  c.categories = {{"infrastructure", {"deploy", "provision"}}};
  const chitty::risk::Options o = chitty::risk::options_from(c);
  for (std::size_t i = 0; i < chitty::risk::kFactors; ++i) {
    INFO(chitty::risk::factor_name(static_cast<chitty::risk::Factor>(i)));
    CHECK(o.weights[i] == static_cast<int>(i) + 1);  // Factor order
  }
  CHECK(o.burst_factor == Approx(2.5));
  CHECK(o.unusual_hour_share == Approx(0.04));
  CHECK(o.enumeration_refs == 3);
  CHECK(chitty::risk::purpose_allowed(o, "infrastructure", "deploy"));
  CHECK_FALSE(chitty::risk::purpose_allowed(o, "infrastructure", "mining"));
  CHECK(chitty::risk::purpose_allowed(o, "infrastructure", ""));  // none stated: not judged
  CHECK(chitty::risk::purpose_allowed(o, "ai", "mining"));         // no entry: any purpose
}
