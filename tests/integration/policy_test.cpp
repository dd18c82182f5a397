// Who may read what, against the real daemon: clients running as different
// uids (setpriv) × references allowed and forbidden, by names, by IDs and in
// another case; context, purposes, rate limits, emergency revocation across a
// restart, the rest of the SPEC API, a hundred malformed requests, and
// /metrics checked by promtool.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cctype>
#include <map>
#include <thread>

#include "connect_emulator.hpp"
#include "json_checks.hpp"
#include "json_reader.hpp"
#include "process.hpp"
#include "uds_client.hpp"

using namespace std::chrono_literals;
using chitty::testing::AgentProcess;
using chitty::testing::AgentSpec;
using chitty::testing::ConnectEmulator;
using chitty::testing::HttpResponse;
using chitty::testing::at;
using chitty::testing::encode;
using chitty::testing::Json;
using chitty::testing::parse;
using chitty::testing::TempDir;
using chitty::testing::UdsClient;

namespace {

bool is_root() { return geteuid() == 0; }

struct Reply {
  int status = 0;
  std::string body;
};

// curl as `uid` (or as this process for uid < 0) on the agent's socket.
Reply curl_as(int uid, const std::string& socket, const std::string& path, std::vector<std::string> extra = {}) {
  std::vector<std::string> argv;
  if (uid >= 0) {
    argv = {"setpriv", "--reuid=" + std::to_string(uid), "--regid=" + std::to_string(uid), "--clear-groups"};
  }
  argv.insert(argv.end(), {"curl", "--silent", "--max-time", "10", "--unix-socket", socket, "-w", "\n%{http_code}"});
  argv.insert(argv.end(), extra.begin(), extra.end());
  argv.push_back("http://localhost" + path);
  auto r = chitty::testing::run(argv);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  Reply out;
  auto nl = r.out.rfind('\n');
  out.status = std::stoi(r.out.substr(nl + 1));
  out.body = r.out.substr(0, nl);
  return out;
}

HttpResponse send(const std::string& socket, const std::string& request) {
  UdsClient c(socket);
  REQUIRE(c.send(request));
  auto r = c.read_response(10s);
  REQUIRE(r);
  return *r;
}

HttpResponse post(const std::string& socket, const std::string& path, const std::string& body,
                  const std::string& headers = "") {
  return send(socket, "POST " + path + " HTTP/1.1\r\nHost: x\r\n" + headers + "Content-Length: " +
                          std::to_string(body.size()) + "\r\n\r\n" + body);
}

std::string code_of(const std::string& body) { return at(at(parse(body), "error"), "code").text; }

constexpr int kRegistry = 4401, kFinance = 4402, kStranger = 4403, kById = 4404;
const std::string kServicesVault = "k3m9servicesvault000000001";
const std::string kIntegrationsVault = "w5n8integrationsvault00001";

std::string policy_rest(const std::string& connect_url, const std::string& token_file, const std::string& extra = "") {
  return "[upstream.onepassword]\nurl = \"" + connect_url + "\"\ntoken_file = \"" + token_file +
         "\"\nprobe_interval = \"300ms\"\n"
         "[[credential]]\ntype = \"openai_api_key\"\nref = \"op://ChittyOS Integrations/OpenAI API/api_key\"\n"
         "category = \"integration\"\ntarget = \"openai\"\n"
         "[[credential]]\ntype = \"chittyid_service_token\"\n"
         "ref = \"op://ChittyOS Services/ChittyID Service Token/service_token\"\ncategory = \"service\"\n"
         "target = \"chittyid\"\n"
         "[[service]]\nname = \"registry\"\nuid = " + std::to_string(kRegistry) +
         "\nallow = [\"op://ChittyOS Services/**\", \"type:openai_api_key\"]\nrate_limit = \"1000/h\"\n"
         "[[service]]\nname = \"finance\"\nuid = " + std::to_string(kFinance) +
         "\nallow = [\"op://ChittyOS Services/ChittyFinance Service Token/service_token\"]\n"
         "purposes = [\"billing\"]\nrate_limit = \"1000/h\"\n"
         "[[service]]\nname = \"by-id\"\nuid = " + std::to_string(kById) +
         "\nallow = [\"op://" + kIntegrationsVault + "/**\"]\nrate_limit = \"1000/h\"\n" + extra;
}

// An agent reachable by every uid, with the Connect emulator behind it.
struct Fixture {
  TempDir dir;
  ConnectEmulator connect{ConnectEmulator::chittyos_fixtures()};
  std::unique_ptr<AgentProcess> agent;
  std::string item(const std::string& vault, const std::string& title) {
    auto r = connect.get("/v1/vaults/" + vault + "/items");
    for (const Json& i : parse(r.body).items) {
      if (at(i, "title").text == title) return at(i, "id").text;
    }
    FAIL("no item " << title);
    return "";
  }
  explicit Fixture(const std::string& extra = "", std::vector<std::string> env = {}) {
    chmod(dir.path().c_str(), 0755);
    dir.write("op-token", "good-token\n", 0600);
    AgentSpec spec;
    spec.settings = "socket_mode = \"0666\"\nsocket_world_accessible = true";
    spec.rest = policy_rest(connect.url(), dir / "op-token", extra);
    spec.env = std::move(env);
    agent = std::make_unique<AgentProcess>(dir, spec);
    REQUIRE(agent->wait_ready());
  }
};

}  // namespace

TEST_CASE("the access matrix: every cell exactly as the policy says, whatever the spelling",
          "[integration][policy][matrix]") {
  if (!is_root()) {
    WARN("skipped: needs root to run clients as other uids");
    return;
  }
  // The matrix asks, on purpose, for everything each service may not read:
  // with risk scoring on, five refusals in ten seconds would make every
  // later request enumeration (that is tested in risk_test.cpp).
  Fixture f("\n[risk]\nenabled = false\n");
  const std::string chittyid_item = f.item(kServicesVault, "ChittyID Service Token");
  const std::string finance_item = f.item(kServicesVault, "ChittyFinance Service Token");
  const std::string openai_item = f.item(kIntegrationsVault, "OpenAI API");
  struct Ref {
    std::string ref;
    std::string value;
  };
  const std::map<std::string, Ref> refs = {
      {"chittyid by names", {"op://ChittyOS Services/ChittyID Service Token/service_token", "fake-chittyid-service-token-0001"}},
      {"chittyid in another case", {"op://chittyos services/CHITTYID service token/Service_Token", "fake-chittyid-service-token-0001"}},
      {"chittyid by IDs", {"op://" + kServicesVault + "/" + chittyid_item + "/service_token", "fake-chittyid-service-token-0001"}},
      {"finance by names", {"op://ChittyOS Services/ChittyFinance Service Token/service_token", "fake-chittyfinance-service-token-0001"}},
      {"finance by IDs", {"op://" + kServicesVault + "/" + finance_item + "/service_token", "fake-chittyfinance-service-token-0001"}},
      {"openai by names", {"op://ChittyOS Integrations/OpenAI API/api_key", "sk-fake-openai-api-key-0001"}},
      {"openai by IDs", {"op://" + kIntegrationsVault + "/" + openai_item + "/api_key", "sk-fake-openai-api-key-0001"}},
      {"openai org by names", {"op://ChittyOS Integrations/OpenAI API/org_id", "org-fake0001"}},
      {"neon by names", {"op://ChittyOS Infrastructure/Neon PostgreSQL/database_url", ""}},
  };
  // Expected status per uid and reference. registry: the Services vault by
  // glob, OpenAI's key by type (by IDs too: the catalog knows it by names;
  // its org_id is not allowed); finance: one
  // item (with its purpose); by-id: the Integrations vault by its ID; the
  // stranger: nothing.
  const std::map<int, std::map<std::string, int>> expected = {
      {kRegistry,
       {{"chittyid by names", 200}, {"chittyid in another case", 200}, {"chittyid by IDs", 200},
        {"finance by names", 200}, {"finance by IDs", 200}, {"openai by names", 200}, {"openai by IDs", 200},
        {"openai org by names", 403}, {"neon by names", 403}}},
      {kFinance,
       {{"chittyid by names", 403}, {"chittyid in another case", 403}, {"chittyid by IDs", 403},
        {"finance by names", 200}, {"finance by IDs", 200}, {"openai by names", 403}, {"openai by IDs", 403},
        {"openai org by names", 403}, {"neon by names", 403}}},
      {kById,
       {{"chittyid by names", 403}, {"chittyid in another case", 403}, {"chittyid by IDs", 403},
        {"finance by names", 403}, {"finance by IDs", 403}, {"openai by names", 200}, {"openai by IDs", 200},
        {"openai org by names", 200}, {"neon by names", 403}}},
      {kStranger,
       {{"chittyid by names", 403}, {"chittyid in another case", 403}, {"chittyid by IDs", 403},
        {"finance by names", 403}, {"finance by IDs", 403}, {"openai by names", 403}, {"openai by IDs", 403},
        {"openai org by names", 403}, {"neon by names", 403}}},
  };
  // Pass 1 resolves by names first for some cells; pass 2 runs in reverse
  // order, so every cell is seen both before and after the agent learnt the
  // other spelling.
  for (int pass = 0; pass < 2; ++pass) {
    std::vector<std::pair<int, std::string>> cells;
    for (const auto& [uid, row] : expected) {
      for (const auto& [name, status] : row) cells.emplace_back(uid, name);
    }
    if (pass == 1) std::reverse(cells.begin(), cells.end());
    for (const auto& [uid, name] : cells) {
      const Ref& ref = refs.at(name);
      int want = expected.at(uid).at(name);
      std::string path = "/v1/secret?ref=" + encode(ref.ref) + (uid == kFinance ? "&purpose=billing" : "");
      Reply r = curl_as(uid, f.agent->socket(), path);
      INFO("pass " << pass << ", uid " << uid << ", " << name << ": " << r.body);
      CHECK(r.status == want);
      if (want == 200) {
        CHECK(r.body == ref.value);
      } else {
        CHECK(code_of(r.body) == "forbidden");
        CHECK(r.body.find("fake-") == std::string::npos);
      }
    }
  }
  // One cache entry per secret, whatever the spellings used.
  Json h = parse(chitty::testing::get(f.agent->socket(), "/health")->body);
  CHECK(at(at(h, "cache"), "entries").text == "4");  // chittyid, finance, openai key, openai org
}

TEST_CASE("context and purposes: a claimed service must be the caller's; purposes are enforced",
          "[integration][policy]") {
  if (!is_root()) {
    WARN("skipped: needs root to run clients as other uids");
    return;
  }
  Fixture f;
  auto mismatch = curl_as(kRegistry, f.agent->socket(), "/api/onepassword/retrieve",
                          {"--data", R"({"credential_type":"openai_api_key","context":{"service":"finance"}})"});
  CHECK(mismatch.status == 403);
  CHECK(code_of(mismatch.body) == "context_mismatch");
  auto matched = curl_as(kRegistry, f.agent->socket(), "/api/onepassword/retrieve",
                         {"--data", R"({"credential_type":"openai_api_key","context":{"service":"registry"}})"});
  CHECK(matched.status == 200);
  const std::string finance = "/v1/secret?ref=" + encode("op://ChittyOS Services/ChittyFinance Service Token/service_token");
  auto no_purpose = curl_as(kFinance, f.agent->socket(), finance);
  CHECK(no_purpose.status == 400);
  CHECK_THAT(no_purpose.body, Catch::Contains("billing"));
  auto wrong_purpose = curl_as(kFinance, f.agent->socket(), finance + "&purpose=fun");
  CHECK(wrong_purpose.status == 403);
  CHECK(curl_as(kFinance, f.agent->socket(), finance + "&purpose=billing").status == 200);
}

TEST_CASE("the 101st request in an hour gets 429; another service is unaffected; strangers share a bucket",
          "[integration][policy][rate]") {
  if (!is_root()) {
    WARN("skipped: needs root to run clients as other uids");
    return;
  }
  TempDir dir;
  chmod(dir.path().c_str(), 0755);
  AgentSpec spec;
  spec.settings = "socket_mode = \"0666\"\nsocket_world_accessible = true\nunknown_caller_rate_limit = \"5/h\"";
  spec.rest = "[[credential]]\ntype = \"t\"\nref = \"op://V/I/f\"\nenv = \"T_VALUE\"\n"
              "[[service]]\nname = \"one\"\nuid = " + std::to_string(kRegistry) + "\nallow = [\"type:t\"]\n"
              "[[service]]\nname = \"two\"\nuid = " + std::to_string(kFinance) + "\nallow = [\"type:t\"]\n";
  spec.env = {"T_VALUE=the-value"};
  AgentProcess agent(dir, spec);
  REQUIRE(agent.wait_ready());
  // 100 requests on one keep-alive connection as uid kRegistry (curl's own
  // connection reuse), then the 101st.
  std::vector<std::string> args;
  for (int i = 0; i < 100; ++i) {
    args.push_back("http://localhost/v1/secret?ref=op://V/I/f");
    args.push_back("-o");
    args.push_back("/dev/null");
  }
  std::vector<std::string> argv{"setpriv", "--reuid=" + std::to_string(kRegistry), "--regid=" + std::to_string(kRegistry),
                                "--clear-groups", "curl", "--silent", "--unix-socket", agent.socket(), "-w", "%{http_code} "};
  argv.insert(argv.end(), args.begin(), args.end());
  auto hundred = chitty::testing::run(argv, 60s);
  REQUIRE(hundred.exit_code == 0);
  std::size_t ok = 0;
  for (std::size_t p = hundred.out.find("200"); p != std::string::npos; p = hundred.out.find("200", p + 1)) ++ok;
  CHECK(ok == 100);
  auto limited = curl_as(kRegistry, agent.socket(), "/v1/secret?ref=op://V/I/f", {"-i"});
  CHECK(limited.status == 429);
  CHECK_THAT(limited.body, Catch::Contains("Retry-After: ") && Catch::Contains("rate_limited") &&
                               Catch::Contains("100/h"));
  CHECK(curl_as(kFinance, agent.socket(), "/v1/secret?ref=op://V/I/f").status == 200);  // its own bucket
  // Callers matching no service: 403 for the first five between them, then 429.
  for (int i = 0; i < 5; ++i) {
    CHECK(curl_as(i % 2 == 0 ? kStranger : kById, agent.socket(), "/v1/secret?ref=op://V/I/f").status == 403);
  }
  CHECK(curl_as(kStranger, agent.socket(), "/v1/secret?ref=op://V/I/f").status == 429);
  CHECK(curl_as(kById, agent.socket(), "/v1/secret?ref=op://V/I/f").status == 429);
}

TEST_CASE("emergency revocation: no token, a wrong one, the right one; survives a restart; blocks the env "
          "fallback; cleared",
          "[integration][policy][emergency]") {
  TempDir dir;
  dir.write("emergency-token", "sos-0123456789abcdef\n", 0600);
  AgentSpec spec;
  spec.rest = "[emergency]\ntoken_file = \"" + (dir / "emergency-token") + "\"\n"
              "[[credential]]\ntype = \"openai_api_key\"\nref = \"op://ChittyOS Integrations/OpenAI API/api_key\"\n"
              "env = \"OPENAI_API_KEY\"\n"
              "[[credential]]\ntype = \"other\"\nref = \"op://V/I/other\"\nenv = \"OTHER_VALUE\"\n"
              "[[service]]\nname = \"me\"\nuid = " + std::to_string(geteuid()) +
              "\nallow = [\"op://**\"]\nrate_limit = \"10000/h\"\nadmin = true\n";
  spec.env = {"OPENAI_API_KEY=sk-from-env-0001", "OTHER_VALUE=other-0001"};
  auto agent = std::make_unique<AgentProcess>(dir, spec);
  REQUIRE(agent->wait_ready());
  const std::string revoke = "/api/onepassword/emergency-revoke";
  const std::string body = R"({"credential_type":"openai_api_key","reason":"key leaked in CI logs"})";
  auto retrieve = [&] { return post(agent->socket(), "/api/onepassword/retrieve", R"({"credential_type":"openai_api_key"})"); };
  REQUIRE(retrieve().status == 200);

  HttpResponse none = post(agent->socket(), revoke, body);
  CHECK(none.status == 401);
  CHECK(code_of(none.body) == "unauthenticated");
  HttpResponse wrong = post(agent->socket(), revoke, body, "X-Emergency-Token: sos-guess\r\n");
  CHECK(wrong.status == 401);
  CHECK_THAT(wrong.body, Catch::Contains("wrong emergency token"));
  CHECK(retrieve().status == 200);  // nothing revoked yet

  HttpResponse ok = post(agent->socket(), revoke, body, "X-Emergency-Token: sos-0123456789abcdef\r\n");
  REQUIRE(ok.status == 200);
  CHECK(at(at(parse(ok.body), "revocation"), "kind").text == "type");
  HttpResponse blocked = retrieve();
  CHECK(blocked.status == 403);
  CHECK(code_of(blocked.body) == "revoked");
  CHECK(blocked.body.find("sk-from-env") == std::string::npos);
  CHECK(post(agent->socket(), "/api/onepassword/retrieve", R"({"credential_type":"other"})").status == 200);
  HttpResponse status = post(agent->socket(), "/api/credentials/validate", R"({"credential_type":"openai_api_key"})");
  CHECK(at(parse(status.body), "status").text == "revoked");

  // A restart (even a kill) does not lift it: it was on disk before the 200.
  kill(agent->pid(), SIGKILL);
  agent->wait_exit(5s);
  agent = std::make_unique<AgentProcess>(dir, spec);
  REQUIRE(agent->wait_ready());
  CHECK_THAT(agent->log(), Catch::Contains("revocations in force from before the restart"));
  CHECK(code_of(retrieve().body) == "revoked");

  // Everything at once, then clear it all.
  HttpResponse all = post(agent->socket(), revoke, R"({"all":true,"reason":"drill"})",
                          "X-Emergency-Token: sos-0123456789abcdef\r\n");
  CHECK(all.status == 200);
  CHECK(code_of(post(agent->socket(), "/api/onepassword/retrieve", R"({"credential_type":"other"})").body) == "revoked");
  HttpResponse wrong_clear = post(agent->socket(), revoke + "/clear", R"({"all":true})", "X-Emergency-Token: nope\r\n");
  CHECK(wrong_clear.status == 401);
  HttpResponse cleared = post(agent->socket(), revoke + "/clear", R"({"all":true})",
                              "X-Emergency-Token: sos-0123456789abcdef\r\n");
  REQUIRE(cleared.status == 200);
  CHECK(at(parse(cleared.body), "cleared").text == "2");
  HttpResponse back = retrieve();
  REQUIRE(back.status == 200);
  CHECK(at(at(parse(back.body), "credential"), "value").text == "sk-from-env-0001");

  // The audit trail shows all of it, to an admin.
  auto audit = chitty::testing::get(agent->socket(), "/api/credentials/audit?limit=1000");
  REQUIRE(audit);
  REQUIRE(audit->status == 200);
  Json events = at(parse(audit->body), "events");
  int revokes = 0, clears = 0;
  for (const Json& e : events.items) {
    // The spool's event fields, without the chain's.
    CHECK(at(e, "id").text.size() == 32);
    CHECK(at(e, "seq").type == Json::Type::number);
    CHECK(e.find("mac") == nullptr);
    CHECK(e.find("prev") == nullptr);
    if (at(e, "action").text == "revoke" && at(e, "decision").text == "allow") ++revokes;
    if (at(e, "action").text == "revoke-clear" && at(e, "decision").text == "allow") ++clears;
  }
  CHECK(revokes == 2);  // the type before the kill and "all" after: the trail is durable
  CHECK(clears == 1);
}

namespace {

// Each curl is a process of its own; one curl with `n` URLs is one process
// making n requests. The statuses, in order.
std::vector<int> emergency_clears_by_one_process(int uid, const std::string& socket, const std::string& token, int n) {
  std::vector<std::string> argv;
  if (uid >= 0) {
    argv = {"setpriv", "--reuid=" + std::to_string(uid), "--regid=" + std::to_string(uid), "--clear-groups"};
  }
  argv.insert(argv.end(), {"curl", "--silent", "--max-time", "10", "--unix-socket", socket, "-w", "\n%{http_code}\n",
                           "-H", "X-Emergency-Token: " + token, "--data", R"({"all":true})"});
  for (int i = 0; i < n; ++i) argv.push_back("http://localhost/api/onepassword/emergency-revoke/clear");
  auto r = chitty::testing::run(argv);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  std::vector<int> statuses;
  std::size_t at_line = 0;
  while (at_line < r.out.size()) {
    std::size_t nl = r.out.find('\n', at_line);
    std::string line = r.out.substr(at_line, nl == std::string::npos ? std::string::npos : nl - at_line);
    if (line.size() == 3 && std::isdigit(static_cast<unsigned char>(line[0]))) statuses.push_back(std::stoi(line));
    if (nl == std::string::npos) break;
    at_line = nl + 1;
  }
  REQUIRE(statuses.size() == static_cast<std::size_t>(n));
  return statuses;
}

}  // namespace

TEST_CASE("guessing the emergency token is bounded per process, then per uid; an admin service unlocks",
          "[integration][policy][emergency]") {
  if (!is_root()) {
    WARN("skipped: needs root to run the admin client as another uid");
    return;
  }
  constexpr int kAdmin = 4405;
  const std::string token = "sos-0123456789abcdef";
  TempDir dir;
  chmod(dir.path().c_str(), 0755);
  dir.write("emergency-token", token + "\n", 0600);
  AgentSpec spec;
  spec.settings = "socket_mode = \"0666\"\nsocket_world_accessible = true";
  spec.rest = "[emergency]\ntoken_file = \"" + (dir / "emergency-token") + "\"\n"
              "[[service]]\nname = \"ops\"\nuid = " + std::to_string(kAdmin) +
              "\nallow = [\"op://Ops/**\"]\nadmin = true\n"
              "[[service]]\nname = \"registry\"\nuid = " + std::to_string(kRegistry) + "\nallow = [\"op://Ops/**\"]\n";
  AgentProcess agent(dir, spec);
  REQUIRE(agent.wait_ready());
  const std::string& sock = agent.socket();
  const std::string clear = "/api/onepassword/emergency-revoke/clear";

  // This process guesses ten times; its eleventh try is not even checked.
  for (int i = 0; i < 10; ++i) {
    CHECK(post(sock, clear, R"({"all":true})", "X-Emergency-Token: guess\r\n").status == 401);
  }
  HttpResponse locked = post(sock, clear, R"({"all":true})", "X-Emergency-Token: " + token + "\r\n");
  CHECK(locked.status == 429);  // not even checked now
  CHECK(locked.header("Retry-After"));
  CHECK_THAT(locked.body, Catch::Contains("this process"));
  // The operator's own process, same uid, is not locked out by it.
  CHECK(emergency_clears_by_one_process(-1, sock, token, 1) == std::vector<int>{200});

  // Processes that keep guessing, each within its own share, spend the
  // uid's cap (60 an hour): then every process of the uid waits.
  int guessed = 10;
  while (guessed < 60) {
    auto statuses = emergency_clears_by_one_process(-1, sock, "guess", 10);
    CHECK(statuses == std::vector<int>(10, 401));
    guessed += 10;
  }
  auto fresh = emergency_clears_by_one_process(-1, sock, token, 1);
  CHECK(fresh == std::vector<int>{429});
  CHECK_THAT(post(sock, clear, R"({"all":true})", "X-Emergency-Token: " + token + "\r\n").body,
             Catch::Contains("this uid"));
  // Other uids are unaffected.
  CHECK(emergency_clears_by_one_process(kRegistry, sock, token, 1) == std::vector<int>{200});

  // Only an admin service may lift the lockout.
  CHECK(curl_as(kRegistry, sock, "/api/onepassword/emergency-revoke/unlock", {"-X", "POST"}).status == 403);
  CHECK(curl_as(kStranger, sock, "/api/onepassword/emergency-revoke/unlock", {"-X", "POST"}).status == 403);
  CHECK(emergency_clears_by_one_process(-1, sock, token, 1) == std::vector<int>{429});  // still locked
  Reply unlocked = curl_as(kAdmin, sock, "/api/onepassword/emergency-revoke/unlock", {"-X", "POST"});
  INFO(unlocked.body);
  REQUIRE(unlocked.status == 200);
  CHECK(std::stoi(at(parse(unlocked.body), "cleared").text) >= 7);  // the uid and its seven processes
  CHECK(emergency_clears_by_one_process(-1, sock, token, 1) == std::vector<int>{200});
  CHECK(post(sock, clear, R"({"all":true})", "X-Emergency-Token: " + token + "\r\n").status == 200);

  // Audited, with who did it.
  Reply audit = curl_as(kAdmin, sock, "/api/credentials/audit?limit=1000");
  REQUIRE(audit.status == 200);
  int unlocks = 0, refused_unlocks = 0;
  Json events = at(parse(audit.body), "events");
  for (const Json& e : events.items) {
    if (at(e, "action").text != "revoke-unlock") continue;
    if (at(e, "decision").text == "allow") ++unlocks;
    if (at(e, "decision").text == "deny") ++refused_unlocks;
  }
  CHECK(unlocks == 1);
  CHECK(refused_unlocks == 2);
}

TEST_CASE("the rest of the SPEC API: batch, service-token, integration-key, provision, validate, insights",
          "[integration][policy][api]") {
  TempDir dir;
  ConnectEmulator connect(ConnectEmulator::chittyos_fixtures());
  dir.write("op-token", "good-token\n", 0600);
  AgentSpec spec;
  spec.rest = policy_rest(connect.url(), dir / "op-token",
                          "[[service]]\nname = \"ops\"\nuid = " + std::to_string(geteuid()) +
                              "\nallow = [\"op://**\", \"type:openai_api_key\"]\nadmin = true\nrate_limit = \"1000/h\"\n");
  AgentProcess agent(dir, spec);
  REQUIRE(agent.wait_ready());
  const std::string& sock = agent.socket();

  // batch: per-item results, the answer's success is all of them.
  HttpResponse batch = post(sock, "/api/onepassword/batch-retrieve",
                            R"({"requests":[{"credential_type":"openai_api_key"},
                               {"ref":"op://ChittyOS Services/ChittyAuth Service Token/service_token"},
                               {"ref":"op://ChittyOS Services/No Such Item/service_token"},
                               {"ref":"op://broken"}]})");
  REQUIRE(batch.status == 200);
  Json b = parse(batch.body);
  CHECK_FALSE(at(b, "success").boolean);
  const auto& results = at(b, "results").items;
  REQUIRE(results.size() == 4);
  CHECK(at(results[0], "success").boolean);
  CHECK(at(at(results[0], "credential"), "value").text == "sk-fake-openai-api-key-0001");
  CHECK(at(at(results[1], "credential"), "value").text == "fake-chittyauth-service-token-0001");
  CHECK(at(at(results[2], "error"), "code").text == "not_found");
  CHECK(at(at(results[3], "error"), "code").text == "bad_request");
  CHECK(at(results[3], "index").text == "3");
  std::string eleven = R"({"requests":[)";
  for (int i = 0; i < 11; ++i) eleven += std::string(i ? "," : "") + R"({"credential_type":"openai_api_key"})";
  HttpResponse too_many = post(sock, "/api/onepassword/batch-retrieve", eleven + "]}");
  CHECK(too_many.status == 400);
  CHECK(code_of(too_many.body) == "batch_too_large");

  // service-token and integration-key: through the catalog's target, or the vault defaults.
  auto by_catalog = chitty::testing::get(sock, "/api/onepassword/service-token/chittyid");
  REQUIRE(by_catalog);
  CHECK(at(at(parse(by_catalog->body), "credential"), "value").text == "fake-chittyid-service-token-0001");
  connect.admin("items", R"({"vault":"ChittyOS Services","item":{"title":"chittycases","category":"API_CREDENTIAL",
    "fields":[{"id":"service_token","label":"service_token","type":"CONCEALED","value":"cases-by-default"}]}})");
  auto by_default = chitty::testing::get(sock, "/api/onepassword/service-token/chittycases");
  CHECK(at(at(parse(by_default->body), "credential"), "value").text == "cases-by-default");
  auto key = chitty::testing::get(sock, "/api/onepassword/integration-key/openai");
  CHECK(at(at(parse(key->body), "credential"), "value").text == "sk-fake-openai-api-key-0001");
  connect.admin("items", R"({"vault":"ChittyOS Integrations","item":{"title":"notion","category":"API_CREDENTIAL",
    "fields":[{"id":"api_key","label":"api_key","type":"CONCEALED","value":"notion-by-default"}]}})");
  auto notion = chitty::testing::get(sock, "/api/onepassword/integration-key/notion");
  CHECK(at(at(parse(notion->body), "credential"), "value").text == "notion-by-default");
  CHECK(chitty::testing::get(sock, "/api/onepassword/integration-key/nope")->status == 404);

  // provision and validate.
  HttpResponse prov = post(sock, "/api/credentials/provision", R"({"type":"openai_api_key"})");
  CHECK(at(at(parse(prov.body), "credential"), "value").text == "sk-fake-openai-api-key-0001");
  CHECK(post(sock, "/api/credentials/provision", R"({"type":"nope"})").status == 404);
  HttpResponse valid = post(sock, "/api/credentials/validate", R"({"credential_type":"openai_api_key"})");
  Json v = parse(valid.body);
  CHECK(at(v, "valid").boolean);
  CHECK(at(v, "status").text == "active");
  CHECK(valid.body.find("sk-fake") == std::string::npos);  // never the value
  HttpResponse unknown = post(sock, "/api/credentials/validate", R"({"ref":"op://ChittyOS Services/Nope/x"})");
  CHECK(at(parse(unknown.body), "status").text == "unknown");

  // insights and audit: admin only.
  auto insights = chitty::testing::get(sock, "/api/onepassword/insights/ops");
  REQUIRE(insights->status == 200);
  Json in = parse(insights->body);
  CHECK(std::stoi(at(at(in, "requests"), "total").text) >= 8);
  CHECK(std::stoi(at(in, "distinct_refs").text) >= 4);
  CHECK(insights->body.find("sk-fake") == std::string::npos);
  CHECK(chitty::testing::get(sock, "/api/onepassword/insights/nobody")->status == 404);
  auto audit = chitty::testing::get(sock, "/api/credentials/audit?service=ops&limit=5");
  REQUIRE(audit->status == 200);
  CHECK(at(parse(audit->body), "count").text == "5");
  CHECK(audit->body.find("sk-fake") == std::string::npos);
}

TEST_CASE("admin routes refuse a service that is not admin", "[integration][policy][api]") {
  if (!is_root()) {
    WARN("skipped: needs root to run clients as other uids");
    return;
  }
  Fixture f;
  CHECK(curl_as(kRegistry, f.agent->socket(), "/api/credentials/audit").status == 403);
  CHECK(curl_as(kStranger, f.agent->socket(), "/api/onepassword/insights/registry").status == 403);
}

TEST_CASE("a hundred malformed requests: each the right 4xx, and the daemon keeps serving",
          "[integration][policy][malformed]") {
  TempDir dir;
  AgentSpec spec;
  spec.rest = "[[credential]]\ntype = \"t\"\nref = \"op://V/I/f\"\nenv = \"T_VALUE\"\n"
              "[[service]]\nname = \"me\"\nuid = " + std::to_string(geteuid()) +
              "\nallow = [\"op://**\", \"type:t\"]\nrate_limit = \"100000/h\"\nadmin = true\n";
  spec.env = {"T_VALUE=v"};
  AgentProcess agent(dir, spec);
  REQUIRE(agent.wait_ready());
  struct Bad {
    std::string path;
    std::string body;
    int status;
    std::string code;
  };
  std::vector<Bad> cases;
  const std::vector<std::pair<std::string, std::string>> bodies = {
      {"", "bad_request"}, {"{", "bad_request"}, {"[]", "bad_request"}, {"null", "bad_request"},
      {"{\"ref\":1}", "bad_request"}, {"{\"nope\":1}", "bad_request"}, {"{}", "bad_request"},
      {"{\"ref\":\"op://a/b\"}", "bad_request"}, {"{\"ref\":\"op://a/../c\"}", "bad_request"},
      {"{\"ref\":\"op://a/b/c\",\"ref\":\"op://a/b/c\"}", "bad_request"},
      {"{\"ref\":\"\\u0000\"}", "bad_request"}, {"{\"ref\":\"op://a/b/c\",\"refresh\":1}", "bad_request"},
      {"{\"ref\":\"op://a/b/c\",\"context\":{\"x\":1}}", "bad_request"},
      {std::string(40, '[') + std::string(40, ']'), "bad_request"}, {"{\"ref\":\"\xc3\x28\"}", "bad_request"},
      {"{\"credential_type\":\"\"}", "bad_request"}, {"{\"vault\":\"a\"}", "bad_request"},
      {"{\"ref\":\"op://a/b/" + std::string(1100, 'x') + "\"}", "bad_request"},
      {"\"just a string\"", "bad_request"}, {"{\"ref\":\"op://a/b/c\"}{}", "bad_request"},
      {"{\"ref\":\"op://a/b/c\",\"context\":{\"purpose\":5}}", "bad_request"},
      {"{\"ref\":\"op://a/b/c\",\"context\":[]}", "bad_request"},
  };
  for (const auto& route : {"/api/onepassword/retrieve", "/api/credentials/provision", "/api/credentials/validate",
                            "/api/onepassword/batch-retrieve"}) {
    for (const auto& [body, code] : bodies) cases.push_back({route, body, 400, code});
  }
  for (const auto& q : {"", "ref=op://a/b", "ref=%zz", "ref=op://a/b/c&ref=op://a/b/c", "ref=op://a/b/c&x=1",
                        "ref=op://a/b/c&refresh=maybe", "ref=op://a/./c", "ref=op://a/b/c%00",
                        "ref=op://a/b/c?x", "ref=https://a/b/c"}) {
    cases.push_back({std::string("/v1/secret?") + q, "", 400, "bad_request"});
  }
  for (const auto& q : {"limit=0", "limit=x", "since=no", "what=1"}) {
    cases.push_back({std::string("/api/credentials/audit?") + q, "", 400, "bad_request"});
  }
  cases.push_back({"/api/onepassword/emergency-revoke", "{}", 401, "unauthenticated"});
  cases.push_back({"/api/onepassword/no-such-route", "", 404, "not_found"});
  cases.push_back({"/api/onepassword/service-token/a%2Fb", "", 400, "bad_request"});
  REQUIRE(cases.size() >= 100);
  std::size_t right = 0;
  for (const auto& c : cases) {
    bool get = c.body.empty() && c.path.find("/api/onepassword/retrieve") == std::string::npos &&
               c.path.find("/api/credentials/") == std::string::npos && c.path.find("batch") == std::string::npos &&
               c.path.find("emergency") == std::string::npos;
    if (c.path.rfind("/api/credentials/audit", 0) == 0) get = true;
    HttpResponse r = get ? send(agent.socket(), "GET " + c.path + " HTTP/1.1\r\nHost: x\r\n\r\n")
                         : post(agent.socket(), c.path, c.body);
    INFO(c.path << " " << c.body.substr(0, 80) << " -> " << r.status << " " << r.body);
    CHECK(r.status == c.status);
    auto j = chitty::testing::read_json(r.body);
    REQUIRE(j);
    const Json* err = j->find("error");
    REQUIRE(err != nullptr);
    CHECK(at(*err, "code").text == c.code);
    CHECK_FALSE(at(*err, "message").text.empty());
    if (r.status == c.status) ++right;
  }
  CHECK(right == cases.size());
  CHECK(agent.running());
  auto h = chitty::testing::get(agent.socket(), "/health");
  REQUIRE(h);
  CHECK(h->status == 200);
  CHECK(post(agent.socket(), "/api/onepassword/retrieve", R"({"credential_type":"t"})").status == 200);
}

TEST_CASE("/metrics is valid Prometheus text (promtool) and names no secret", "[integration][policy][metrics]") {
  TempDir dir;
  AgentSpec spec;
  spec.rest = "[[credential]]\ntype = \"t\"\nref = \"op://Secret Vault/Secret Item/field\"\nenv = \"T_VALUE\"\n"
              "[[service]]\nname = \"me\"\nuid = " + std::to_string(geteuid()) +
              "\nallow = [\"type:t\"]\nrate_limit = \"3/h\"\n";
  spec.env = {"T_VALUE=metric-secret-value"};
  AgentProcess agent(dir, spec);
  REQUIRE(agent.wait_ready());
  for (int i = 0; i < 5; ++i) post(agent.socket(), "/api/onepassword/retrieve", R"({"credential_type":"t"})");
  post(agent.socket(), "/api/onepassword/retrieve", "{");
  auto m = chitty::testing::get(agent.socket(), "/metrics");
  REQUIRE(m);
  REQUIRE(m->status == 200);
  CHECK(m->header("Content-Type")->find("text/plain; version=0.0.4") == 0);
  CHECK_THAT(m->body, Catch::Contains("chitty_requests_total{route=\"/api/onepassword/retrieve\",decision=\"allow\",status=\"200\"} 3"));
  CHECK_THAT(m->body, Catch::Contains("chitty_denials_total{reason=\"rate_limited\"} 2"));
  CHECK_THAT(m->body, Catch::Contains("chitty_rate_limited_total 2"));
  CHECK_THAT(m->body, Catch::Contains("chitty_cache_lookups_total{result=\"hit\"} 2"));
  CHECK_THAT(m->body, Catch::Contains("chitty_request_duration_seconds_bucket{route=\"/api/onepassword/retrieve\",le=\"+Inf\"} 6"));
  CHECK_THAT(m->body, Catch::Contains("chitty_fallback_mode 0"));
  CHECK(m->body.find("metric-secret-value") == std::string::npos);
  CHECK(m->body.find("Secret Vault") == std::string::npos);
  CHECK(m->body.find("secret vault") == std::string::npos);
  dir.write("metrics.txt", m->body);
  auto check = chitty::testing::run({"promtool", "check", "metrics"}, 30s);
  // promtool reads stdin; run it through sh for the redirect.
  auto r = chitty::testing::run({"sh", "-c", "promtool check metrics < " + (dir / "metrics.txt")});
  INFO(r.out << r.err);
  CHECK(r.exit_code == 0);
  (void)check;
}
