// Risk scoring on the real agent against the Connect emulator, through real
// curl: the risk fields of answers and errors; the step-up band with the
// right, wrong and missing token; the deny band's alert (an alert-level log
// line, STATUS, a metric, an audit event); enumeration denied within ten
// requests and a second; baselines kept across a restart, and a tampered
// baselines file refused; insights.
#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <thread>

#include "connect_emulator.hpp"
#include "json_checks.hpp"
#include "json_reader.hpp"
#include "notify_socket.hpp"
#include "process.hpp"
#include "uds_client.hpp"

using namespace std::chrono_literals;
using chitty::testing::AgentProcess;
using chitty::testing::AgentSpec;
using chitty::testing::at;
using chitty::testing::CommandResult;
using chitty::testing::ConnectEmulator;
using chitty::testing::encode;
using chitty::testing::Json;
using chitty::testing::parse;
using chitty::testing::TempDir;

namespace {

const std::string kStepUpToken = "step-up-7f3c9a1e5b2d4086";
const std::string kChittyId = "op://ChittyOS Services/ChittyID Service Token/service_token";
const std::string kChittyAuth = "op://ChittyOS Services/ChittyAuth Service Token/service_token";

struct Setup {
  TempDir dir;
  ConnectEmulator connect{ConnectEmulator::chittyos_fixtures()};
  std::unique_ptr<AgentProcess> agent;
  std::string weights;
  std::vector<std::string> env;

  // `weights`: lines for [risk.weights]. Learning is off: every factor
  // counts from the first request.
  explicit Setup(std::string w, std::vector<std::string> e = {}) : weights(std::move(w)), env(std::move(e)) {
    dir.write("op-token", "good-token\n", 0600);
    dir.write("step-up", kStepUpToken + "\n", 0600);
    start();
  }
  void start() {
    AgentSpec spec;
    spec.rest = "[upstream.onepassword]\nurl = \"" + connect.url() + "\"\ntoken_file = \"" + (dir / "op-token") +
                "\"\n[risk]\nlearning_period = \"0s\"\nlearning_requests = 0\nsave_interval = \"1s\"\n"
                "[risk.weights]\n" + weights +
                "\n[[service]]\nname = \"tests\"\nuid = " + std::to_string(geteuid()) +
                "\nallow = [\"op://ChittyOS Services/**\"]\nadmin = true\nrate_limit = \"100000/h\"\n"
                "step_up_token_file = \"" + (dir / "step-up") + "\"\n";
    spec.env = env;
    agent = std::make_unique<AgentProcess>(dir, spec);
    REQUIRE(agent->wait_ready());
  }

  CommandResult secret(const std::string& ref, std::vector<std::string> args = {}) {
    return chitty::testing::curl(agent->socket(), "/v1/secret?ref=" + encode(ref), std::move(args));
  }
  CommandResult retrieve(const std::string& body, std::vector<std::string> args = {}) {
    args.insert(args.end(), {"-X", "POST", "-H", "Content-Type: application/json", "--data-binary", body});
    return chitty::testing::curl(agent->socket(), "/api/onepassword/retrieve", std::move(args));
  }
  std::string metrics() { return chitty::testing::curl(agent->socket(), "/metrics").out; }
  double sample(const std::string& series) {
    const std::string text = metrics();
    auto pos = text.find("\n" + series + " ");
    if (pos == std::string::npos) return -1;
    return std::stod(text.substr(pos + series.size() + 2));
  }
  Json audit_events() {
    auto r = chitty::testing::curl(agent->socket(), "/api/credentials/audit?limit=1000");
    return parse(body_of(r));
  }
  static std::string body_of(const CommandResult& r) {
    auto end = r.out.find("\r\n\r\n");
    return end == std::string::npos ? r.out : r.out.substr(end + 4);
  }
  static int status_of(const CommandResult& r) {
    auto sp = r.out.find(' ');
    return sp == std::string::npos ? 0 : std::stoi(r.out.substr(sp + 1, 3));
  }
};

// A factor's weight in an answer's metadata (-1: not reported).
int factor(const Json& metadata, const std::string& name) {
  for (const Json& f : at(metadata, "risk_factors").items) {
    if (at(f, "factor").text == name) return std::stoi(at(f, "weight").text);
  }
  return -1;
}

const std::string kQuiet = "new_executable = 0\nnew_uid = 0\nnew_unit = 0\nidentity_partial = 0\n";

}  // namespace

TEST_CASE("the step-up band: refused without the service's token, served with it", "[integration][risk][step-up]") {
  Setup s(kQuiet + "first_access = 55\n");

  auto missing = s.secret(kChittyId);
  REQUIRE(missing.exit_code == 0);
  CHECK(Setup::status_of(missing) == 403);
  Json err = parse(Setup::body_of(missing));
  CHECK(at(at(err, "error"), "code").text == "step_up_required");
  const Json& meta = at(err, "metadata");
  CHECK(at(meta, "risk_score").text == "55");
  CHECK(at(meta, "risk_level").text == "high");
  CHECK(at(meta, "decision").text == "step_up");
  CHECK(factor(meta, "first_access") == 55);
  CHECK(s.connect.requests_json().find("ChittyID") == std::string::npos);  // nothing fetched for it

  // (Through the other route: a second refusal of one kind from one caller
  // would be counted into an aggregate event rather than written in full.)
  auto wrong = s.retrieve("{\"ref\":\"" + kChittyId + "\"}", {"-H", "X-Chitty-Step-Up: not-the-token"});
  CHECK(Setup::status_of(wrong) == 403);
  CHECK(at(at(parse(Setup::body_of(wrong)), "error"), "code").text == "step_up_required");

  auto right = s.retrieve("{\"ref\":\"" + kChittyId + "\"}", {"-H", "X-Chitty-Step-Up: " + kStepUpToken});
  REQUIRE(Setup::status_of(right) == 200);
  Json ok = parse(Setup::body_of(right));
  CHECK(at(at(ok, "credential"), "value").text == "fake-chittyid-service-token-0001");
  const Json& m = at(ok, "metadata");
  CHECK(at(m, "decision").text == "step_up");
  CHECK(at(m, "step_up").boolean);
  CHECK(at(m, "risk_score").text == "55");

  // The audit trail has the three, with their scores; no event holds the token.
  Json events = s.audit_events();
  int refused = 0, stepped = 0;
  for (const Json& e : at(events, "events").items) {
    if (at(e, "kind").text != "decision") continue;
    const Json& risk = at(e, "risk");
    CHECK(at(risk, "score").text == "55");
    if (at(e, "code").text == "step_up_required") ++refused;
    if (at(e, "decision").text == "allow") {
      ++stepped;
      CHECK(at(risk, "step_up").boolean);
    }
  }
  CHECK(refused == 2);
  CHECK(stepped == 1);
  // Nothing in the state directory (spool, baselines) holds the token either.
  CHECK(chitty::testing::run({"grep", "-rqF", kStepUpToken, s.dir / "state"}).exit_code == 1);
  CHECK(s.agent->log().find(kStepUpToken) == std::string::npos);
  CHECK(s.sample("chitty_risk_decisions_total{decision=\"step_up\"}") == 3);
  CHECK(s.sample("chitty_risk_alerts_total") == 0);
}

TEST_CASE("the monitor band: served, flagged in the answer, the audit event and /metrics", "[integration][risk]") {
  Setup s(kQuiet + "first_access = 35\n");
  auto r = s.retrieve("{\"ref\":\"" + kChittyId + "\"}");
  REQUIRE(Setup::status_of(r) == 200);
  const Json body = parse(Setup::body_of(r));
  const Json& m = at(body, "metadata");
  CHECK(at(m, "risk_score").text == "35");
  CHECK(at(m, "risk_level").text == "medium");
  CHECK(at(m, "decision").text == "monitor");
  CHECK(factor(m, "first_access") == 35);
  CHECK(s.sample("chitty_risk_decisions_total{decision=\"monitor\"}") == 1);
  CHECK(s.sample("chitty_risk_score_bucket{le=\"29\"}") == 0);
  CHECK(s.sample("chitty_risk_score_bucket{le=\"49\"}") == 1);
  bool flagged = false;
  const Json events = s.audit_events();  // (held: the loop below reads into it)
  for (const Json& e : at(events, "events").items) {
    if (at(e, "kind").text == "decision" && at(e, "decision").text == "allow") {
      flagged = at(at(e, "risk"), "decision").text == "monitor";
    }
  }
  CHECK(flagged);
}

TEST_CASE("the deny band: refused before any fetch, and alerted four ways", "[integration][risk][deny]") {
  chitty::testing::NotifySocket n;
  Setup s(kQuiet + "first_access = 80\n", {n.env()});
  REQUIRE(n.until("READY=1"));

  auto denied = s.secret(kChittyId, {"-H", "X-Chitty-Step-Up: " + kStepUpToken});
  CHECK(Setup::status_of(denied) == 403);
  Json err = parse(Setup::body_of(denied));
  CHECK(at(at(err, "error"), "code").text == "risk_denied");
  CHECK(at(at(err, "metadata"), "risk_level").text == "critical");
  CHECK(at(at(err, "metadata"), "decision").text == "deny");
  CHECK(s.connect.requests_json().find("/items/") == std::string::npos);  // no item was read

  // A claimed service that is not the caller's: context_mismatch, scored 100, alerted.
  auto mismatch = s.retrieve("{\"ref\":\"" + kChittyAuth + "\",\"context\":{\"service\":\"billing\"}}");
  CHECK(Setup::status_of(mismatch) == 403);
  Json mm = parse(Setup::body_of(mismatch));
  CHECK(at(at(mm, "error"), "code").text == "context_mismatch");
  CHECK(at(at(mm, "metadata"), "risk_score").text == "100");
  CHECK(factor(at(mm, "metadata"), "service_mismatch") == 100);

  CHECK(s.sample("chitty_risk_alerts_total") == 2);
  CHECK(s.sample("chitty_risk_decisions_total{decision=\"deny\"}") == 2);
  CHECK(s.sample("chitty_risk_score_bucket{le=\"69\"}") == 0);
  CHECK(s.sample("chitty_risk_score_count") == 2);
  auto status = n.until("risk alert");
  REQUIRE(status);
  CHECK(status->find("service \"tests\" scored") != std::string::npos);

  const std::string log = s.agent->log();
  CHECK(log.find("\"level\":\"alert\"") != std::string::npos);
  CHECK(log.find("ALERT: request refused for risk") != std::string::npos);
  Json events = s.audit_events();
  int alerts = 0;
  for (const Json& e : at(events, "events").items) {
    if (at(e, "kind").text == "alert" && at(e, "action").text == "risk") {
      ++alerts;
      CHECK(at(e, "service").text == "tests");
    }
  }
  CHECK(alerts == 2);
}

TEST_CASE("enumeration is denied within ten requests and a second", "[integration][risk][enumeration]") {
  Setup s(kQuiet);
  // Its usual reference, learnt.
  REQUIRE(Setup::status_of(s.secret(kChittyId)) == 200);
  chitty::testing::UdsClient c(s.agent->socket());
  const auto started = std::chrono::steady_clock::now();
  int denied_at = 0;
  for (int i = 1; i <= 10 && denied_at == 0; ++i) {
    const std::string ref = "op://ChittyOS Services/Probe " + std::to_string(i) + "/service_token";
    REQUIRE(c.send("GET /v1/secret?ref=" + encode(ref) + " HTTP/1.1\r\nHost: x\r\n\r\n"));
    auto r = c.read_response(10s);
    REQUIRE(r);
    if (r->status == 403 && r->body.find("risk_denied") != std::string::npos) {
      CHECK(r->body.find("\"factor\":\"enumeration\"") != std::string::npos);
      denied_at = i;
    }
  }
  const auto elapsed = std::chrono::steady_clock::now() - started;
  CHECK(denied_at > 0);
  CHECK(denied_at <= 10);
  CHECK(elapsed < 1s);
  // Its own reference too, while the window holds the probes.
  CHECK(Setup::status_of(s.secret(kChittyId)) == 403);
}

TEST_CASE("baselines survive a restart; a tampered baselines file is refused", "[integration][risk][baselines]") {
  Setup s(kQuiet);
  auto first = s.retrieve("{\"ref\":\"" + kChittyId + "\"}");
  REQUIRE(Setup::status_of(first) == 200);
  CHECK(factor(at(parse(Setup::body_of(first)), "metadata"), "first_access") == 10);
  auto second = s.retrieve("{\"ref\":\"" + kChittyId + "\"}");
  CHECK(at(at(parse(Setup::body_of(second)), "metadata"), "risk_score").text == "0");

  // Insights show the baseline and the scores.
  auto insights = chitty::testing::curl(s.agent->socket(), "/api/onepassword/insights/tests");
  REQUIRE(Setup::status_of(insights) == 200);
  const Json in = parse(Setup::body_of(insights));
  const Json& risk = at(in, "risk");
  CHECK_FALSE(at(at(risk, "baseline"), "learning").boolean);
  CHECK(at(at(risk, "baseline"), "usual_refs").items.size() == 1);
  CHECK(at(at(at(risk, "baseline"), "usual_refs").items[0], "ref").text ==
        "op://chittyos services/chittyid service token/service_token");
  CHECK(at(at(at(risk, "scores"), "by_decision"), "allow").text == "2");

  REQUIRE(s.agent->stop(SIGTERM) == 0);
  std::string text;
  {
    std::ifstream in_file(s.dir / "state/risk.baselines");
    text.assign(std::istreambuf_iterator<char>(in_file), {});
  }
  REQUIRE(text.rfind("chitty-risk 1\n", 0) == 0);
  CHECK(text.find("fake-chittyid-service-token-0001") == std::string::npos);  // references and counts, no value

  SECTION("restarted: the reference is not a first access") {
    s.start();
    auto again = s.retrieve("{\"ref\":\"" + kChittyId + "\"}");
    REQUIRE(Setup::status_of(again) == 200);
    CHECK(at(at(parse(Setup::body_of(again)), "metadata"), "risk_score").text == "0");
  }
  SECTION("tampered: refused, set aside, and the service's references are new again") {
    auto pos = text.find("chittyid");
    REQUIRE(pos != std::string::npos);
    text[pos + 7] = 'x';  // one byte: another reference, the MAC no longer verifies
    s.dir.write("state/risk.baselines", text, 0600);
    s.start();
    CHECK(s.agent->log().find("risk baselines refused") != std::string::npos);
    CHECK(access((s.dir / "state/risk.baselines.refused").c_str(), F_OK) == 0);
    auto again = s.retrieve("{\"ref\":\"" + kChittyId + "\"}");
    REQUIRE(Setup::status_of(again) == 200);
    CHECK(factor(at(parse(Setup::body_of(again)), "metadata"), "first_access") == 10);
  }
}

TEST_CASE("[risk] enabled = false: nothing is scored, answers carry no risk fields", "[integration][risk]") {
  TempDir dir;
  AgentSpec spec;
  spec.rest = "[risk]\nenabled = false\n[[service]]\nname = \"tests\"\nuid = " + std::to_string(geteuid()) +
              "\nallow = [\"op://**\"]\n";
  AgentProcess agent(dir, spec);
  REQUIRE(agent.wait_ready());
  auto r = chitty::testing::curl(agent.socket(), "/api/onepassword/retrieve",
                                 {"-X", "POST", "--data-binary", "{\"credential_type\":\"nope\"}"});
  const std::string body = Setup::body_of(r);
  CHECK(body.find("\"not_found\"") != std::string::npos);
  CHECK(body.find("risk_score") == std::string::npos);
}
