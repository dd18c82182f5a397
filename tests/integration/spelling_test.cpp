// One secret, one key (docs/policy.md): the real agent against the Connect
// emulator with IDs in mixed case, sections, and a title holding '/'.
// Revocation in any spelling blocks every spelling from every source, across
// a restart; a reference reaches only the item and field it names; a renamed
// item stops answering to its old name; the revocations file is sealed.
#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include "connect_emulator.hpp"
#include "json_checks.hpp"
#include "process.hpp"
#include "uds_client.hpp"

using namespace std::chrono_literals;
using chitty::testing::AgentProcess;
using chitty::testing::AgentSpec;
using chitty::testing::at;
using chitty::testing::ConnectEmulator;
using chitty::testing::encode;
using chitty::testing::HttpResponse;
using chitty::testing::Json;
using chitty::testing::parse;
using chitty::testing::TempDir;
using chitty::testing::UdsClient;

namespace {

const std::string kVault = "opsvault000000000000000001";
const std::string kSlashItem = "prodslashdb000000000000001";  // titled "Prod/DB"
const std::string kProd = "prodplain00000000000000001";       // titled "Prod"
// The secret op://Ops/Prod/DB/password as Connect spells its IDs.
const std::string kIdForm = "op://" + kVault + "/" + kProd + "/Section_DB7/Pw_Main";
const std::string kToken = "emergency-0123456789abcdef";

const char* kFixtures = R"({
  "tokens": {"good-token": {"vaults": "*"}},
  "vaults": [{"name": "Ops", "id": "opsvault000000000000000001", "items": [
    {"title": "Prod/DB", "id": "prodslashdb000000000000001",
     "sections": [{"id": "Section_Main9", "label": "Main"}],
     "fields": [
       {"id": "password", "label": "password", "type": "CONCEALED", "value": "slash-item-top-level-pw"},
       {"id": "notesPlain", "label": "notes", "section": {"id": "Section_Main9"}, "value": "slash-item-notes"}]},
    {"title": "Prod", "id": "prodplain00000000000000001",
     "sections": [{"id": "Section_DB7", "label": "DB"}],
     "fields": [
       {"id": "Pw_Main", "label": "password", "section": {"id": "Section_DB7"}, "type": "CONCEALED",
        "value": "prod-db-section-pw"},
       {"id": "Api_Token", "label": "token", "section": {"id": "Section_DB7"}, "value": "prod-sectioned-token"},
       {"id": "username", "label": "username", "value": "prod-user"}]}]}]
})";

// An agent on the emulator; `allow` is the test service's rules (TOML array
// items), `extra` more configuration.
struct Rig {
  TempDir dir;
  std::unique_ptr<ConnectEmulator> connect = std::make_unique<ConnectEmulator>(kFixtures);
  std::unique_ptr<AgentProcess> agent;
  std::string allow;
  std::string extra;
  std::vector<std::string> env;

  explicit Rig(std::string allow_rules, std::string more = "", std::vector<std::string> environment = {})
      : allow(std::move(allow_rules)), extra(std::move(more)), env(std::move(environment)) {
    dir.write("op-token", "good-token\n", 0600);
    dir.write("emergency-token", kToken + "\n", 0600);
    dir.write("chain.key", "spelling-chain-key-0123456789abcdef0123456789\n", 0600);
    start();
  }
  AgentSpec spec(std::vector<std::string> args = {}) const {
    AgentSpec s;
    s.rest = "[upstream.onepassword]\nurl = \"" + connect->url() + "\"\ntoken_file = \"" + (dir / "op-token") +
             "\"\ntimeout = \"1s\"\nconnect_timeout = \"300ms\"\nprobe_interval = \"200ms\"\n"
             "breaker_backoff = \"200ms\"\nbreaker_max_backoff = \"400ms\"\n" + extra +
             "\n[audit]\nchain_key_file = \"" + (dir / "chain.key") + "\"\n"
             "[emergency]\ntoken_file = \"" + (dir / "emergency-token") + "\"\n"
             "[[credential]]\ntype = \"db_pw\"\nref = \"op://Ops/Prod/DB/password\"\nenv = \"DB_PW\"\n"
             "[[service]]\nname = \"tests\"\nuid = " + std::to_string(geteuid()) + "\nallow = [" + allow +
             "]\nrate_limit = \"100000/h\"\nadmin = true\n";
    s.env = env;
    s.extra_args = std::move(args);
    return s;
  }
  void start() {
    agent = std::make_unique<AgentProcess>(dir, spec());
    if (!agent->wait_ready()) FAIL("the agent did not start:\n" << agent->log());
  }
  void restart() {
    REQUIRE(agent->stop(SIGTERM) == 0);
    start();
  }

  HttpResponse send(const std::string& request) {
    UdsClient c(agent->socket());
    REQUIRE(c.send(request));
    auto r = c.read_response(10s);
    REQUIRE(r);
    return *r;
  }
  HttpResponse secret(const std::string& ref, bool refresh = false) {
    return send("GET /v1/secret?ref=" + encode(ref) + (refresh ? "&refresh=true" : "") +
                " HTTP/1.1\r\nHost: x\r\n\r\n");
  }
  HttpResponse post(const std::string& path, const std::string& body, const std::string& headers = "") {
    return send("POST " + path + " HTTP/1.1\r\nHost: x\r\n" + headers + "Content-Length: " +
                std::to_string(body.size()) + "\r\n\r\n" + body);
  }
  HttpResponse revoke(const std::string& body) {
    return post("/api/onepassword/emergency-revoke", body, "X-Emergency-Token: " + kToken + "\r\n");
  }
  HttpResponse clear(const std::string& body) {
    return post("/api/onepassword/emergency-revoke/clear", body, "X-Emergency-Token: " + kToken + "\r\n");
  }
};

// The error code of a refusal; "HTTP <status>" for anything else (a value
// served where it should not be), so that a check fails without aborting.
std::string code_of(const HttpResponse& r) {
  auto j = chitty::testing::read_json(r.body);
  const Json* e = j ? j->find("error") : nullptr;
  const Json* c = e != nullptr ? e->find("code") : nullptr;
  return c != nullptr ? c->text : "HTTP " + std::to_string(r.status);
}
std::string message_of(const HttpResponse& r) { return at(at(parse(r.body), "error"), "message").text; }
// Whether the revocation answer says every spelling is known.
bool resolved(const HttpResponse& r) {
  auto j = chitty::testing::read_json(r.body);
  const Json* rv = j ? j->find("revocation") : nullptr;
  const Json* flag = rv != nullptr ? rv->find("resolved") : nullptr;
  return flag != nullptr && flag->boolean;
}
std::string ref_json(const std::string& ref) { return "{\"ref\":" + chitty::testing::json_quote(ref) + "}"; }

}  // namespace

TEST_CASE("revoking the resolved-ID form the audit shows blocks every spelling, cached, refreshed, restarted",
          "[integration][spelling][revocation]") {
  Rig rig("\"op://**\", \"type:db_pw\"", "", {"DB_PW=env-fallback-pw"});
  REQUIRE(rig.secret("op://Ops/Prod/DB/password").body == "prod-db-section-pw");
  // The audit event names the secret by its IDs, as Connect spells them.
  auto audit = rig.send("GET /api/credentials/audit?limit=5 HTTP/1.1\r\nHost: x\r\n\r\n");
  REQUIRE(audit.status == 200);
  std::string shown;
  const Json events = parse(audit.body);
  for (const Json& e : at(events, "events").items) {
    if (at(e, "kind").text == "decision" && at(e, "decision").text == "allow") shown = at(e, "ref").text;
  }
  CHECK(shown == kIdForm);

  // The operator revokes what the audit shows.
  HttpResponse revoked = rig.revoke(ref_json(kIdForm));
  INFO(revoked.body);
  REQUIRE(revoked.status == 200);
  CHECK(resolved(revoked));
  for (const std::string& spelling :
       {std::string("op://Ops/Prod/DB/password"), std::string("op://ops/PROD/db/PASSWORD"), kIdForm,
        "op://" + kVault + "/" + kProd + "/section_db7/pw_main", "op://Ops/" + kProd + "/DB/Pw_Main"}) {
    INFO(spelling);
    HttpResponse cached = rig.secret(spelling);
    CHECK(cached.status == 403);
    CHECK(code_of(cached) == "revoked");
    CHECK(code_of(rig.secret(spelling, true)) == "revoked");  // refresh=true too
    CHECK(cached.body.find("prod-db-section-pw") == std::string::npos);
  }
  HttpResponse by_type = rig.post("/api/onepassword/retrieve", R"({"credential_type":"db_pw"})");
  CHECK(code_of(by_type) == "revoked");
  HttpResponse validated = rig.post("/api/credentials/validate", R"({"ref":"op://ops/prod/db/password"})");
  REQUIRE(validated.status == 200);
  CHECK(at(parse(validated.body), "status").text == "revoked");

  // A restart with the upstream down: no resolution is known, the
  // environment holds a fallback value. Every spelling stays blocked.
  rig.connect->kill();
  rig.restart();
  for (const std::string& spelling :
       {std::string("op://Ops/Prod/DB/password"), std::string("op://OPS/prod/DB/Password"), kIdForm,
        "op://" + kVault + "/" + kProd + "/section_db7/PW_MAIN"}) {
    INFO(spelling);
    CHECK(code_of(rig.secret(spelling)) == "revoked");
  }
  CHECK(code_of(rig.post("/api/onepassword/retrieve", R"({"credential_type":"db_pw"})")) == "revoked");

  // Cleared by another spelling of the same secret.
  rig.connect->restart();
  HttpResponse cleared = rig.clear(ref_json("op://ops/prod/db/password"));
  INFO(cleared.body);
  REQUIRE(cleared.status == 200);
  CHECK(at(parse(cleared.body), "cleared").text == "1");
  bool served = false;
  for (int i = 0; i < 50 && !served; ++i) {  // until the agent sees the upstream again
    served = rig.secret(kIdForm).body == "prod-db-section-pw";
    if (!served) std::this_thread::sleep_for(100ms);
  }
  CHECK(served);
}

TEST_CASE("revoking by names blocks the IDs in any case, and the revocation survives a restart",
          "[integration][spelling][revocation]") {
  Rig rig("\"op://**\"");
  HttpResponse revoked = rig.revoke(ref_json("op://Ops/Prod/DB/password"));
  INFO(revoked.body);
  REQUIRE(revoked.status == 200);
  CHECK(resolved(revoked));
  CHECK(code_of(rig.secret(kIdForm)) == "revoked");
  CHECK(code_of(rig.secret("op://" + kVault + "/" + kProd + "/SECTION_DB7/pw_main", true)) == "revoked");
  rig.restart();
  CHECK(code_of(rig.secret(kIdForm)) == "revoked");
  // The other fields of the item are not touched.
  CHECK(rig.secret("op://Ops/Prod/username").body == "prod-user");
}

TEST_CASE("a title holding '/' cannot be re-read as another item, section and field",
          "[integration][spelling][policy]") {
  // The service may read the field "password" of section "DB" of item
  // "Prod" — and nothing of the item titled "Prod/DB".
  Rig rig("\"op://Ops/Prod/DB/password\"");
  CHECK(rig.secret("op://Ops/Prod/DB/password").body == "prod-db-section-pw");
  for (const std::string& spelling : {"op://Ops/" + kSlashItem + "/password", "op://" + kVault + "/" + kSlashItem + "/password"}) {
    INFO(spelling);
    HttpResponse r = rig.secret(spelling);
    CHECK(r.status == 403);
    CHECK(code_of(r) == "forbidden");
    CHECK(r.body.find("slash-item-top-level-pw") == std::string::npos);
  }
}

TEST_CASE("a three-part reference reaches top-level fields only; a sectioned one is a 404 naming its section",
          "[integration][spelling][policy]") {
  Rig rig("\"op://Ops/*/token\", \"op://Ops/*/username\"");
  CHECK(rig.secret("op://Ops/Prod/username").body == "prod-user");
  HttpResponse sectioned = rig.secret("op://Ops/Prod/token");
  INFO(sectioned.body);
  CHECK(sectioned.status == 404);
  CHECK(code_of(sectioned) == "not_found");
  CHECK_THAT(message_of(sectioned), Catch::Contains("op://Ops/Prod/DB/token") && Catch::Contains("top-level"));
  CHECK(sectioned.body.find("prod-sectioned-token") == std::string::npos);
  // The four-part form is not what the rule grants.
  CHECK(code_of(rig.secret("op://Ops/Prod/DB/token")) == "forbidden");
}

TEST_CASE("a renamed item stops answering to its old name once its resolution expires",
          "[integration][spelling][resolution]") {
  Rig rig("\"op://**\"", "resolution_ttl = \"1s\"\n[cache]\nttl = \"10m\"\n");
  REQUIRE(rig.secret("op://Ops/Prod/username").body == "prod-user");
  auto renamed = rig.connect->request("PATCH", "/v1/vaults/" + kVault + "/items/" + kProd, "good-token",
                                      R"([{"op":"replace","path":"/title","value":"Prod Renamed"}])");
  REQUIRE(renamed.status == 200);
  std::this_thread::sleep_for(1500ms);
  HttpResponse old_name = rig.secret("op://Ops/Prod/username");
  INFO(old_name.body);
  CHECK(old_name.status == 404);
  CHECK(rig.secret("op://Ops/Prod Renamed/username").body == "prod-user");
  CHECK(rig.secret("op://Ops/" + kProd + "/username").body == "prod-user");  // the ID still names it
}

TEST_CASE("the revocations file is sealed: edited or deleted, the agent does not start until the operator accepts",
          "[integration][spelling][revocation]") {
  Rig rig("\"op://**\"");
  REQUIRE(rig.revoke(ref_json("op://Ops/Prod/DB/password")).status == 200);
  REQUIRE(rig.agent->stop(SIGTERM) == 0);
  const std::string file = rig.dir / "state/revocations.json";
  std::string sealed = chitty::testing::read_file(file);
  REQUIRE(sealed.find("\"mac\":\"") != std::string::npos);

  auto refused_start = [&](const std::string& expect) {
    AgentProcess a(rig.dir, rig.spec());
    CHECK_FALSE(a.wait_ready(5s));
    auto code = a.wait_exit(5s);
    CHECK(code == 1);
    CHECK_THAT(a.log(), Catch::Contains(expect) && Catch::Contains("--accept-revocations"));
  };
  SECTION("emptied by hand") {
    rig.dir.write("state/revocations.json", R"({"version":2,"revocations":[]})" "\n", 0600);
    refused_start("no MAC");
  }
  SECTION("one byte changed") {
    std::string edited = sealed;
    edited[edited.find("Prod")] = 'p';
    rig.dir.write("state/revocations.json", edited, 0600);
    refused_start("MAC does not match");
  }
  SECTION("deleted") {
    REQUIRE(::unlink(file.c_str()) == 0);
    refused_start("is missing");
    // The operator's way out, recorded in the audit trail.
    AgentProcess a(rig.dir, rig.spec({"--accept-revocations"}));
    REQUIRE(a.wait_ready());
    CHECK_THAT(a.log(), Catch::Contains("accepted"));
    UdsClient c(a.socket());
    REQUIRE(c.send("GET /v1/secret?ref=" + encode(kIdForm) + " HTTP/1.1\r\nHost: x\r\n\r\n"));
    auto r = c.read_response(10s);
    REQUIRE(r);
    CHECK(r->status == 200);  // lifted, knowingly
  }
  SECTION("an older sealed copy put back") {
    // A second revocation; then the copy from before it is put back.
    rig.start();
    REQUIRE(rig.revoke(ref_json("op://Ops/Prod/username")).status == 200);
    REQUIRE(rig.agent->stop(SIGTERM) == 0);
    rig.dir.write("state/revocations.json", sealed, 0600);
    refused_start("older copy");
  }
  SECTION("untouched: it starts, and the revocation holds") {
    rig.start();
    CHECK(code_of(rig.secret(kIdForm)) == "revoked");
  }
}
