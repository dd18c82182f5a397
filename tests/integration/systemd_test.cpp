// The agent as systemd sees it: sd_notify on a NOTIFY_SOCKET this test
// listens on, the watchdog, SIGHUP reload, socket activation with
// systemd-socket-activate.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <thread>

#include "notify_socket.hpp"
#include "process.hpp"
#include "uds_client.hpp"

using namespace std::chrono_literals;
using chitty::testing::AgentProcess;
using chitty::testing::AgentSpec;
using chitty::testing::NotifySocket;
using chitty::testing::TempDir;
using chitty::testing::UdsClient;

namespace {

bool exists(const std::string& path) {
  struct stat st {};
  return lstat(path.c_str(), &st) == 0;
}

AgentSpec notified(const NotifySocket& n, std::string settings = "") {
  AgentSpec s;
  s.settings = std::move(settings);
  s.env = {n.env()};
  return s;
}

// Rewrites the agent's config file ([agent] lines after socket/state_dir).
void rewrite_config(const TempDir& dir, const AgentProcess& agent, const std::string& settings,
                    const std::string& socket = "") {
  dir.write("agent.toml", "[agent]\nsocket = \"" + (socket.empty() ? agent.socket() : socket) + "\"\nstate_dir = \"" +
                              (dir / "state") + "\"\nlog_level = \"debug\"\n" + settings + "\n");
}

}  // namespace

TEST_CASE("READY=1 comes once the socket accepts; STATUS on each change; STOPPING=1 at the end",
          "[integration][systemd][notify]") {
  NotifySocket n;
  TempDir dir;
  AgentProcess agent(dir, notified(n));
  auto starting = n.next();
  REQUIRE(starting);
  CHECK(*starting == "STATUS=starting");
  auto ready = n.until("READY=1");
  REQUIRE(ready);
  CHECK(*ready == "READY=1\nSTATUS=serving on " + agent.socket());
  CHECK(chitty::testing::can_connect(agent.socket()));  // READY means it accepts

  kill(agent.pid(), SIGTERM);
  auto stopping = n.until("STOPPING=1");
  REQUIRE(stopping);
  CHECK(stopping->find("STATUS=stopping: draining ") != std::string::npos);
  CHECK(agent.wait_exit(10s) == 0);
}

TEST_CASE("STOPPING=1 with the reason when the agent cannot start", "[integration][systemd][notify]") {
  NotifySocket n;
  TempDir dir;
  dir.write("agent.sock", "not a socket");
  AgentProcess agent(dir, notified(n));
  std::string skipped;
  auto stopping = n.until("STOPPING=1", 5s, &skipped);
  REQUIRE(stopping);
  CHECK(stopping->find("STATUS=failed to start: " + agent.socket() + " exists and is not a socket") !=
        std::string::npos);
  CHECK(skipped.find("READY=1") == std::string::npos);
  CHECK(agent.wait_exit(10s) == 1);
}

TEST_CASE("STOPPING=1 also when the configuration is invalid", "[integration][systemd][notify]") {
  NotifySocket n;
  TempDir dir;
  AgentProcess agent(dir, notified(n, "max_headers = 0"));
  auto stopping = n.until("STOPPING=1");
  REQUIRE(stopping);
  CHECK(stopping->find("STATUS=failed to start: invalid configuration (1 problem; first: " + agent.config_path() +
                       ":5:") != std::string::npos);
  CHECK(agent.wait_exit(10s) == 2);
}

TEST_CASE("WATCHDOG=1 pings at half the requested interval", "[integration][systemd][watchdog]") {
  NotifySocket n;
  TempDir dir;
  AgentSpec spec = notified(n);
  spec.env.push_back("WATCHDOG_USEC=200000");  // 200 ms: a ping every 100 ms
  AgentProcess agent(dir, spec);
  REQUIRE(n.until("READY=1"));
  int pings = 0;
  auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < 1s) {
    auto m = n.next(200ms);
    if (m && *m == "WATCHDOG=1") ++pings;
  }
  // 10 expected in one second; the bounds allow for scheduling, not for a
  // wrong interval (20 at the full-rate mistake, 5 at the double one).
  CHECK(pings >= 8);
  CHECK(pings <= 12);
  CHECK(agent.log().find("watchdog enabled") != std::string::npos);
}

TEST_CASE("no watchdog pings when WATCHDOG_PID names another process", "[integration][systemd][watchdog]") {
  NotifySocket n;
  TempDir dir;
  AgentSpec spec = notified(n);
  spec.env.push_back("WATCHDOG_USEC=200000");
  spec.env.push_back("WATCHDOG_PID=1");
  AgentProcess agent(dir, spec);
  REQUIRE(n.until("READY=1"));
  CHECK_FALSE(n.until("WATCHDOG=1", 500ms).has_value());
}

TEST_CASE("SIGHUP with a valid configuration: RELOADING=1, MONOTONIC_USEC, the new settings, READY=1",
          "[integration][systemd][reload]") {
  NotifySocket n;
  TempDir dir;
  AgentProcess agent(dir, notified(n));
  REQUIRE(n.until("READY=1"));
  // Before: a 2000-byte target is fine.
  auto before = chitty::testing::get(agent.socket(), "/health?" + std::string(2000, 'q'));
  REQUIRE(before);
  CHECK(before->status == 200);

  rewrite_config(dir, agent, "max_uri_bytes = \"1KiB\"");
  kill(agent.pid(), SIGHUP);
  auto reloading = n.until("RELOADING=1");
  REQUIRE(reloading);
  CHECK(reloading->find("MONOTONIC_USEC=") != std::string::npos);
  auto ready = n.until("READY=1");
  REQUIRE(ready);
  CHECK(ready->find("configuration reloaded") != std::string::npos);

  auto after = chitty::testing::get(agent.socket(), "/health?" + std::string(2000, 'q'));
  REQUIRE(after);
  CHECK(after->status == 414);
  CHECK(agent.log().find("\"msg\":\"configuration reloaded\"") != std::string::npos);
}

TEST_CASE("SIGHUP with a broken configuration keeps the running one and says why", "[integration][systemd][reload]") {
  NotifySocket n;
  TempDir dir;
  AgentProcess agent(dir, notified(n, "max_uri_bytes = \"1KiB\""));
  REQUIRE(n.until("READY=1"));
  // One valid change among invalid ones: nothing of it may be applied.
  rewrite_config(dir, agent, "max_uri_bytes = \"lots\"\nidle_timeout = 5\nmax_body_bytes = \"2KiB\"");
  kill(agent.pid(), SIGHUP);
  REQUIRE(n.until("RELOADING=1"));
  auto ready = n.until("READY=1");
  REQUIRE(ready);
  CHECK(ready->find("reload failed (2 problems), running the previous configuration") != std::string::npos);
  std::string log = agent.log();
  CHECK(log.find(agent.config_path() + ":5:") != std::string::npos);  // file:line of each problem
  CHECK(log.find(agent.config_path() + ":6:") != std::string::npos);
  // The valid max_body_bytes = 2KiB was not applied: a 4 KiB body is still fine (405, not 413).
  auto big = chitty::testing::curl(agent.socket(), "/health", {"--data-binary", std::string(4096, 'b')});
  CHECK(big.out.rfind("HTTP/1.1 405", 0) == 0);
  // Still the old limit: 2000 bytes is too long, 500 is fine.
  CHECK(chitty::testing::get(agent.socket(), "/health?" + std::string(2000, 'q'))->status == 414);
  CHECK(chitty::testing::get(agent.socket(), "/health?" + std::string(500, 'q'))->status == 200);
  CHECK(agent.running());
}

TEST_CASE("SIGHUP: socket and state directory changes need a restart and are reported", "[integration][systemd][reload]") {
  NotifySocket n;
  TempDir dir;
  AgentProcess agent(dir, notified(n));
  REQUIRE(n.until("READY=1"));
  rewrite_config(dir, agent, "idle_timeout = \"5s\"", dir / "elsewhere.sock");
  kill(agent.pid(), SIGHUP);
  auto ready = n.until("READY=1");
  REQUIRE(ready);
  CHECK(ready->find("restart needed for agent.socket") != std::string::npos);
  CHECK(agent.log().find("needs a restart") != std::string::npos);
  CHECK_FALSE(exists(dir / "elsewhere.sock"));
  CHECK(chitty::testing::get(agent.socket(), "/health")->status == 200);
}

TEST_CASE("SIGHUP: [audit] changes are named as needing a restart; a new emergency token file applies at once",
          "[integration][systemd][reload]") {
  NotifySocket n;
  TempDir dir;
  dir.write("old-token", "old-emergency-token-0123456789\n", 0600);
  dir.write("new-token", "new-emergency-token-0123456789\n", 0600);
  AgentSpec spec = notified(n);
  spec.rest = "[emergency]\ntoken_file = \"" + (dir / "old-token") + "\"\n";
  AgentProcess agent(dir, spec);
  REQUIRE(n.until("READY=1"));
  rewrite_config(dir, agent,
                 "idle_timeout = \"5s\"\n[audit]\nfsync_events = 4\n[emergency]\ntoken_file = \"" + (dir / "new-token") +
                     "\"\n");
  kill(agent.pid(), SIGHUP);
  auto ready = n.until("READY=1");
  REQUIRE(ready);
  CHECK(ready->find("restart needed for audit.fsync_events") != std::string::npos);
  std::string log = agent.log();
  CHECK(log.find("\"key\":\"audit.fsync_events\",\"running\":\"256\",\"file\":\"4\"") != std::string::npos);
  CHECK(log.find("\"applied\":\"agent.idle_timeout emergency.token_file\"") != std::string::npos);
  // The new token is the one checked now; the old one is wrong.
  auto revoke = [&](const std::string& token) {
    return chitty::testing::curl(agent.socket(), "/api/onepassword/emergency-revoke/clear",
                                 {"-H", "X-Emergency-Token: " + token, "--data", R"({"all":true})"});
  };
  CHECK(revoke("new-emergency-token-0123456789").out.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(revoke("old-emergency-token-0123456789").out.rfind("HTTP/1.1 401", 0) == 0);
}

TEST_CASE("SIGHUP on the built-in defaults has nothing to re-read but still answers READY=1",
          "[integration][systemd][reload]") {
  NotifySocket n;
  TempDir dir;
  AgentSpec spec = notified(n);
  spec.use_config = false;  // the built-in defaults, with the paths overridden
  spec.extra_args = {"--socket", dir / "agent.sock", "--state-dir", dir / "state"};
  AgentProcess agent(dir, spec);
  REQUIRE(n.until("READY=1"));  // signals are handled from here on
  kill(agent.pid(), SIGHUP);
  REQUIRE(n.until("RELOADING=1"));
  auto ready = n.until("READY=1");
  REQUIRE(ready);
  CHECK(agent.log().find("no configuration file to re-read") != std::string::npos);
  CHECK(agent.stop(SIGTERM) == 0);
}

TEST_CASE("socket activation: the agent serves on the passed socket and never unlinks it",
          "[integration][systemd][activation]") {
  NotifySocket n;
  TempDir dir;
  std::string sock = dir / "activated.sock";
  AgentSpec spec = notified(n);
  // systemd-socket-activate passes only the variables it is told to.
  spec.wrapper = {"systemd-socket-activate", "--listen=" + sock, "--setenv=" + n.env()};
  AgentProcess agent(dir, spec);
  for (int i = 0; i < 250 && !exists(sock); ++i) std::this_thread::sleep_for(20ms);
  REQUIRE(exists(sock));
  // The first connection starts the agent (systemd-socket-activate execs it in place).
  auto health = chitty::testing::get(sock, "/health", 10s);
  REQUIRE(health);
  CHECK(health->status == 200);
  auto ready = n.until("READY=1");
  REQUIRE(ready);
  CHECK(ready->find("serving on " + sock + " (socket-activated)") != std::string::npos);
  CHECK(agent.log().find("\"socket_activated\":true") != std::string::npos);
  CHECK_FALSE(exists(agent.socket()));  // agent.socket from the config was not created
  CHECK(agent.stop(SIGTERM) == 0);
  CHECK(exists(sock));  // systemd's socket stays
}

TEST_CASE("socket activation with more than one socket is refused", "[integration][systemd][activation]") {
  TempDir dir;
  AgentSpec spec;
  spec.wrapper = {"systemd-socket-activate", "--listen=" + (dir / "a.sock"), "--listen=" + (dir / "b.sock")};
  AgentProcess agent(dir, spec);
  for (int i = 0; i < 250 && !exists(dir / "a.sock"); ++i) std::this_thread::sleep_for(20ms);
  chitty::testing::can_connect(dir / "a.sock");  // triggers the exec
  CHECK(agent.wait_exit(10s) == 1);
  CHECK(agent.log().find("passed 2 sockets") != std::string::npos);
}
