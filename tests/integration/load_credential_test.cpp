// systemd's LoadCredential= protocol spoken exactly, without systemd: a
// client bound to the abstract address "\0<hex>/unit/<unit>/<ID>" that
// connects, shuts its write side down and reads to EOF — as uid 0 (what
// systemd's helper is) and as another uid — and reads the way systemd does
// (at most CREDENTIAL_SIZE_MAX + 1 bytes; more fails the unit's start with
// E2BIG). Served: the value, exactly, then EOF. Refused: more than systemd
// takes, so the unit cannot start with an empty credential. Every decision
// audited as action "load_credential"; policy, rate limit, revocation and
// risk apply. (tests/system/systemd_boot_test.sh does the same with real
// systemd and real consumer units.)
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <map>
#include <random>
#include <thread>

#include "json_checks.hpp"
#include "json_reader.hpp"
#include "process.hpp"
#include "temp_dir.hpp"
#include "uds_client.hpp"

using namespace std::chrono_literals;
using chitty::testing::AgentProcess;
using chitty::testing::AgentSpec;
using chitty::testing::at;
using chitty::testing::Json;
using chitty::testing::parse;
using chitty::testing::TempDir;

namespace {

constexpr std::size_t kSystemdMax = 1024 * 1024;  // systemd's CREDENTIAL_SIZE_MAX
const std::string kDbPassword = "s3cr3t-db-pa55\nsecond line, no newline after";
const std::string kApiToken = "tok_9f2c41d7e6b08a35";
const std::string kEmergency = "emergency-5c1e8b7a2f9d4036";

enum class Peer {
  helper,     // as systemd: connect, shut the write side down, read to EOF
  talks,      // sends a request first
  stays_open,  // never shuts its write side down
  orphaned     // a child connects (and half-closes) for it, and exits before the agent looks
};

struct Loaded {
  enum Outcome { credential = 0, too_large = 1, read_error = 2, setup_failed = 3 } outcome = setup_failed;
  std::string bytes;  // what was read (at most kSystemdMax + 1)
  bool all_zero() const { return bytes.find_first_not_of('\0') == std::string::npos; }
};

// The cgroup systemd would run `unit` in, made in the hierarchy the agent
// reads units from (name=systemd on v1 and hybrid hosts, else the unified
// one), so that a test process can be where systemd's helper is: in the
// unit's cgroup. Its cgroup.procs file; "" where it cannot be made (not
// root, no writable cgroup file system).
std::string unit_cgroup(const std::string& unit) {
  std::string root;
  if (::access("/sys/fs/cgroup/systemd/cgroup.procs", W_OK) == 0) {
    root = "/sys/fs/cgroup/systemd";
  } else if (::access("/sys/fs/cgroup/cgroup.controllers", F_OK) == 0) {
    root = "/sys/fs/cgroup";
  } else {
    return "";
  }
  const std::string slice = root + "/system.slice", dir = slice + "/" + unit;
  ::mkdir(slice.c_str(), 0755);
  if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) return "";
  return dir + "/cgroup.procs";
}

// Asks `socket` for `unit`'s credential `id` as a process of `uid` (forked;
// 0 stays root), reading as systemd's read_full_file() does. As root and
// where it can, the process first moves into the unit's cgroup, as
// systemd's helper is (`in_unit`).
Loaded load_credential(const TempDir& dir, const std::string& socket, const std::string& unit, const std::string& id,
                       uid_t uid = 0, Peer how = Peer::helper, const std::string& raw_name = "",
                       bool in_unit = true) {
  const std::string procs = in_unit && geteuid() == 0 && !unit.empty() ? unit_cgroup(unit) : "";
  const std::string out_path = dir / ("loaded-" + std::to_string(std::random_device{}()));
  int out = ::open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  REQUIRE(out >= 0);
  char hex[17];
  std::snprintf(hex, sizeof hex, "%llx", static_cast<unsigned long long>(std::random_device{}()) << 16 | getpid());
  const std::string name = raw_name.empty() ? std::string(hex) + "/unit/" + unit + "/" + id : raw_name;
  pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    if (!procs.empty()) {
      int cg = ::open(procs.c_str(), O_WRONLY | O_CLOEXEC);
      const std::string self_pid = std::to_string(getpid());
      if (cg < 0 || ::write(cg, self_pid.data(), self_pid.size()) < 0) _exit(Loaded::setup_failed);
      ::close(cg);
    }
    if (uid != 0 && (setgroups(0, nullptr) != 0 || setresgid(uid, uid, uid) != 0 || setresuid(uid, uid, uid) != 0)) {
      _exit(Loaded::setup_failed);
    }
    int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un self{};
    self.sun_family = AF_UNIX;
    std::memcpy(self.sun_path + 1, name.data(), name.size());
    auto self_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    sockaddr_un agent{};
    agent.sun_family = AF_UNIX;
    std::memcpy(agent.sun_path, socket.c_str(), socket.size() + 1);
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&self), self_len) != 0) _exit(Loaded::setup_failed);
    if (how == Peer::orphaned) {
      // SO_PEERCRED names the process that called connect(): gone by the
      // time the agent looks, it can be nobody's helper.
      pid_t grandchild = fork();
      if (grandchild == 0) {
        if (::connect(fd, reinterpret_cast<sockaddr*>(&agent), sizeof agent) != 0) _exit(1);
        ::shutdown(fd, SHUT_WR);
        _exit(0);
      }
      int st = 0;
      if (grandchild < 0 || waitpid(grandchild, &st, 0) != grandchild || st != 0) _exit(Loaded::setup_failed);
    } else if (::connect(fd, reinterpret_cast<sockaddr*>(&agent), sizeof agent) != 0) {
      _exit(Loaded::setup_failed);
    }
    if (how == Peer::talks) {
      const char req[] = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
      if (::write(fd, req, sizeof req - 1) < 0) _exit(Loaded::setup_failed);
    }
    if (how != Peer::stays_open && how != Peer::orphaned) ::shutdown(fd, SHUT_WR);
    static char buf[kSystemdMax + 1];
    std::size_t got = 0;
    int outcome = Loaded::credential;
    while (true) {
      ssize_t n = ::read(fd, buf + got, sizeof buf - got);
      if (n < 0) {
        outcome = Loaded::read_error;
        break;
      }
      if (n == 0) break;
      got += static_cast<std::size_t>(n);
      if (got > kSystemdMax) {
        outcome = Loaded::too_large;
        break;
      }
    }
    if (::write(out, buf, got) != static_cast<ssize_t>(got)) _exit(Loaded::setup_failed);
    _exit(outcome);
  }
  ::close(out);
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  if (!procs.empty()) {  // empty again (the slice too, unless something else lives there)
    const std::string unit_dir = procs.substr(0, procs.rfind('/'));
    ::rmdir(unit_dir.c_str());
    ::rmdir(unit_dir.substr(0, unit_dir.rfind('/')).c_str());
  }
  REQUIRE(WIFEXITED(status));
  Loaded r;
  r.outcome = static_cast<Loaded::Outcome>(WEXITSTATUS(status));
  r.bytes = chitty::testing::read_file(out_path);
  ::unlink(out_path.c_str());
  return r;
}

struct Setup {
  TempDir dir;
  std::unique_ptr<AgentProcess> agent;

  explicit Setup(const std::string& extra = "", const std::string& settings = "") {
    chmod(dir.path().c_str(), 0755);
    dir.write("emergency", kEmergency + "\n", 0600);
    AgentSpec spec;
    spec.settings = "socket_mode = \"0666\"\nsocket_world_accessible = true\n" + settings;
    spec.rest = "[emergency]\ntoken_file = \"" + (dir / "emergency") +
                "\"\n"
                "[[credential]]\ntype = \"db_password\"\nref = \"op://Prod/Database/password\"\n"
                "env = \"CHITTY_TEST_DB_PASSWORD\"\n"
                "[[credential]]\ntype = \"api_token\"\nref = \"op://Prod/API/token\"\nenv = \"CHITTY_TEST_API_TOKEN\"\n"
                "[[service]]\nname = \"app\"\nunit = \"app.service\"\n"
                "allow = [\"type:db_password\", \"type:api_token\"]\nrate_limit = \"1000/h\"\n"
                "[[service]]\nname = \"limited\"\nunit = \"limited.service\"\nallow = [\"type:api_token\"]\n"
                "rate_limit = \"3/h\"\n"
                "[[service]]\nname = \"picky\"\nunit = \"picky.service\"\nallow = [\"type:api_token\"]\n"
                "purposes = [\"billing\"]\n"
                // The tests' own uid: an admin reading the audit trail. It is
                // uid 0 when run as root, and still never matches a unit.
                "[[service]]\nname = \"tests\"\nuid = " + std::to_string(geteuid()) +
                "\nallow = [\"type:db_password\"]\nadmin = true\nrate_limit = \"100000/h\"\n" + extra;
    spec.env = {"CHITTY_TEST_DB_PASSWORD=" + kDbPassword, "CHITTY_TEST_API_TOKEN=" + kApiToken};
    agent = std::make_unique<AgentProcess>(dir, spec);
    REQUIRE(agent->wait_ready());
  }

  Loaded load(const std::string& unit, const std::string& id, uid_t uid = 0, Peer how = Peer::helper) {
    return load_credential(dir, agent->socket(), unit, id, uid, how);
  }
  Loaded load_named(const std::string& raw_name) {
    return load_credential(dir, agent->socket(), "", "", 0, Peer::helper, raw_name);
  }
  // As a root process outside the unit's cgroup.
  Loaded load_from_outside(const std::string& unit, const std::string& id, Peer how = Peer::helper) {
    return load_credential(dir, agent->socket(), unit, id, 0, how, "", false);
  }

  std::string metrics() { return chitty::testing::curl(agent->socket(), "/metrics").out; }
  // chitty_denials_total{reason="CODE"} (0 when absent).
  double denials(const std::string& code) {
    const std::string series = "chitty_denials_total{reason=\"" + code + "\"} ";
    const std::string text = metrics();
    auto at = text.find(series);
    return at == std::string::npos ? 0 : std::stod(text.substr(at + series.size()));
  }

  // The audit events of action load_credential, oldest first.
  std::vector<Json> events() {
    auto r = chitty::testing::curl(agent->socket(), "/api/credentials/audit?limit=1000");
    REQUIRE(r.exit_code == 0);
    auto end = r.out.find("\r\n\r\n");
    Json all = parse(end == std::string::npos ? r.out : r.out.substr(end + 4));
    std::vector<Json> out;
    for (const Json& e : at(all, "events").items) {
      if (const Json* a = e.find("action"); a != nullptr && a->text == "load_credential") out.push_back(e);
    }
    return out;
  }
};

bool is_root() { return geteuid() == 0; }

// Whether this test can be systemd's helper: root, able to make a unit's cgroup.
bool can_be_helper() {
  if (!is_root()) {
    WARN("skipped: only root can be systemd's helper (uid 0)");
    return false;
  }
  const std::string probe = unit_cgroup("chitty-probe.service");
  if (probe.empty()) {
    WARN("skipped: no writable cgroup hierarchy to put a process in a unit's cgroup");
    return false;
  }
  const std::string unit_dir = probe.substr(0, probe.rfind('/'));
  ::rmdir(unit_dir.c_str());
  ::rmdir(unit_dir.substr(0, unit_dir.rfind('/')).c_str());
  return true;
}

// A field of an audit event ("uid", "pid", "exe", "unit" and "container" are
// in its "identity"; null reads "null", absent "").
std::string field(const Json& e, const std::string& key) {
  const Json* v = e.find(key);
  if (v == nullptr) {
    if (const Json* id = e.find("identity")) v = id->find(key);
  }
  if (v == nullptr) return "";
  return v->type == Json::Type::null ? "null" : v->text;
}

}  // namespace

TEST_CASE("systemd's helper (uid 0) gets exactly the value its credential ID names, audited",
          "[integration][load_credential]") {
  if (!can_be_helper()) return;
  Setup s;
  Loaded got = s.load("app.service", "db_password");
  CHECK(got.outcome == Loaded::credential);
  CHECK(got.bytes == kDbPassword);  // byte for byte, then a clean EOF
  got = s.load("app.service", "api_token");
  CHECK(got.outcome == Loaded::credential);
  CHECK(got.bytes == kApiToken);

  auto events = s.events();
  REQUIRE(events.size() == 2);
  const Json& e = events[0];
  CHECK(field(e, "decision") == "allow");
  CHECK(field(e, "service") == "app");
  CHECK(field(e, "unit") == "app.service");
  CHECK(field(e, "credential_type") == "db_password");
  CHECK(field(e, "source") == "env");
  CHECK(field(e, "uid") == "null");  // the helper's uid 0 is not the unit's
  CHECK(e.find("risk") != nullptr);  // scored like any request
  // Ordinary HTTP clients are not affected.
  auto health = chitty::testing::curl(s.agent->socket(), "/health");
  CHECK(health.out.find("\"status\":\"healthy\"") != std::string::npos);
  // No value in the log or the audit trail.
  CHECK(s.agent->log().find("s3cr3t-db-pa55") == std::string::npos);
  CHECK(s.agent->log().find(kApiToken) == std::string::npos);
}

TEST_CASE("refused LoadCredential= requests get more than systemd reads, never an empty credential",
          "[integration][load_credential]") {
  if (!can_be_helper()) return;
  Setup s;
  auto refused = [](const Loaded& l) {
    // systemd stops at CREDENTIAL_SIZE_MAX + 1 bytes and fails the start.
    return l.outcome == Loaded::too_large && l.bytes.size() == kSystemdMax + 1 && l.all_zero();
  };
  // Each refusal, with the code /metrics counts it under (the audit trail
  // writes the first refusal of a kind in full and counts the rest into an
  // aggregate event, docs/audit.md).
  auto refused_as = [&](const std::string& code, const std::string& unit, const std::string& id) {
    double before = s.denials(code);
    bool ok = refused(s.load(unit, id));
    return ok && s.denials(code) == before + 1;
  };
  // A unit no [[service]] names.
  CHECK(refused_as("forbidden", "stranger.service", "db_password"));
  // A credential ID the catalog does not have.
  CHECK(refused_as("not_found", "app.service", "no_such_credential"));
  // A credential its service may not read (this takes one of the service's
  // rate-limit tokens: the limit is taken first).
  CHECK(refused_as("forbidden", "limited.service", "db_password"));
  // A service that lists purposes and not "load_credential".
  CHECK(refused_as("forbidden", "picky.service", "api_token"));
  // The service's rate limit (3 an hour, one taken above): the third is refused.
  CHECK(s.load("limited.service", "api_token").bytes == kApiToken);
  CHECK(s.load("limited.service", "api_token").bytes == kApiToken);
  CHECK(refused_as("rate_limited", "limited.service", "api_token"));

  std::map<std::string, std::string> code_by_unit_and_id;
  for (const Json& e : s.events()) {
    if (field(e, "decision") == "allow") continue;
    code_by_unit_and_id[field(e, "unit") + "/" + field(e, "credential_type")] = field(e, "code");
  }
  CHECK(code_by_unit_and_id["stranger.service/db_password"] == "forbidden");
  CHECK(code_by_unit_and_id["app.service/no_such_credential"] == "not_found");
  CHECK(code_by_unit_and_id["limited.service/api_token"] == "rate_limited");
  // Counted under the LoadCredential route.
  CHECK(s.metrics().find("chitty_requests_total{route=\"LoadCredential\",decision=\"allow\",status=\"200\"} 2") !=
        std::string::npos);

  // Revoked: the next start of the unit gets nothing.
  auto revoke = chitty::testing::curl(
      s.agent->socket(), "/api/onepassword/emergency-revoke",
      {"-X", "POST", "-H", "X-Emergency-Token: " + kEmergency, "--data-binary",
       R"({"credential_type":"db_password","reason":"load_credential test"})"});
  REQUIRE(revoke.out.find("\"success\":true") != std::string::npos);
  CHECK(refused_as("revoked", "app.service", "db_password"));
  CHECK(s.load("app.service", "api_token").bytes == kApiToken);  // the other one still served
  bool revoked_seen = false;
  for (const Json& e : s.events()) revoked_seen = revoked_seen || field(e, "code") == "revoked";
  CHECK(revoked_seen);
}

TEST_CASE("a peer that is not systemd's helper gets nothing: another uid, a request, no half-close",
          "[integration][load_credential]") {
  Setup s;
  const uid_t other = is_root() ? 4501 : geteuid();
  if (other == 0) return;
  // Another uid bound to the very address systemd's helper would use (from
  // inside the unit's cgroup, when the test can put it there).
  Loaded got = s.load("app.service", "db_password", is_root() ? other : 0);
  CHECK(got.outcome == Loaded::too_large);
  CHECK(got.all_zero());
  CHECK(got.bytes.find("s3cr3t") == std::string::npos);
  bool audited = false;
  for (const Json& e : s.events()) {
    if (field(e, "uid") == std::to_string(other)) {
      audited = true;
      CHECK(field(e, "decision") == "deny");
      CHECK(field(e, "code") == "forbidden");
      CHECK(field(e, "reason").find("only systemd's credential helper (uid 0)") != std::string::npos);
      // (As root this process ran in app.service's cgroup — the unit's own
      // program, say, under User= — and is recorded as that service's: it
      // asks over HTTP, not by posing as systemd.)
    }
  }
  CHECK(audited);
  if (!can_be_helper()) return;

  // A root process of another unit (or of none) naming app.service.
  got = s.load_from_outside("app.service", "db_password");
  CHECK(got.outcome == Loaded::too_large);
  CHECK(got.all_zero());
  bool outsider_audited = false;
  for (const Json& e : s.events()) {
    outsider_audited = outsider_audited || (field(e, "uid") == "0" &&
                                            field(e, "reason").find("from a process of") != std::string::npos);
  }
  CHECK(outsider_audited);

  // uid 0, but speaking HTTP: not the protocol.
  got = s.load("app.service", "db_password", 0, Peer::talks);
  CHECK(got.outcome == Loaded::too_large);
  CHECK(got.all_zero());
  // uid 0, but never shutting its side down: refused after the wait.
  auto started = std::chrono::steady_clock::now();
  got = s.load("app.service", "db_password", 0, Peer::stays_open);
  CHECK(got.outcome == Loaded::too_large);
  CHECK(got.all_zero());
  CHECK(std::chrono::steady_clock::now() - started >= 1900ms);
  CHECK(std::chrono::steady_clock::now() - started < 10s);
  // (The helper's refusals are counted under uid 0: the first in full.)
  bool talked = false;
  for (const Json& e : s.events()) {
    talked = talked || field(e, "reason").find("sent a request") != std::string::npos;
  }
  CHECK(talked);
  // Root outside the unit connecting through a short-lived child and
  // reading in the parent: refused whether the agent finds the child still
  // running (another unit's) or already gone (nobody to identify; the unit
  // test covers that refusal on its own).
  got = s.load_from_outside("app.service", "db_password", Peer::orphaned);
  CHECK(got.outcome == Loaded::too_large);
  CHECK(got.all_zero());
  // The helper's shape with a unit or ID that does not parse (an ID with a
  // tab; a unit with '$'): refused as the helper, never answered as HTTP.
  CHECK(s.load_named("5eed/unit/app.service/db\tpassword").outcome == Loaded::too_large);
  CHECK(s.load_named("5eed/unit/app$.service/db_password").outcome == Loaded::too_large);
  CHECK(s.load_named("5eed/unit/").outcome == Loaded::too_large);
  // An ID with a space is valid for systemd: an unknown type here.
  got = s.load("app.service", "db password");
  CHECK(got.outcome == Loaded::too_large);
  CHECK(got.all_zero());
  // And the agent still serves systemd's helper afterwards.
  CHECK(s.load("app.service", "db_password").bytes == kDbPassword);
}

TEST_CASE("systemd's helper is answered past the connection caps that stop HTTP clients",
          "[integration][load_credential]") {
  if (!can_be_helper()) return;
  // uid 0 may hold two connections; both are held by requests in progress
  // (half a request line each: not idle, never reclaimed).
  Setup s("", "max_connections_per_uid = 2\n");
  chitty::testing::UdsClient a(s.agent->socket()), b(s.agent->socket());
  REQUIRE(a.send("GET /hea"));
  REQUIRE(b.send("GET /hea"));
  std::this_thread::sleep_for(200ms);
  chitty::testing::UdsClient c(s.agent->socket());
  REQUIRE(c.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto third = c.read_response(5s);
  REQUIRE(third);
  CHECK(third->status == 429);  // an HTTP client of uid 0 is refused ...
  // ... systemd's helper is not, and never gets that HTTP answer as its value.
  Loaded got = s.load("app.service", "db_password");
  CHECK(got.outcome == Loaded::credential);
  CHECK(got.bytes == kDbPassword);
}
