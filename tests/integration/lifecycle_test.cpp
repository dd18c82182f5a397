// Start-up, the command line, and stopping.
#include <catch2/catch.hpp>

#include <csignal>
#include <sys/stat.h>

#include <thread>

#include "process.hpp"
#include "uds_client.hpp"

using namespace std::chrono_literals;
using chitty::testing::AgentProcess;
using chitty::testing::TempDir;
using chitty::testing::UdsClient;

namespace {

bool exists(const std::string& path) {
  struct stat st {};
  return lstat(path.c_str(), &st) == 0;
}

}  // namespace

TEST_CASE("--version", "[integration][cli]") {
  auto r = chitty::testing::run({chitty::testing::agent_binary(), "--version"});
  CHECK(r.exit_code == 0);
  CHECK(r.out == "chitty-agent 0.1.0\n");
}

TEST_CASE("--check-config accepts a valid file", "[integration][cli]") {
  TempDir dir;
  dir.write("ok.toml", "[agent]\nsocket = \"/run/x/agent.sock\"\nidle_timeout = \"5m\"\nmax_body_bytes = \"1MiB\"\n");
  auto r = chitty::testing::run({chitty::testing::agent_binary(), "--check-config", dir / "ok.toml"});
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("ok") != std::string::npos);
}

TEST_CASE("--check-config reports every problem with file:line and exits 2", "[integration][cli]") {
  TempDir dir;
  dir.write("bad.toml",
            "[agent]\n"
            "sokcet = \"/run/x.sock\"\n"     // line 2: unknown key
            "idle_timeout = \"5 minutes\"\n"  // line 3: bad duration
            "max_headers = 0\n"               // line 4: out of range
            "max_body_bytes = \"1 MB\"\n"     // line 5: bad size
            "\n[risks]\nweight = 5\n");    // line 7: unknown section
  auto r = chitty::testing::run({chitty::testing::agent_binary(), "--check-config", dir / "bad.toml"});
  CHECK(r.exit_code == 2);
  std::string f = dir / "bad.toml";
  CHECK(r.err.find(f + ":2:1: unknown key \"agent.sokcet\"; did you mean \"socket\"?") != std::string::npos);
  CHECK(r.err.find(f + ":3:") != std::string::npos);
  CHECK(r.err.find(f + ":4:") != std::string::npos);
  CHECK(r.err.find(f + ":5:") != std::string::npos);
  CHECK(r.err.find(f + ":7:") != std::string::npos);
  CHECK(r.err.find("5 problems found") != std::string::npos);
}

TEST_CASE("--check-config on a TOML syntax error points at the line", "[integration][cli]") {
  TempDir dir;
  dir.write("syntax.toml", "[agent]\nsocket = \"/run/x.sock\"\nthis is not toml\n");
  auto r = chitty::testing::run({chitty::testing::agent_binary(), "--check-config", dir / "syntax.toml"});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find(dir / "syntax.toml" + ":3:") != std::string::npos);
}

TEST_CASE("starting with an invalid config exits 2 without creating anything", "[integration][cli]") {
  TempDir dir;
  dir.write("bad.toml", "[agent]\nsocket = \"" + (dir / "a.sock") + "\"\nstate_dir = \"" + (dir / "state") +
                            "\"\nmax_connections = -1\n");
  auto r = chitty::testing::run({chitty::testing::agent_binary(), "--config", dir / "bad.toml"});
  CHECK(r.exit_code == 2);
  CHECK_FALSE(exists(dir / "a.sock"));
  CHECK_FALSE(exists(dir / "state"));
}

TEST_CASE("--print-default-config is a valid configuration", "[integration][cli]") {
  TempDir dir;
  auto printed = chitty::testing::run({chitty::testing::agent_binary(), "--print-default-config"});
  REQUIRE(printed.exit_code == 0);
  dir.write("defaults.toml", printed.out);
  auto checked = chitty::testing::run({chitty::testing::agent_binary(), "--check-config", dir / "defaults.toml"});
  CHECK(checked.exit_code == 0);
}

TEST_CASE("the built-in defaults run with only the paths overridden", "[integration][cli]") {
  TempDir dir;
  std::string sock = dir / "agent.sock";
  auto r = chitty::testing::run({"sh", "-c",
                                 chitty::testing::agent_binary() + " --socket " + sock + " --state-dir " +
                                     (dir / "state") + " 2>" + (dir / "log") + " & pid=$!; " +
                                     "for i in $(seq 200); do [ -S " + sock + " ] && break; sleep 0.02; done; " +
                                     "curl -s --unix-socket " + sock + " http://localhost/health; kill -TERM $pid; wait $pid"},
                                20s);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("\"status\":\"healthy\"") != std::string::npos);
  CHECK(chitty::testing::read_file(dir / "log").find("\"config\":\"<built-in defaults>\"") != std::string::npos);
}

TEST_CASE("SIGTERM and SIGINT: exit 0 and the socket file is removed", "[integration][lifecycle]") {
  for (int sig : {SIGTERM, SIGINT}) {
    INFO("signal " << sig);
    TempDir dir;
    AgentProcess agent(dir);
    REQUIRE(agent.wait_ready());
    REQUIRE(exists(agent.socket()));
    CHECK(agent.stop(sig) == 0);
    CHECK_FALSE(exists(agent.socket()));
    CHECK(agent.log().find("\"msg\":\"stopped\"") != std::string::npos);
  }
}

TEST_CASE("SIGTERM with many connections open still exits 0 (the loop closes cleanly)", "[integration][lifecycle]") {
  TempDir dir;
  AgentProcess agent(dir);
  REQUIRE(agent.wait_ready());
  std::vector<UdsClient> clients;
  for (int i = 0; i < 50; ++i) {
    clients.emplace_back(agent.socket());
    if (i % 2 == 0) clients.back().send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
  }
  for (int i = 0; i < 50; i += 2) REQUIRE(clients[static_cast<std::size_t>(i)].read_response());
  CHECK(agent.stop(SIGTERM) == 0);
  CHECK(agent.log().find("did not close cleanly") == std::string::npos);
}

TEST_CASE("a request in flight at SIGTERM is finished before the agent exits", "[integration][lifecycle]") {
  TempDir dir;
  AgentProcess agent(dir, "shutdown_timeout = \"10s\"");
  REQUIRE(agent.wait_ready());
  UdsClient c(agent.socket());
  REQUIRE(c.send("GET /health HTTP/1.1\r\nHost"));
  std::this_thread::sleep_for(100ms);
  kill(agent.pid(), SIGTERM);
  std::this_thread::sleep_for(200ms);
  CHECK(agent.running());            // waiting for our request
  CHECK_FALSE(exists(agent.socket()));  // but not taking new clients
  REQUIRE(c.send(": x\r\n\r\n"));
  auto r = c.read_response();
  REQUIRE(r);
  CHECK(r->status == 200);
  CHECK(r->header("connection") == std::optional<std::string>("close"));
  CHECK(agent.wait_exit(10s) == 0);
}

TEST_CASE("the shutdown deadline bounds a drain", "[integration][lifecycle]") {
  TempDir dir;
  AgentProcess agent(dir, "shutdown_timeout = \"300ms\"\nheader_timeout = \"60s\"");
  REQUIRE(agent.wait_ready());
  UdsClient c(agent.socket());
  REQUIRE(c.send("GET /health HTTP/1.1\r\nHost"));  // never finished
  std::this_thread::sleep_for(100ms);
  auto t0 = std::chrono::steady_clock::now();
  CHECK(agent.stop(SIGTERM, 10s) == 0);
  CHECK(std::chrono::steady_clock::now() - t0 < 5s);
  CHECK(agent.log().find("shutdown deadline passed") != std::string::npos);
}

TEST_CASE("the ready line reports the start-up time", "[integration][lifecycle]") {
  TempDir dir;
  AgentProcess agent(dir);
  REQUIRE(agent.wait_ready());
  CHECK(agent.log().find("\"startup_ms\":") != std::string::npos);
}
