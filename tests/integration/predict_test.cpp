// Prediction on the real agent against the Connect emulator: a service that
// restarts gets its start-up set fetched before it asks; a restarted agent
// warms it from the model it saved; a tampered model is refused; insights,
// /metrics and the audit trail show what was fetched ahead.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <thread>

#include "connect_emulator.hpp"
#include "connecting_child.hpp"
#include "json_checks.hpp"
#include "json_reader.hpp"
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

const std::vector<std::string> kStartupSet = {
    "op://ChittyOS Services/ChittyID Service Token/service_token",
    "op://ChittyOS Services/ChittyAuth Service Token/service_token",
    "op://ChittyOS Services/ChittyChronicle Service Token/service_token",
};

struct Setup {
  TempDir dir;
  ConnectEmulator connect{ConnectEmulator::chittyos_fixtures()};
  std::unique_ptr<AgentProcess> agent;

  Setup() {
    dir.write("op-token", "good-token\n", 0600);
    start();
  }
  void start() {
    AgentSpec spec;
    spec.rest = "[cache]\nttl = \"2s\"\nfallback_window = \"30s\"\n"
                "[upstream.onepassword]\nurl = \"" + connect.url() + "\"\ntoken_file = \"" + (dir / "op-token") +
                "\"\n[predict]\nstartup_window = \"1500ms\"\nsave_interval = \"1s\"\n"
                "[[service]]\nname = \"tests\"\nuid = " + std::to_string(geteuid()) +
                "\nallow = [\"op://**\"]\nadmin = true\nrate_limit = \"100000/h\"\n";
    agent = std::make_unique<AgentProcess>(dir, spec);
    REQUIRE(agent->wait_ready());
  }

  static HttpResponse secret(UdsClient& c, const std::string& ref) {
    REQUIRE(c.send("GET /v1/secret?ref=" + encode(ref) + " HTTP/1.1\r\nHost: x\r\n\r\n"));
    auto r = c.read_response(10s);
    REQUIRE(r);
    REQUIRE(r->status == 200);
    return *r;
  }
  static std::string cache_of(const HttpResponse& r) { return r.header("x-cache").value_or(""); }

  std::string metrics() {
    auto r = chitty::testing::get(agent->socket(), "/metrics");
    REQUIRE(r);
    return r->body;
  }
  // The value of one sample line of /metrics ("name{labels}"), 0 if absent.
  double sample(const std::string& series) {
    const std::string text = metrics();
    auto at = text.find("\n" + series + " ");
    if (at == std::string::npos) return 0;
    return std::stod(text.substr(at + series.size() + 2));
  }
  bool wait_sample(const std::string& series, double at_least, std::chrono::milliseconds timeout = 10s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (sample(series) >= at_least) return true;
      std::this_thread::sleep_for(50ms);
    }
    return false;
  }
  // Item reads the emulator served (GET /v1/vaults/V/items/I).
  int item_fetches() {
    int n = 0;
    const Json log = parse(connect.requests_json());
    for (const Json& r : at(log, "requests").items) {
      const std::string& path = at(r, "path").text;
      auto items = path.find("/items/");
      if (path.rfind("/v1/vaults/", 0) == 0 && items != std::string::npos && path.find('/', items + 7) == std::string::npos) {
        ++n;
      }
    }
    return n;
  }
  // A process of the service other than this one: a new pid, as after a restart.
  struct Process {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    chitty::testing::ConnectingChild child;
    UdsClient client;
    explicit Process(const std::string& socket) : child(fd, socket), client(UdsClient::adopt(fd)) {
      REQUIRE(child.connected());
    }
  };
};

const std::string kStartups = "chitty_prefetches_total{kind=\"start-up\",outcome=\"issued\"}";
const std::string kUsed = "chitty_prefetches_total{kind=\"start-up\",outcome=\"used\"}";

}  // namespace

TEST_CASE("a restarted service finds its start-up set fetched; a restarted agent warms it from its model",
          "[integration][predict]") {
  Setup s;
  {
    UdsClient first(s.agent->socket());  // this process: the service's first run
    for (const auto& ref : kStartupSet) CHECK(Setup::cache_of(Setup::secret(first, ref)) == "MISS");
  }
  std::this_thread::sleep_for(2500ms);  // the values expire; the start-up window has closed

  {
    Setup::Process restarted(s.agent->socket());
    CHECK(Setup::cache_of(Setup::secret(restarted.client, kStartupSet[0])) == "MISS");  // it begins the start-up
    REQUIRE(s.wait_sample(kStartups, 2));
    for (std::size_t i = 1; i < kStartupSet.size(); ++i) {
      INFO(kStartupSet[i]);
      CHECK(Setup::cache_of(Setup::secret(restarted.client, kStartupSet[i])) == "HIT");
    }
    CHECK(s.sample(kUsed) == 2);
  }

  SECTION("insights and the audit trail show it") {
    auto r = chitty::testing::get(s.agent->socket(), "/api/onepassword/insights/tests");
    REQUIRE(r);
    REQUIRE(r->status == 200);
    const Json insights = parse(r->body);
    const Json& prediction = at(insights, "prediction");
    CHECK(at(prediction, "startup_set").items.size() == 3);
    CHECK(std::stoi(at(prediction, "startups_seen").text) >= 2);
    auto audit = chitty::testing::get(s.agent->socket(), "/api/credentials/audit?limit=1000");
    REQUIRE(audit);
    int prefetches = 0;
    const Json trail = parse(audit->body);
    for (const Json& e : at(trail, "events").items) {
      if (at(e, "kind").text == "prefetch") {
        ++prefetches;
        CHECK(at(e, "action").text == "start-up");
        CHECK(at(e, "service").text == "tests");
        CHECK(at(e, "decision").text == "allow");
      }
    }
    CHECK(prefetches == 2);
  }

  SECTION("the agent restarts: the model is loaded and the set warmed before the first request") {
    REQUIRE(s.agent->stop(SIGTERM) == 0);
    std::string model;
    {
      std::ifstream in(s.dir / "state/predict.model");
      model.assign(std::istreambuf_iterator<char>(in), {});
    }
    REQUIRE_FALSE(model.empty());
    CHECK(model.find("fake-chittyid-service-token") == std::string::npos);  // references and counts, no value
    s.connect.reset();
    s.start();
    REQUIRE(s.wait_sample(kStartups, 3));
    CHECK(s.item_fetches() == 3);
    Setup::Process again(s.agent->socket());
    for (const auto& ref : kStartupSet) {
      INFO(ref);
      CHECK(Setup::cache_of(Setup::secret(again.client, ref)) == "HIT");
    }
    CHECK(s.item_fetches() == 3);
  }

  SECTION("a tampered model is refused and set aside; the agent starts with an empty one") {
    REQUIRE(s.agent->stop(SIGTERM) == 0);
    std::string model;
    {
      std::ifstream in(s.dir / "state/predict.model");
      model.assign(std::istreambuf_iterator<char>(in), {});
    }
    auto at_ref = model.find("chittyauth");
    REQUIRE(at_ref != std::string::npos);
    model.replace(at_ref, 10, "chittyevil");
    s.dir.write("state/predict.model", model, 0600);
    s.connect.reset();
    s.start();
    CHECK(s.agent->log().find("prediction model refused") != std::string::npos);
    CHECK(access((s.dir / "state/predict.model.refused").c_str(), F_OK) == 0);
    std::this_thread::sleep_for(500ms);
    CHECK(s.item_fetches() == 0);  // nothing warmed from a model it cannot trust
    UdsClient c(s.agent->socket());
    CHECK(Setup::cache_of(Setup::secret(c, kStartupSet[0])) == "MISS");
  }
}
