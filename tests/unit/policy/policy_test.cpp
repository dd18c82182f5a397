#include <catch2/catch.hpp>

#include "chitty/catalog/catalog.hpp"
#include "chitty/policy/policy.hpp"

using chitty::catalog::Catalog;
using chitty::catalog::parse_reference;
using chitty::policy::Policy;

namespace {

chitty::policy::ServiceSpec spec(std::string name, std::optional<std::int64_t> uid, std::vector<std::string> allow) {
  chitty::policy::ServiceSpec s;
  s.name = std::move(name);
  s.uid = uid;
  s.allow = std::move(allow);
  return s;
}

chitty::identity::Identity with_uid(uid_t uid) {
  chitty::identity::Identity id;
  id.uid = chitty::identity::Fact<uid_t>::known(uid);
  return id;
}

}  // namespace

TEST_CASE("the catalog finds entries by type and by any spelling of their reference", "[catalog]") {
  auto c = Catalog::build({{"openai_api_key", "op://AI Keys/OpenAI/api_key", "OPENAI_API_KEY", "", "ai", ""},
                           {"openai_alias", "op://ai keys/openai/API_KEY", "", "", "", ""}});
  REQUIRE(c);
  auto e = c->by_type("openai_api_key");
  REQUIRE(e);
  CHECK(e->key == "op://ai keys/openai/api_key");
  CHECK(e->env == "OPENAI_API_KEY");
  CHECK(c->by_key("op://ai keys/openai/api_key") == e);  // the first of two aliases keeps the key
  CHECK(c->by_type("openai_alias")->key == e->key);
  CHECK(c->by_type("nope") == nullptr);
  CHECK(c->by_key("op://x/y/z") == nullptr);
  CHECK(c->entries().size() == 2);
}

TEST_CASE("the catalog refuses what the config validation would", "[catalog]") {
  auto bad_ref = Catalog::build({{"t", "op://only/two", "", "", "", ""}});
  REQUIRE_FALSE(bad_ref);
  CHECK_THAT(bad_ref.error().message, Catch::Contains("credential \"t\""));
  auto twice = Catalog::build({{"t", "op://a/b/c", "", "", "", ""}, {"t", "op://a/b/d", "", "", "", ""}});
  REQUIRE_FALSE(twice);
  CHECK_THAT(twice.error().message, Catch::Contains("defined twice"));
}

TEST_CASE("a service is recognised by its uid, from established facts only", "[policy]") {
  auto p = Policy::build({spec("web", 33, {"op://Web/**"})});
  REQUIRE(p);
  REQUIRE(p->service_for(with_uid(33)));
  CHECK(p->service_for(with_uid(33))->name == "web");
  CHECK(p->service_for(with_uid(34)) == nullptr);
  chitty::identity::Identity unknown;
  unknown.raw_uid = 33;  // the kernel said 33, but the fact is not established
  unknown.uid = chitty::identity::Fact<uid_t>::unknown("overflow uid");
  CHECK(p->service_for(unknown) == nullptr);
}

TEST_CASE("allow rules: catalog types, references and globs", "[policy]") {
  auto cat = Catalog::build({{"openai_api_key", "op://AI/OpenAI/api_key", "", "", "", ""}});
  REQUIRE(cat);
  auto p = Policy::build({spec("svc", 1, {"type:openai_api_key", "op://Infra/*/password", "op://Shared/**"})});
  REQUIRE(p);
  const auto& svc = p->services()[0];
  auto ref = [](const char* s) { return *parse_reference(s); };
  auto entry = cat->by_type("openai_api_key");
  CHECK(Policy::allows(svc, entry.get(), entry->ref));
  CHECK(Policy::allows(svc, cat->by_key(ref("op://ai/OPENAI/api_key").canonical()).get(), ref("op://ai/OPENAI/api_key")));
  CHECK_FALSE(Policy::allows(svc, nullptr, ref("op://AI/OpenAI/api_key")));  // type rules need the catalog
  CHECK(Policy::allows(svc, nullptr, ref("op://infra/Postgres/PASSWORD")));
  CHECK_FALSE(Policy::allows(svc, nullptr, ref("op://Infra/Postgres/section/password")));
  CHECK_FALSE(Policy::allows(svc, nullptr, ref("op://Infra/Postgres/username")));
  CHECK(Policy::allows(svc, nullptr, ref("op://Shared/a/b/c")));
  CHECK_FALSE(Policy::allows(svc, nullptr, ref("op://Sharedx/a/b")));
  auto none = Policy::build({spec("empty", 2, {})});
  CHECK_FALSE(Policy::allows(none->services()[0], entry.get(), entry->ref));  // no default grant
}

TEST_CASE("the policy refuses a rule that does not parse, or a uid out of range", "[policy]") {
  CHECK_FALSE(Policy::build({spec("s", 1, {"op://Vault/**x"})}));
  CHECK_FALSE(Policy::build({spec("s", -1, {})}));
  CHECK_FALSE(Policy::build({spec("s", 4294967295, {})}));
  CHECK_FALSE(Policy::build({spec("no selector", std::nullopt, {})}));
}

namespace {

using chitty::identity::Fact;
using chitty::identity::Identity;

Identity full_identity() {
  Identity id;
  id.uid = Fact<uid_t>::known(1001);
  id.gid = Fact<gid_t>::known(2002);
  id.exe = Fact<std::string>::known("/usr/bin/registry");
  id.unit = Fact<std::string>::known("chitty-registry.service");
  id.container = Fact<std::string>::known("3f4e5d6c7b8a99887766554433221100ffeeddccbbaa00112233445566778899");
  return id;
}

}  // namespace

TEST_CASE("every given selector must match an established fact; the first service that matches wins",
          "[policy][selectors]") {
  using chitty::policy::ServiceSpec;
  auto with = [](std::string name, auto set) {
    ServiceSpec s;
    s.name = std::move(name);
    set(s);
    return s;
  };
  auto p = Policy::build({
      with("by-unit-and-uid", [](ServiceSpec& s) { s.unit = "chitty-registry.service"; s.uid = 1001; }),
      with("by-exe", [](ServiceSpec& s) { s.exe = "/usr/bin/registry"; }),
      with("by-container", [](ServiceSpec& s) { s.container = "3f4e5d6c7b8a"; }),
      with("by-gid", [](ServiceSpec& s) { s.gid = 2002; }),
  });
  REQUIRE(p);
  Identity id = full_identity();
  CHECK(p->service_for(id)->name == "by-unit-and-uid");  // first match wins

  id.uid = Fact<uid_t>::known(1002);  // the unit still matches, the uid does not: all selectors must
  CHECK(p->service_for(id)->name == "by-exe");
  id.exe = Fact<std::string>::unknown("exe not readable");  // unknown never matches
  CHECK(p->service_for(id)->name == "by-container");       // a 12-character prefix of the id
  id.container = Fact<std::string>::known("");              // established: in no container
  CHECK(p->service_for(id)->name == "by-gid");
  id.gid = Fact<gid_t>::unknown("not read");
  CHECK(p->service_for(id) == nullptr);
  CHECK(p->services()[0].selectors() == "uid=1001 unit=chitty-registry.service");
}

TEST_CASE("a default service catches the callers no other service matches", "[policy][selectors]") {
  chitty::policy::ServiceSpec web = spec("web", 33, {"op://Web/**"});
  chitty::policy::ServiceSpec everyone;
  everyone.name = "everyone";
  everyone.is_default = true;
  everyone.allow = {"op://Public/**"};
  auto p = Policy::build({web, everyone});
  REQUIRE(p);
  CHECK(p->service_for(with_uid(33))->name == "web");
  CHECK(p->service_for(with_uid(34))->name == "everyone");
  Identity nobody;  // nothing established at all
  CHECK(p->service_for(nobody)->name == "everyone");
  CHECK(p->services()[1].selectors() == "default");
  // A default rule with selectors is refused.
  everyone.uid = 5;
  CHECK_FALSE(Policy::build({everyone}));
}

TEST_CASE("purposes: none listed allows any; listed ones are the only ones", "[policy][purposes]") {
  chitty::policy::ServiceSpec s = spec("svc", 1, {});
  s.purposes = {"api-call", "inter-service-call"};
  auto p = Policy::build({s, spec("free", 2, {})});
  REQUIRE(p);
  CHECK(Policy::purpose_allowed(p->services()[0], "api-call"));
  CHECK_FALSE(Policy::purpose_allowed(p->services()[0], "API-CALL"));  // exact
  CHECK_FALSE(Policy::purpose_allowed(p->services()[0], ""));
  CHECK(Policy::purpose_allowed(p->services()[1], "anything"));
  CHECK(Policy::purpose_allowed(p->services()[1], ""));
}
