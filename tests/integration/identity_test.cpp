// What the running agent knows about its callers, read back through /health.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "connecting_child.hpp"
#include "json_reader.hpp"
#include "pid_squatter.hpp"
#include "process.hpp"
#include "uds_client.hpp"

using namespace std::chrono_literals;
using chitty::testing::AgentProcess;
using chitty::testing::AgentSpec;
using chitty::testing::Json;
using chitty::testing::TempDir;
using chitty::testing::UdsClient;

namespace {

bool is_root() { return geteuid() == 0; }

bool kernel_has_so_peerpidfd() {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return false;
  int pidfd = -1;
  socklen_t len = sizeof pidfd;
  bool ok = getsockopt(sv[0], SOL_SOCKET, 77, &pidfd, &len) == 0;
  if (ok) close(pidfd);
  close(sv[0]);
  close(sv[1]);
  return ok;
}

// The "caller" object of a /health body.
Json caller_of(const std::string& body) {
  INFO(body);
  auto doc = chitty::testing::read_json(body);
  REQUIRE(doc.has_value());
  const Json* caller = doc->find("caller");
  REQUIRE(caller != nullptr);
  return *caller;
}

Json caller_via(UdsClient& c) {
  REQUIRE(c.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
  auto r = c.read_response();
  REQUIRE(r);
  REQUIRE(r->status == 200);
  return caller_of(r->body);
}

// curl's body only (no -i).
Json caller_via_command(std::vector<std::string> argv) {
  auto r = chitty::testing::run(argv);
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  return caller_of(r.out);
}

std::string str(const Json& j, std::string_view key) {
  const Json* v = j.find(key);
  REQUIRE(v != nullptr);
  if (v->type == Json::Type::null) return "null";
  if (v->type == Json::Type::boolean) return v->boolean ? "true" : "false";
  return v->text;
}

std::string unknown_reason(const Json& caller, std::string_view key) {
  const Json* u = caller.find("unknown");
  REQUIRE(u != nullptr);
  const Json* r = u->find(key);
  return r == nullptr ? std::string() : r->text;
}

std::string self_exe() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  REQUIRE(n > 0);
  return std::string(buf, static_cast<std::size_t>(n));
}

AgentSpec open_socket(std::vector<std::string> env = {}) {
  AgentSpec s;
  s.settings = "socket_mode = \"0666\"\nsocket_world_accessible = true";
  s.env = std::move(env);
  return s;
}

// An agent any uid may connect to (its directory traversable).
struct OpenAgent {
  TempDir dir;
  std::unique_ptr<AgentProcess> agent;
  explicit OpenAgent(std::vector<std::string> env = {}) {
    chmod(dir.path().c_str(), 0755);
    agent = std::make_unique<AgentProcess>(dir, open_socket(std::move(env)));
    REQUIRE(agent->wait_ready());
  }
};

}  // namespace

TEST_CASE("the agent identifies this test process: uid, pid, exe", "[integration][identity]") {
  for (bool fallback : {false, true}) {
    INFO("forced pidfd_open fallback: " << fallback);
    OpenAgent a(fallback ? std::vector<std::string>{"CHITTY_TEST_NO_SO_PEERPIDFD=1"} : std::vector<std::string>{});
    UdsClient c(a.agent->socket());
    Json caller = caller_via(c);
    CHECK(str(caller, "uid") == std::to_string(geteuid()));
    CHECK(str(caller, "gid") == std::to_string(getegid()));
    CHECK(str(caller, "pid") == std::to_string(getpid()));
    CHECK(str(caller, "exe") == self_exe());
    CHECK(str(caller, "nested_pid_namespace") == "false");
    std::string expected = !fallback && kernel_has_so_peerpidfd() ? "SO_PEERPIDFD" : "pidfd_open";
    CHECK(str(caller, "pidfd") == expected);
    CHECK(caller.find("unknown")->members.empty());
  }
}

TEST_CASE("a client under another uid (setpriv) is identified as that uid", "[integration][identity]") {
  if (!is_root()) {
    WARN("skipped: needs root to run a client as another uid");
    return;
  }
  OpenAgent a;
  Json caller = caller_via_command({"setpriv", "--reuid=4242", "--regid=4343", "--clear-groups", "curl", "--silent",
                                    "--unix-socket", a.agent->socket(), "http://localhost/health"});
  CHECK(str(caller, "uid") == "4242");
  CHECK(str(caller, "gid") == "4343");
  CHECK(str(caller, "exe") == "/usr/bin/curl");
  CHECK(str(caller, "pid") != "null");
}

TEST_CASE("the overflow uid 65534 is reported as unknown, with the kernel's value kept", "[integration][identity]") {
  if (!is_root()) {
    WARN("skipped: needs root to run a client as uid 65534");
    return;
  }
  OpenAgent a;
  Json caller = caller_via_command({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "curl", "--silent",
                                    "--unix-socket", a.agent->socket(), "http://localhost/health"});
  CHECK(str(caller, "uid") == "null");
  CHECK(str(caller, "gid") == "null");
  CHECK(unknown_reason(caller, "uid").find("overflow uid") != std::string::npos);
  CHECK(str(*caller.find("kernel"), "uid") == "65534");
  CHECK(str(caller, "exe") == "/usr/bin/curl");  // the process itself is still visible
}

TEST_CASE("a client in a child PID namespace: host pid known, its own pid 1 reported", "[integration][identity]") {
  if (!is_root()) {
    WARN("skipped: needs root for unshare --pid");
    return;
  }
  OpenAgent a;
  auto probe = chitty::testing::run({"unshare", "--pid", "--fork", "--mount-proc", "true"});
  if (probe.exit_code != 0) {
    WARN("skipped: unshare --pid is not permitted here");
    return;
  }
  Json caller = caller_via_command({"unshare", "--pid", "--fork", "--mount-proc", "curl", "--silent", "--unix-socket",
                                    a.agent->socket(), "http://localhost/health"});
  CHECK(str(caller, "pid") != "null");
  CHECK(str(caller, "pid") != "1");
  CHECK(str(caller, "namespace_pid") == "1");
  CHECK(str(caller, "nested_pid_namespace") == "true");
  CHECK(str(caller, "exe") == "/usr/bin/curl");
}

TEST_CASE("an agent in its own PID namespace cannot see a host client's process", "[integration][identity]") {
  if (!is_root()) {
    WARN("skipped: needs root for unshare --pid");
    return;
  }
  auto probe = chitty::testing::run({"unshare", "--pid", "--fork", "--mount-proc", "true"});
  if (probe.exit_code != 0) {
    WARN("skipped: unshare --pid is not permitted here");
    return;
  }
  TempDir dir;
  AgentSpec spec;
  spec.wrapper = {"unshare", "--pid", "--fork", "--mount-proc", "--kill-child=SIGTERM"};
  AgentProcess agent(dir, spec);
  REQUIRE(agent.wait_ready());
  UdsClient c(agent.socket());
  Json caller = caller_via(c);
  CHECK(str(caller, "pid") == "null");
  CHECK(unknown_reason(caller, "pid").find("PID namespace") != std::string::npos);
  CHECK(str(caller, "exe") == "null");
  CHECK(str(caller, "unit") == "null");
  CHECK(str(caller, "pidfd") == "none");
  CHECK(str(caller, "uid") == std::to_string(geteuid()));  // uid and gid still come from the kernel
  CHECK(str(*caller.find("kernel"), "pid") == "0");
}

TEST_CASE("a client in a container's cgroup is reported with its container id; a look-alike below a unit is not",
          "[integration][identity]") {
  const std::string hierarchy = "/sys/fs/cgroup/systemd";
  if (!is_root() || !std::filesystem::exists(hierarchy + "/cgroup.procs")) {
    WARN("skipped: needs root and a writable name=systemd cgroup hierarchy");
    return;
  }
  std::mt19937_64 rng(std::random_device{}());
  char id[65];
  std::snprintf(id, sizeof id, "%016llx%016llx%016llx%016llx", static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng()), static_cast<unsigned long long>(rng()),
                static_cast<unsigned long long>(rng()));
  OpenAgent a;  // before the cgroups exist, so nothing is left behind if it fails to start
  std::string slice = hierarchy + "/chittytest.slice";
  std::string scope = slice + "/docker-" + std::string(id) + ".scope";
  // The same name below a unit: what any owner of a delegated subtree can make.
  std::string fake = slice + "/builder.service/docker-" + std::string(id) + ".scope";
  std::error_code ec;
  std::filesystem::create_directories(scope, ec);
  std::filesystem::create_directories(fake, ec);
  if (ec) {
    WARN("skipped: cannot create a cgroup: " << ec.message());
    return;
  }
  // The client moves itself into the cgroup, then runs curl.
  auto client_in = [&](const std::string& cgroup) {
    return chitty::testing::run({"sh", "-c", "echo $$ > " + cgroup + "/cgroup.procs && exec curl --silent --unix-socket " +
                                                 a.agent->socket() + " http://localhost/health"});
  };
  auto real = client_in(scope);
  auto faked = client_in(fake);
  std::filesystem::remove(fake, ec);
  std::filesystem::remove(slice + "/builder.service", ec);
  std::filesystem::remove(scope, ec);
  std::filesystem::remove(slice, ec);
  REQUIRE(real.exit_code == 0);
  Json caller = caller_of(real.out);
  CHECK(str(caller, "container") == id);
  CHECK(str(caller, "container_runtime") == "docker");
  CHECK(str(caller, "unit") == "docker-" + std::string(id) + ".scope");
  CHECK(str(caller, "cgroup") == "/chittytest.slice/docker-" + std::string(id) + ".scope");

  REQUIRE(faked.exit_code == 0);
  Json impostor = caller_of(faked.out);
  CHECK(str(impostor, "container") == "null");
  CHECK(unknown_reason(impostor, "container").find("builder.service") != std::string::npos);
  CHECK(str(impostor, "unit") == "builder.service");
}

TEST_CASE("a connection whose process exited is not attributed to the process that took its pid",
          "[integration][identity][reuse]") {
  if (!is_root()) {
    WARN("skipped: needs root to give a new process a chosen pid (clone3 set_tid)");
    return;
  }
  for (bool fallback : {false, true}) {
    INFO("forced pidfd_open fallback: " << fallback);
    OpenAgent a(fallback ? std::vector<std::string>{"CHITTY_TEST_NO_SO_PEERPIDFD=1"} : std::vector<std::string>{});
    // A child connects on a socket this process keeps; SO_PEERCRED names the child.
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    chitty::testing::ConnectingChild child(fd, a.agent->socket());
    REQUIRE(child.connected());
    UdsClient c = UdsClient::adopt(fd);
    Json before = caller_via(c);
    CHECK(str(before, "pid") == std::to_string(child.pid()));
    child.release();
    REQUIRE(child.reap());

    // A new process takes the pid.
    auto impostor = chitty::testing::PidSquatter::take(child.pid());
    REQUIRE(impostor.has_value());
    Json after = caller_via(c);
    CHECK(str(after, "pid") == "null");
    CHECK(str(after, "exe") == "null");
    CHECK(unknown_reason(after, "pid").find("exited") != std::string::npos);
    CHECK(str(*after.find("kernel"), "pid") == std::to_string(child.pid()));  // the kernel's record, for the log
  }
}

TEST_CASE("a program posing under a trusted path from a private mount namespace gets no exe",
          "[integration][identity][exe]") {
  if (!is_root()) {
    WARN("skipped: needs root for unshare --mount");
    return;
  }
  auto probe = chitty::testing::run({"unshare", "--mount", "true"});
  if (probe.exit_code != 0) {
    WARN("skipped: unshare --mount is not permitted here");
    return;
  }
  OpenAgent a;
  // Inside its own mount namespace the client puts curl at /usr/bin/true and
  // runs it from there: /proc/PID/exe says /usr/bin/true.
  Json caller = caller_via_command(
      {"unshare", "--mount", "sh", "-c",
       "mount --bind /usr/bin/curl /usr/bin/true && exec /usr/bin/true --silent --unix-socket " + a.agent->socket() +
           " http://localhost/health"});
  CHECK(str(caller, "exe") == "null");
  CHECK(unknown_reason(caller, "exe").find("not the file at that path here") != std::string::npos);
  CHECK(str(caller, "pid") != "null");  // the process itself is still identified
}

TEST_CASE("a process that executes another program after connecting loses its exe", "[integration][identity][exe]") {
  OpenAgent a;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  chitty::testing::ConnectingChild child(fd, a.agent->socket(), {"/bin/sleep", "30"});
  REQUIRE(child.connected());
  UdsClient c = UdsClient::adopt(fd);
  Json before = caller_via(c);
  CHECK(str(before, "exe") == self_exe());
  child.release();
  // Wait until the child runs sleep.
  std::string exe;
  for (int i = 0; i < 500 && exe.find("sleep") == std::string::npos; ++i) {
    char buf[256];
    ssize_t n = readlink(("/proc/" + std::to_string(child.pid()) + "/exe").c_str(), buf, sizeof buf - 1);
    exe = n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : "";
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  REQUIRE(exe.find("sleep") != std::string::npos);
  Json after = caller_via(c);
  CHECK(str(after, "exe") == "null");
  CHECK(unknown_reason(after, "exe").find("executed another program") != std::string::npos);
  CHECK(str(after, "pid") == std::to_string(child.pid()));  // still the same, living process
}
