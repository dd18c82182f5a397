// A broker on a manual clock with a fake primary (the Connect provider's
// place) and a fake env fallback, a two-entry catalog and two services:
// what the broker's and the prefetcher's unit tests start from.
#pragma once

#include <catch2/catch.hpp>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "chitty/broker/broker.hpp"
#include "fake_provider.hpp"
#include "manual_clock.hpp"

namespace chitty::testing {

using broker::Answer;
using broker::Ask;
using broker::Broker;

inline identity::Identity caller_with_uid(uid_t uid) {
  identity::Identity id;
  id.raw_uid = uid;
  id.uid = identity::Fact<uid_t>::known(uid);
  id.pid = identity::Fact<pid_t>::known(4242);
  id.exe = identity::Fact<std::string>::known("/usr/bin/app");
  return id;
}

struct Fixture {
  ManualClock clock;
  policy::Rules rules;
  policy::Gate gate{rules, clock};
  std::unique_ptr<secure::Arena> arena;
  std::unique_ptr<secure::Sealer> sealer;
  std::unique_ptr<cache::Cache> cache;
  std::unique_ptr<FakeProvider> primary;
  std::unique_ptr<FakeProvider> env;
  std::unique_ptr<Broker> broker;
  identity::Identity app = caller_with_uid(1000);

  // `with_primary`: an upstream in front of the fallback (the Connect
  // provider's place); without it the fallback is the only source.
  explicit Fixture(bool with_primary = true) {
    secure::ArenaOptions ao;
    ao.capacity = 4 << 20;
    arena = std::move(*secure::Arena::create(ao));
    sealer = std::move(*secure::Sealer::create(*arena));
    cache = std::make_unique<cache::Cache>(*arena, *sealer, clock, cache::Options{});
    if (with_primary) primary = std::make_unique<FakeProvider>(*arena, "1password");
    env = std::make_unique<FakeProvider>(*arena, "env", false);
    broker::Sources sources;
    if (primary) sources.primaries.push_back(primary.get());
    sources.fallbacks.push_back(env.get());
    broker = std::make_unique<Broker>(*cache, sources, rules, gate, clock);

    auto cat = catalog::Catalog::build({
        {"openai_api_key", "op://AI/OpenAI/api_key", "OPENAI_API_KEY", "", "ai", ""},
        {"db_password", "op://Infra/Postgres/password", "", "", "", ""},
    });
    REQUIRE(cat);
    rules.set_catalog(std::make_shared<const catalog::Catalog>(std::move(*cat)));
    auto spec = [](std::string name, std::int64_t uid, std::vector<std::string> allow) {
      policy::ServiceSpec s;
      s.name = std::move(name);
      s.uid = uid;
      s.allow = std::move(allow);
      s.rate_limit = Rate{1000000, std::chrono::hours(1)};
      return s;
    };
    auto pol = policy::Policy::build({
        spec("app", 1000, {"type:openai_api_key", "op://Infra/**", "op://Shared/*/token", "op://v1d0000000000000000000000a/**"}),
        spec("batch", 2000, {"type:db_password"}),
    });
    REQUIRE(pol);
    rules.set_policy(std::make_shared<const policy::Policy>(std::move(*pol)));
  }

  // Starts a retrieval; the answer lands in the returned slot (now or when a
  // fetch completes).
  std::shared_ptr<std::optional<Answer>> ask(Ask a, const identity::Identity* who = nullptr) {
    auto slot = std::make_shared<std::optional<Answer>>();
    broker->retrieve(who ? *who : app, std::move(a), "req-1", [slot](Answer ans) { *slot = std::move(ans); });
    return slot;
  }
  std::shared_ptr<std::optional<Answer>> ask_ref(const std::string& ref, bool refresh = false) {
    Ask a;
    a.ref = *catalog::parse_reference(ref);
    a.refresh = refresh;
    return ask(std::move(a));
  }
  std::shared_ptr<std::optional<Answer>> ask_type(const std::string& type) {
    Ask a;
    a.credential_type = type;
    return ask(std::move(a));
  }
};

inline std::string value_of(const Answer& a) {
  auto b = a.outcome->value->bytes();
  return {b.data(), b.size()};
}

inline http::ErrorCode code_of(const Answer& a) { return a.outcome.error().code; }

}  // namespace chitty::testing
