// The real agent against the Connect emulator (tests/fakes/connect-emulator):
// resolution by names and IDs, sections, case, duplicates, each fault mapped
// to what the client sees, outages bridged within the window and recovered
// from without a restart, single-flight against a real server, and no item
// field left in the agent's memory.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <random>
#include <thread>

#include "connect_emulator.hpp"
#include "json_checks.hpp"
#include "json_reader.hpp"
#include "memory_scan.hpp"
#include "notify_socket.hpp"
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

std::string random_hex(int n) {
  std::random_device rd;
  static constexpr char kHex[] = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < n; ++i) s += kHex[rd() % 16];
  return s;
}

const std::string kOpenAi = "op://ChittyOS Integrations/OpenAI API/api_key";
const std::string kOpenAiValue = "sk-fake-openai-api-key-0001";
const std::string kIntegrationsVault = "w5n8integrationsvault00001";

// An emulator and an agent using it (short timers so outages play out in
// seconds), with a catalog and a service for this uid that may read
// everything.
struct Setup {
  TempDir dir;
  std::unique_ptr<ConnectEmulator> connect;
  std::unique_ptr<AgentProcess> agent;

  struct Options {
    std::string upstream_extra;  // more [upstream.onepassword] lines
    std::string cache = "ttl = \"1s\"\nfallback_window = \"3s\"\n";
    std::vector<std::string> env;
    std::string url;  // "" = the emulator's
    std::string token = "good-token";
    bool start_emulator = true;
  };

  Setup() : Setup(Options{}) {}
  explicit Setup(const Options& o) {
    if (o.start_emulator) connect = std::make_unique<ConnectEmulator>(ConnectEmulator::chittyos_fixtures());
    dir.write("op-token", o.token + "\n", 0600);
    AgentSpec spec;
    spec.rest = "[cache]\n" + o.cache + "\n[upstream.onepassword]\nurl = \"" +
                (o.url.empty() ? connect->url() : o.url) + "\"\ntoken_file = \"" + (dir / "op-token") +
                "\"\ntimeout = \"1s\"\nconnect_timeout = \"500ms\"\nprobe_interval = \"200ms\"\n"
                "breaker_backoff = \"200ms\"\nbreaker_max_backoff = \"400ms\"\nrate_limit_backoff = \"500ms\"\n" +
                o.upstream_extra +
                "\n[[credential]]\ntype = \"openai_api_key\"\nref = \"" + kOpenAi +
                "\"\nenv = \"OPENAI_API_KEY\"\n"
                "[[credential]]\ntype = \"chittyid_service_token\"\n"
                "ref = \"op://ChittyOS Services/ChittyID Service Token/service_token\"\n"
                "[[service]]\nname = \"tests\"\nuid = " +
                std::to_string(geteuid()) + "\nallow = [\"op://**\", \"type:openai_api_key\", \"type:chittyid_service_token\"]\n"
                "rate_limit = \"100000/h\"\n";
    spec.env = o.env;
    agent = std::make_unique<AgentProcess>(dir, spec);
    REQUIRE(agent->wait_ready());
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
  HttpResponse retrieve(const std::string& body) {
    return send("POST /api/onepassword/retrieve HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                std::to_string(body.size()) + "\r\n\r\n" + body);
  }
  Json health() {
    auto r = chitty::testing::get(agent->socket(), "/health");
    REQUIRE(r);
    return parse(r->body);
  }
  std::string upstream_status() { return at(at(at(health(), "upstream"), "onepassword_connect"), "status").text; }
  // Waits until /health shows `mode`.
  bool wait_mode(const std::string& mode, std::chrono::milliseconds timeout = 10s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (at(health(), "mode").text == mode) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }
  // The emulator's request log: the /v1 requests (probes left out).
  std::vector<Json> api_requests() {
    Json log = parse(connect->requests_json());
    std::vector<Json> out;
    for (const Json& r : at(log, "requests").items) {
      if (at(r, "path").text.rfind("/v1/", 0) == 0) out.push_back(r);
    }
    return out;
  }
};

std::string code_of(const HttpResponse& r) { return at(at(parse(r.body), "error"), "code").text; }
std::string message_of(const HttpResponse& r) { return at(at(parse(r.body), "error"), "message").text; }

}  // namespace

TEST_CASE("names and IDs, any case, sections: values come from Connect", "[integration][connect]") {
  Setup s;
  HttpResponse first = s.retrieve(R"({"credential_type":"openai_api_key"})");
  REQUIRE(first.status == 200);
  Json body = parse(first.body);
  CHECK(at(at(body, "credential"), "value").text == kOpenAiValue);
  CHECK(at(at(body, "credential"), "source").text == "1password");
  CHECK(first.header("X-Cache") == "MISS");
  // Vault filter, item filter, full item.
  auto log = s.api_requests();
  REQUIRE(log.size() == 3);
  CHECK(at(log[0], "query").text.find("filter=title") != std::string::npos);
  CHECK(at(log[2], "path").text.find("/items/") != std::string::npos);

  // Another spelling of the same secret is the same cache entry.
  HttpResponse other_case = s.secret("op://chittyos integrations/OPENAI api/API_KEY");
  REQUIRE(other_case.status == 200);
  CHECK(other_case.body == kOpenAiValue);
  CHECK(other_case.header("X-Cache") == "HIT");

  // By IDs: the vault's fixed ID and the item's ID from Connect.
  auto items = s.connect->get("/v1/vaults/" + kIntegrationsVault + "/items");
  std::string item_id;
  for (const Json& i : parse(items.body).items) {
    if (at(i, "title").text == "OpenAI API") item_id = at(i, "id").text;
  }
  REQUIRE(item_id.size() == 26);
  HttpResponse by_id = s.secret("op://" + kIntegrationsVault + "/" + item_id + "/org_id");
  REQUIRE(by_id.status == 200);
  CHECK(by_id.body == "org-fake0001");

  // Sections, by label and by ID; a field label in two sections without a
  // section part is ambiguous, and the answer names both.
  CHECK(s.secret("op://ChittyOS Infrastructure/Database Cluster/primary/password").body ==
        "fake-primary-db-password-0001");
  CHECK(s.secret("op://ChittyOS Infrastructure/Database Cluster/replica_db/PASSWORD").body ==
        "fake-replica-db-password-0001");
  CHECK(s.secret("op://ChittyOS Infrastructure/Database Cluster/notes").body ==
        "FAKE cluster for tests: primary and replica");
  HttpResponse ambiguous = s.secret("op://ChittyOS Infrastructure/Database Cluster/password");
  CHECK(ambiguous.status == 404);
  CHECK_THAT(message_of(ambiguous), Catch::Contains("primary_db") && Catch::Contains("replica_db"));
  HttpResponse no_section = s.secret("op://ChittyOS Infrastructure/Database Cluster/tertiary/password");
  CHECK(no_section.status == 404);
  CHECK_THAT(message_of(no_section), Catch::Contains("no section"));

  // /health shows the server.
  Json up = at(at(s.health(), "upstream"), "onepassword_connect");
  CHECK(at(up, "status").text == "healthy");
  CHECK(at(up, "circuit").text == "closed");
  CHECK(at(up, "server_version").text == "1.8.1");
}

TEST_CASE("steady state: a refresh is one request; a recreated item is resolved again once",
          "[integration][connect]") {
  Setup s;
  REQUIRE(s.secret(kOpenAi).status == 200);
  s.connect->reset();
  HttpResponse again = s.secret(kOpenAi, true);
  REQUIRE(again.status == 200);
  CHECK(again.header("X-Cache") == "MISS");
  auto log = s.api_requests();
  REQUIRE(log.size() == 1);  // the full item by its cached IDs
  CHECK(at(log[0], "path").text.find("/items/") != std::string::npos);
  REQUIRE(s.secret(kOpenAi, true).status == 200);
  auto log2 = s.api_requests();
  REQUIRE(log2.size() == 2);
  CHECK(at(log2[0], "connection").text == at(log2[1], "connection").text);  // the connection is reused

  // The item is deleted and recreated with the same title (a new ID): the
  // cached ID answers 404, the names are resolved again, the value served.
  s.connect->admin("recreate", R"({"vault":"ChittyOS Integrations","item":"OpenAI API"})");
  s.connect->reset();
  HttpResponse after = s.secret(kOpenAi, true);
  REQUIRE(after.status == 200);
  CHECK(after.body == kOpenAiValue);
  log = s.api_requests();
  REQUIRE(log.size() == 3);  // 404 on the old ID, the item filter again, the new item
  CHECK(at(log[0], "status").text == "404");
  CHECK(at(log[2], "status").text == "200");
}

TEST_CASE("unknown references are 404 and remembered briefly; duplicates are named", "[integration][connect]") {
  Setup s;
  HttpResponse missing = s.secret("op://ChittyOS Integrations/OpenAI API/no_such_field");
  CHECK(missing.status == 404);
  CHECK(code_of(missing) == "not_found");
  s.connect->reset();
  HttpResponse again = s.secret("op://ChittyOS Integrations/OpenAI API/no_such_field");
  CHECK(again.status == 404);
  CHECK(s.api_requests().empty());  // answered from the negative cache
  CHECK(s.secret("op://ChittyOS Integrations/OpenAI API/no_such_field", true).status == 404);
  CHECK(s.api_requests().size() == 1);  // a refresh asks anyway

  CHECK(s.secret("op://No Such Vault/x/y").status == 404);

  s.connect->admin("items", R"({"vault":"ChittyOS Services","item":{"title":"ChittyAuth Service Token","category":"API_CREDENTIAL","fields":[{"id":"service_token","label":"service_token","type":"CONCEALED","value":"dup"}]}})");
  HttpResponse dup = s.secret("op://ChittyOS Services/ChittyAuth Service Token/service_token");
  CHECK(dup.status == 404);
  CHECK_THAT(message_of(dup), Catch::Contains("2 items") && Catch::Contains("by its ID"));
}

TEST_CASE("each fault maps to a clear answer; a 5xx falls back to env, a 401 never does", "[integration][connect]") {
  Setup::Options o;
  o.env = {"OPENAI_API_KEY=sk-from-env-fallback"};
  o.cache = "ttl = \"1s\"\nfallback_window = \"1s\"\n";
  Setup s(o);
  const std::string chittyid = "op://ChittyOS Services/ChittyID Service Token/service_token";

  SECTION("5xx") {
    s.connect->fault("error503", 0, "/v1/");
    HttpResponse r = s.secret(chittyid);
    CHECK(r.status == 503);
    CHECK(code_of(r) == "upstream_unavailable");
    CHECK_THAT(message_of(r), Catch::Contains("503"));
    // The catalog's env fallback stands in for an availability failure.
    HttpResponse fb = s.retrieve(R"({"credential_type":"openai_api_key"})");
    REQUIRE(fb.status == 200);
    CHECK(at(at(parse(fb.body), "credential"), "source").text == "env");
    CHECK(at(at(parse(fb.body), "credential"), "value").text == "sk-from-env-fallback");
  }
  SECTION("garbage") {
    s.connect->fault("garbage", 0, "/v1/");
    HttpResponse r = s.secret(chittyid);
    CHECK(r.status == 503);
    CHECK_THAT(message_of(r), Catch::Contains("malformed"));
  }
  SECTION("truncated body") {
    s.connect->fault("truncated", 0, "/v1/");
    HttpResponse r = s.secret(chittyid);
    CHECK(r.status == 503);
    CHECK(code_of(r) == "upstream_unavailable");
  }
  SECTION("slower than the timeout") {
    s.connect->fault("slow", 0, "/v1/", 3000);
    auto t0 = std::chrono::steady_clock::now();
    HttpResponse r = s.secret(chittyid);
    CHECK(r.status == 503);
    CHECK(std::chrono::steady_clock::now() - t0 < 2500ms);  // the 1 s timeout, not the 3 s answer
    CHECK_THAT(message_of(r), Catch::Contains("imed out"));
  }
  SECTION("connection dropped") {
    s.connect->fault("down", 0, "/v1/");
    HttpResponse r = s.secret(chittyid);
    CHECK(r.status == 503);
  }
  SECTION("429: backoff, requests fail fast meanwhile") {
    s.connect->fault("rate_limit", 1, "/v1/");
    HttpResponse r = s.secret(chittyid);
    CHECK(r.status == 503);
    CHECK_THAT(message_of(r), Catch::Contains("rate limiting"));
    s.connect->reset();
    HttpResponse fast = s.secret(chittyid);
    CHECK(fast.status == 503);
    CHECK(s.api_requests().empty());  // not even asked
    std::this_thread::sleep_for(800ms);  // past the jittered 500 ms
    HttpResponse later = s.secret(chittyid);
    CHECK(later.status == 200);
  }
  SECTION("401: an alert, not an outage; no fallback stands in") {
    s.connect->fault("unauthorized", 0, "/v1/");
    HttpResponse r = s.retrieve(R"({"credential_type":"openai_api_key"})");
    CHECK(r.status == 503);
    CHECK_THAT(message_of(r), Catch::Contains("401") && Catch::Contains("op-token"));
    CHECK(r.body.find("sk-from-env-fallback") == std::string::npos);
    CHECK(s.upstream_status() == "unauthorized");
    CHECK(at(s.health(), "status").text == "degraded");
    CHECK(at(s.health(), "mode").text == "normal");  // Connect is up
    CHECK_THAT(s.agent->log(), Catch::Contains("ALERT"));
  }
  SECTION("403: the vault is out of the token's scope") {
    s.connect->admin("tokens", R"({"token":"good-token","vaults":["ChittyOS Services"]})");
    HttpResponse r = s.secret("op://" + kIntegrationsVault + "/OpenAI API/api_key");
    CHECK(r.status == 403);
    CHECK(code_of(r) == "forbidden");
    CHECK_THAT(message_of(r), Catch::Contains("scope"));
  }
}

TEST_CASE("a rotated token file is picked up after a 401 without a restart", "[integration][connect]") {
  Setup s;
  REQUIRE(s.secret(kOpenAi).status == 200);
  // Connect now accepts only a new token; the file is rewritten.
  s.connect->admin("tokens", R"({"token":"rotated-token","vaults":"*"})");
  s.connect->admin("tokens", R"({"token":"good-token","remove":true})");
  s.dir.write("op-token", "rotated-token\n", 0600);
  HttpResponse r = s.secret(kOpenAi, true);
  CHECK(r.status == 200);
  CHECK(r.body == kOpenAiValue);
  CHECK_THAT(s.agent->log(), Catch::Contains("token file changed"));
  CHECK(s.upstream_status() == "healthy");
}

TEST_CASE("Connect killed: STALE within the window, then the env fallback or 503; back to normal by itself",
          "[integration][connect][outage]") {
  Setup::Options o;
  o.env = {"OPENAI_API_KEY=sk-from-env-fallback"};
  Setup s(o);  // ttl 1 s, fallback window 3 s
  const std::string chittyid = "op://ChittyOS Services/ChittyID Service Token/service_token";
  REQUIRE(s.secret(chittyid).status == 200);
  REQUIRE(s.secret(kOpenAi).status == 200);
  s.connect->kill();
  std::this_thread::sleep_for(1200ms);  // past the TTL

  HttpResponse stale = s.secret(chittyid);
  REQUIRE(stale.status == 200);
  CHECK(stale.body == "fake-chittyid-service-token-0001");
  CHECK(stale.header("X-Cache") == "STALE");
  CHECK(s.wait_mode("fallback", 3s));
  Json h = s.health();
  CHECK(at(h, "status").text == "degraded");
  CHECK(at(at(at(h, "upstream"), "onepassword_connect"), "status").text == "unreachable");
  HttpResponse stale2 = s.secret(chittyid);
  CHECK(stale2.header("X-Chitty-Mode") == "fallback");
  CHECK(std::stoi(*stale2.header("Age")) >= 1);

  std::this_thread::sleep_for(2500ms);  // past the 3 s window
  HttpResponse closed = s.secret(chittyid);
  CHECK(closed.status == 503);
  CHECK(code_of(closed) == "upstream_unavailable");
  CHECK_THAT(message_of(closed), Catch::Contains("fallback window"));
  HttpResponse env = s.retrieve(R"({"credential_type":"openai_api_key"})");
  REQUIRE(env.status == 200);
  CHECK(at(at(parse(env.body), "credential"), "source").text == "env");

  // Connect comes back: normal mode without a restart, fresh values.
  s.connect->restart();
  CHECK(s.wait_mode("normal", 5s));
  HttpResponse fresh = s.secret(chittyid);
  REQUIRE(fresh.status == 200);
  CHECK(fresh.header("X-Cache") == "MISS");
  CHECK(fresh.header("X-Chitty-Mode") == "normal");
  CHECK(s.upstream_status() == "healthy");
  CHECK(at(s.health(), "status").text == "healthy");
}

TEST_CASE("100 concurrent requests for one uncached reference make one item fetch", "[integration][connect]") {
  Setup s;
  s.connect->fault("slow", 0, "/v1/", 300);  // the requests all arrive while the fetch is out
  constexpr int kClients = 100;
  std::vector<std::unique_ptr<UdsClient>> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<UdsClient>(s.agent->socket()));
    REQUIRE(clients.back()->send("GET /v1/secret?ref=" + encode(kOpenAi) + " HTTP/1.1\r\nHost: x\r\n\r\n"));
  }
  int ok = 0;
  for (auto& c : clients) {
    auto r = c->read_response(15s);
    REQUIRE(r);
    if (r->status == 200 && r->body == kOpenAiValue) ++ok;
  }
  CHECK(ok == kClients);
  int item_fetches = 0;
  for (const Json& r : s.api_requests()) {
    if (at(r, "path").text.find("/items/") != std::string::npos) ++item_fetches;
  }
  CHECK(item_fetches == 1);
}

TEST_CASE("cold start with Connect down: fallbacks served, the rest fails closed", "[integration][connect][outage]") {
  Setup::Options o;
  o.env = {"OPENAI_API_KEY=sk-from-env-fallback"};
  o.url = "http://127.0.0.1:9";  // nothing listens (discard port)
  o.start_emulator = false;
  Setup s(o);
  HttpResponse env = s.retrieve(R"({"credential_type":"openai_api_key"})");
  REQUIRE(env.status == 200);
  CHECK(at(at(parse(env.body), "credential"), "source").text == "env");
  HttpResponse other = s.retrieve(R"({"credential_type":"chittyid_service_token"})");
  CHECK(other.status == 503);
  CHECK(code_of(other) == "upstream_unavailable");
  CHECK(s.wait_mode("fallback", 3s));
  CHECK(s.upstream_status() == "unreachable");
  auto h = chitty::testing::get(s.agent->socket(), "/health");
  CHECK(h->status == 200);  // degraded, still serving
}

TEST_CASE("a backup Connect server is used while the primary is down", "[integration][connect][outage]") {
  ConnectEmulator backup(ConnectEmulator::chittyos_fixtures());
  Setup::Options o;
  o.url = "http://127.0.0.1:9";
  o.start_emulator = false;
  o.upstream_extra = "backup_url = \"" + backup.url() + "\"\n";
  Setup s(o);
  HttpResponse r = s.secret(kOpenAi);
  REQUIRE(r.status == 200);
  CHECK(r.body == kOpenAiValue);
  Json up = at(s.health(), "upstream");
  CHECK(at(at(up, "onepassword_connect_backup"), "status").text == "healthy");
  CHECK(at(s.health(), "mode").text == "normal");  // one server is available
}

TEST_CASE("the token file must be private; proxies in the environment are ignored", "[integration][connect]") {
  ConnectEmulator connect(ConnectEmulator::chittyos_fixtures());
  {
    TempDir dir;
    dir.write("op-token", "good-token\n", 0644);
    AgentSpec spec;
    spec.rest = "[upstream.onepassword]\nurl = \"" + connect.url() + "\"\ntoken_file = \"" + (dir / "op-token") + "\"\n";
    AgentProcess agent(dir, spec);
    auto code = agent.wait_exit(10s);
    REQUIRE(code);
    CHECK(*code != 0);
    CHECK_THAT(agent.log(), Catch::Contains("readable or writable by group or others") && Catch::Contains("0644"));
  }
  {
    Setup::Options o;
    o.env = {"http_proxy=http://127.0.0.1:9", "HTTP_PROXY=http://127.0.0.1:9", "ALL_PROXY=http://127.0.0.1:9",
             "SSLKEYLOGFILE=/tmp/never-written"};
    Setup s(o);
    CHECK(s.secret(kOpenAi).status == 200);
    std::string environ_text = chitty::testing::read_file("/proc/" + std::to_string(s.agent->pid()) + "/environ");
    CHECK(environ_text.find("SSLKEYLOGFILE") == std::string::npos);
  }
}

TEST_CASE("after fetching an item with several secret fields, none of them is in the agent's memory",
          "[integration][connect][memory]") {
  if (!is_root()) {
    WARN("skipped: reading a non-dumpable process's memory needs root (CAP_SYS_PTRACE)");
    return;
  }
  for (bool force_mlock : {false, true}) {
    INFO("memory path: " << (force_mlock ? "mlock" : "memfd_secret where available"));
    Setup::Options o;
    if (force_mlock) o.env = {"CHITTY_TEST_NO_MEMFD_SECRET=1"};
    Setup s(o);
    std::vector<std::string> secrets{"asked-" + random_hex(32), "other-" + random_hex(32), "third-" + random_hex(32),
                                     "in-section-" + random_hex(32)};
    s.connect->admin("items", R"({"vault":"ChittyOS Infrastructure","item":{"title":"Scan Me","category":"LOGIN",
      "sections":[{"id":"extra","label":"Extra"}],
      "fields":[{"id":"asked","label":"asked","type":"CONCEALED","value":")" + secrets[0] + R"("},
                {"id":"other","label":"other","type":"CONCEALED","value":")" + secrets[1] + R"("},
                {"id":"third","label":"third","type":"STRING","value":")" + secrets[2] + R"("},
                {"id":"deep","label":"deep","section":{"id":"extra"},"type":"CONCEALED","value":")" + secrets[3] + R"("}]}})");
    for (int i = 0; i < 3; ++i) {
      HttpResponse r = s.secret("op://ChittyOS Infrastructure/Scan Me/asked", true);
      REQUIRE(r.status == 200);
      REQUIRE(r.body == secrets[0]);
    }
    REQUIRE(s.retrieve(R"({"ref":"op://ChittyOS Infrastructure/Scan Me/asked"})").status == 200);
    REQUIRE(chitty::testing::get(s.agent->socket(), "/health"));  // the write callbacks have run
    std::vector<std::string> needles = secrets;
    needles.push_back("good-token");              // the agent's own Connect token
    needles.push_back(s.agent->config_path());    // the planted marker
    auto scan = chitty::testing::scan_memory(s.agent->pid(), needles);
    INFO("read " << scan.bytes_read << " bytes in " << scan.regions_read << " mappings");
    CHECK(scan.bytes_read > 1'000'000);
    CHECK(scan.hits.back() > 0);  // the scan does see the agent's heap
    for (std::size_t i = 0; i < secrets.size(); ++i) {
      INFO("field " << i);
      CHECK(scan.hits[i] == 0);
    }
    CHECK(scan.hits[secrets.size()] == 0);  // nor the token (sealed; curl's copies wiped)
  }
}

TEST_CASE("upstream changes reach systemd's STATUS line", "[integration][connect][systemd]") {
  chitty::testing::NotifySocket n;
  Setup::Options o;
  o.env = {n.env()};
  Setup s(o);
  auto healthy = n.until("upstream healthy");
  REQUIRE(healthy);
  CHECK(healthy->find("STATUS=serving on " + s.agent->socket()) != std::string::npos);
  s.connect->kill();
  auto down = n.until("upstream unreachable");
  REQUIRE(down);
  auto fallback = down->find("fallback mode") != std::string::npos ? down : n.until("fallback mode");
  REQUIRE(fallback);
  CHECK(fallback->find("cached values up to 3s") != std::string::npos);
  s.connect->restart();
  auto back = n.until("upstream healthy", 10s);
  REQUIRE(back);
  CHECK(back->find("fallback") == std::string::npos);
}

TEST_CASE("https: the configured CA is trusted, an unknown certificate is a TLS failure", "[integration][connect][tls]") {
  TempDir certs;
  auto made = chitty::testing::run({"openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                                    "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", certs / "key.pem", "-out",
                                    certs / "cert.pem", "-days", "1", "-subj", "/CN=127.0.0.1", "-addext",
                                    "subjectAltName=IP:127.0.0.1"});
  INFO(made.err);
  REQUIRE(made.exit_code == 0);
  ConnectEmulator tls(ConnectEmulator::chittyos_fixtures(), 0,
                      {"--tls-cert", certs / "cert.pem", "--tls-key", certs / "key.pem"});
  REQUIRE(tls.url().rfind("https://", 0) == 0);
  {
    Setup::Options o;
    o.start_emulator = false;
    o.url = tls.url();
    o.upstream_extra = "ca_file = \"" + (certs / "cert.pem") + "\"\n";
    Setup s(o);
    HttpResponse r = s.secret(kOpenAi);
    REQUIRE(r.status == 200);
    CHECK(r.body == kOpenAiValue);
  }
  {
    Setup::Options o;
    o.start_emulator = false;
    o.url = tls.url();  // the system's CAs do not know this certificate
    Setup s(o);
    HttpResponse r = s.secret(kOpenAi);
    CHECK(r.status == 503);
    CHECK_THAT(message_of(r), Catch::Contains("TLS"));
    CHECK(s.wait_mode("fallback", 3s));
    Json up = at(at(s.health(), "upstream"), "onepassword_connect");
    CHECK_THAT(at(up, "last_error").text, Catch::Contains("TLS"));
  }
}

TEST_CASE("an item larger than max_response_bytes is refused, and the agent stays up", "[integration][connect]") {
  Setup::Options o;
  o.upstream_extra = "max_response_bytes = \"2KiB\"\n";
  Setup s(o);
  std::string big(4000, 'x');
  s.connect->admin("items", R"({"vault":"ChittyOS Infrastructure","item":{"title":"Huge","category":"LOGIN","fields":[{"id":"blob","label":"blob","type":"CONCEALED","value":")" + big + R"("}]}})");
  HttpResponse r = s.secret("op://ChittyOS Infrastructure/Huge/blob");
  CHECK(r.status == 503);
  CHECK_THAT(message_of(r), Catch::Contains("larger than max_response_bytes"));
  CHECK(s.secret(kOpenAi).status == 200);  // other items are fine
  CHECK(s.upstream_status() == "healthy");  // not an outage
}

TEST_CASE("SIGHUP re-reads the token file: the next request uses the new token", "[integration][connect]") {
  Setup s;
  REQUIRE(s.secret(kOpenAi).status == 200);
  s.connect->admin("tokens", R"({"token":"next-token","vaults":"*"})");
  s.dir.write("op-token", "next-token\n", 0600);
  kill(s.agent->pid(), SIGHUP);
  auto deadline = std::chrono::steady_clock::now() + 5s;
  while (s.agent->log().find("Connect token re-read") == std::string::npos && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(20ms);
  }
  REQUIRE_THAT(s.agent->log(), Catch::Contains("Connect token re-read"));
  s.connect->reset();
  REQUIRE(s.secret(kOpenAi, true).status == 200);
  auto log = s.api_requests();
  REQUIRE(log.size() == 1);
  CHECK(at(log[0], "token").text == "next-token");  // no 401 first
}
