// The agent's socket and state directory on disk.
#include <catch2/catch.hpp>

#include <grp.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "process.hpp"
#include "uds_client.hpp"

using namespace std::chrono_literals;
using chitty::testing::AgentProcess;
using chitty::testing::TempDir;

namespace {

struct stat stat_of(const std::string& path) {
  struct stat st {};
  REQUIRE(lstat(path.c_str(), &st) == 0);
  return st;
}

bool is_root() { return geteuid() == 0; }

}  // namespace

TEST_CASE("the socket is created with the configured mode", "[integration][socket]") {
  for (const char* mode : {"0600", "0660"}) {
    INFO(mode);
    TempDir dir;
    AgentProcess agent(dir, std::string("socket_mode = \"") + mode + "\"");
    REQUIRE(agent.wait_ready());
    struct stat st = stat_of(agent.socket());
    CHECK(S_ISSOCK(st.st_mode));
    CHECK((st.st_mode & 07777) == std::stoul(mode, nullptr, 8));
    CHECK(agent.stop(SIGTERM) == 0);
  }
}

TEST_CASE("the socket is given the configured group", "[integration][socket]") {
  if (!is_root()) {
    WARN("skipped: " "needs root to hand the socket to another group");
    return;
  }
  TempDir dir;
  AgentProcess agent(dir, "socket_mode = \"0660\"\nsocket_group = \"daemon\"");
  REQUIRE(agent.wait_ready());
  CHECK(stat_of(agent.socket()).st_gid == getgrnam("daemon")->gr_gid);
}

TEST_CASE("permissions are enforced by the kernel: another uid cannot connect to a 0660 socket",
          "[integration][socket]") {
  if (!is_root()) {
    WARN("skipped: " "needs root to run a client as another uid (setpriv)");
    return;
  }
  TempDir dir;
  chmod(dir.path().c_str(), 0755);
  AgentProcess agent(dir, "socket_mode = \"0660\"");
  REQUIRE(agent.wait_ready());
  auto denied = chitty::testing::run({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "curl",
                                      "--silent", "--unix-socket", agent.socket(), "http://localhost/health"});
  CHECK(denied.exit_code == 7);  // curl: couldn't connect (EACCES)
  CHECK(denied.out.empty());
}

TEST_CASE("a world-accessible socket needs the explicit opt-in", "[integration][socket]") {
  TempDir dir;
  dir.write("open.toml", "[agent]\nsocket_mode = \"0666\"\n");
  auto refused = chitty::testing::run({chitty::testing::agent_binary(), "--check-config", dir / "open.toml"});
  CHECK(refused.exit_code == 2);
  CHECK(refused.err.find("open.toml:2:") != std::string::npos);
  CHECK(refused.err.find("socket_world_accessible") != std::string::npos);

  if (!is_root()) return;
  chmod(dir.path().c_str(), 0755);
  AgentProcess agent(dir, "socket_mode = \"0666\"\nsocket_world_accessible = true");
  REQUIRE(agent.wait_ready());
  CHECK((stat_of(agent.socket()).st_mode & 0777) == 0666);
  auto other = chitty::testing::run({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "curl", "--silent",
                                     "--unix-socket", agent.socket(), "http://localhost/health"});
  CHECK(other.exit_code == 0);
  CHECK(other.out.find("\"healthy\"") != std::string::npos);
}

TEST_CASE("a live agent is not displaced by a second one", "[integration][socket]") {
  TempDir dir;
  AgentProcess first(dir);
  REQUIRE(first.wait_ready());
  ino_t ino = stat_of(first.socket()).st_ino;

  TempDir other;  // its own state directory, the same socket path
  other.write("second.toml", "[agent]\nsocket = \"" + first.socket() + "\"\nstate_dir = \"" + (other / "state") + "\"\n");
  auto second = chitty::testing::run({chitty::testing::agent_binary(), "--config", other / "second.toml"}, 10s);
  CHECK(second.exit_code == 1);
  CHECK(second.err.find("another chitty-agent is already serving on " + first.socket()) != std::string::npos);

  CHECK(stat_of(first.socket()).st_ino == ino);
  auto ok = chitty::testing::curl(first.socket(), "/health");
  CHECK(ok.out.rfind("HTTP/1.1 200 OK", 0) == 0);
  CHECK(first.running());
}

TEST_CASE("two agents never share a state directory", "[integration][socket]") {
  TempDir dir;
  AgentProcess first(dir);
  REQUIRE(first.wait_ready());
  dir.write("second.toml", "[agent]\nsocket = \"" + (dir / "second.sock") + "\"\nstate_dir = \"" + (dir / "state") + "\"\n");
  auto second = chitty::testing::run({chitty::testing::agent_binary(), "--config", dir / "second.toml"}, 10s);
  CHECK(second.exit_code == 1);
  CHECK(second.err.find("is in use by another chitty-agent (pid " + std::to_string(first.pid()) + ")") !=
        std::string::npos);
  struct stat st {};
  CHECK(lstat((dir / "second.sock").c_str(), &st) != 0);  // it gave up before creating its socket
}

TEST_CASE("a stale socket left by a killed agent is replaced", "[integration][socket]") {
  TempDir dir;
  ino_t old_ino;
  {
    AgentProcess crashed(dir);
    REQUIRE(crashed.wait_ready());
    old_ino = stat_of(crashed.socket()).st_ino;
    REQUIRE(crashed.stop(SIGKILL) == 128 + SIGKILL);
  }
  REQUIRE(stat_of(dir / "agent.sock").st_ino == old_ino);  // left behind
  AgentProcess next(dir);
  REQUIRE(next.wait_ready());
  CHECK(stat_of(next.socket()).st_ino != old_ino);
  CHECK(chitty::testing::curl(next.socket(), "/health").out.rfind("HTTP/1.1 200 OK", 0) == 0);
}

TEST_CASE("a path that is not a socket makes the agent refuse to start", "[integration][socket]") {
  TempDir dir;
  dir.write("agent.sock", "not a socket");
  AgentProcess agent(dir);
  CHECK(agent.wait_exit(10s) == 1);
  CHECK(agent.log().find("exists and is not a socket") != std::string::npos);
  CHECK(chitty::testing::read_file(dir / "agent.sock") == "not a socket");
}
