// Connection slots stay fair against the real agent: uids holding idle
// keep-alive connections up to their caps cannot take every slot, idle
// connections make room for newcomers, and a caller matching a [[service]]
// is still served. Other uids connect from children that drop to them
// (SO_PEERCRED names the uid at connect()); the test keeps their sockets.
#include <catch2/catch.hpp>

#include <grp.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <stdexcept>

#include "process.hpp"
#include "uds_client.hpp"

using namespace std::chrono_literals;
using chitty::testing::AgentProcess;
using chitty::testing::AgentSpec;
using chitty::testing::TempDir;
using chitty::testing::UdsClient;

namespace {

const std::string kGet = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
const std::string kPartial = "GET /health HTTP/1.1\r\nHo";  // a request in progress
const std::string kRest = "st: x\r\n\r\n";
constexpr uid_t kService = 4711;

bool is_root() { return geteuid() == 0; }

// Room for `n` descriptors in this process, if the hard limit allows.
bool descriptors_for(rlim_t n) {
  rlimit l{};
  if (getrlimit(RLIMIT_NOFILE, &l) != 0) return false;
  if (l.rlim_cur >= n) return true;
  if (l.rlim_max < n) return false;
  l.rlim_cur = n;
  return setrlimit(RLIMIT_NOFILE, &l) == 0;
}

// `n` connections made by a child process running as `uid`; the test keeps
// and uses them. Fewer when a connect fails.
std::vector<UdsClient> connect_as(uid_t uid, const std::string& path, int n) {
  std::vector<int> fds;
  for (int i = 0; i < n; ++i) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) throw std::runtime_error("socket: " + std::string(std::strerror(errno)));
    fds.push_back(fd);
  }
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  int done[2];
  if (pipe(done) != 0) throw std::runtime_error("pipe");
  pid_t child = fork();
  if (child == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    int connected = 0;
    if (setgroups(0, nullptr) == 0 && setresgid(uid, uid, uid) == 0 && setresuid(uid, uid, uid) == 0) {
      for (int fd : fds) {
        if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) break;
        ++connected;
      }
    }
    (void)!write(done[1], &connected, sizeof connected);
    _exit(0);
  }
  close(done[1]);
  int connected = 0;
  if (read(done[0], &connected, sizeof connected) != sizeof connected) connected = 0;
  close(done[0]);
  waitpid(child, nullptr, 0);
  std::vector<UdsClient> out;
  for (int i = 0; i < n; ++i) {
    if (i < connected) {
      out.push_back(UdsClient::adopt(fds[static_cast<std::size_t>(i)]));
    } else {
      close(fds[static_cast<std::size_t>(i)]);
    }
  }
  return out;
}

// The status of the answer to a GET on `c`; 0 for none.
int status_of_get(UdsClient& c) {
  c.send(kGet);  // may fail: a refused connection is answered and closed at once
  auto r = c.read_response(5s);
  return r ? r->status : 0;
}

// curl as `uid`: the HTTP status of GET /health, or minus curl's exit code
// when it got no answer (56: the connection was closed or reset).
int curl_status_as(uid_t uid, const std::string& socket) {
  auto r = chitty::testing::run({"setpriv", "--reuid=" + std::to_string(uid), "--regid=" + std::to_string(uid),
                                 "--clear-groups", "curl", "--silent", "--max-time", "10", "--output", "/dev/null",
                                 "--write-out", "%{http_code}", "--unix-socket", socket, "http://localhost/health"});
  return r.exit_code == 0 ? std::stoi(r.out) : -r.exit_code;
}

std::string service_rule() {
  return "[[service]]\nname = \"registry\"\nuid = " + std::to_string(kService) + "\nallow = []\n";
}

std::unique_ptr<AgentProcess> open_agent(const TempDir& dir, const std::string& settings) {
  chmod(dir.path().c_str(), 0755);
  AgentSpec spec;
  spec.settings = "socket_mode = \"0666\"\nsocket_world_accessible = true\n" + settings;
  spec.rest = service_rule();
  return std::make_unique<AgentProcess>(dir, spec);
}

}  // namespace

TEST_CASE("uids holding idle keep-alive connections up to their caps do not lock out a [[service]]",
          "[integration][limits][fairness]") {
  if (!is_root()) {
    WARN("skipped: needs root to connect as other uids");
    return;
  }
  if (!descriptors_for(4096)) {
    WARN("skipped: needs 4096 descriptors");
    return;
  }
  TempDir dir;
  // The default caps; long timeouts so that nothing goes idle-closed meanwhile.
  auto agent = open_agent(dir, "idle_timeout = \"5m\"\n");
  REQUIRE(agent->wait_ready());

  // The attack: four uids each open 256 keep-alive connections, use
  // each once, and hold them idle; then enough further uids, each up to its
  // cap, to claim every slot there is.
  std::map<uid_t, int> served;
  std::vector<UdsClient> held;
  std::vector<uid_t> held_uid;
  for (uid_t uid = 5001; uid <= 5016; ++uid) {
    for (auto& c : connect_as(uid, agent->socket(), 256)) {
      if (status_of_get(c) == 200) {
        ++served[uid];
        held.push_back(std::move(c));
        held_uid.push_back(uid);
      }
    }
  }
  // A caller that matches a [[service]] is still served.
  CHECK(curl_status_as(kService, agent->socket()) == 200);
  // And no uid holds more than the per-uid cap (128 by default) at once: its
  // newer connections took the place of its own older idle ones.
  std::map<uid_t, int> open;
  for (std::size_t i = 0; i < held.size(); ++i) {
    if (!held[i].wait_closed(1ms)) ++open[held_uid[i]];
  }
  for (const auto& [uid, n] : open) {
    INFO("uid " << uid);
    CHECK(n <= 128);
  }
  auto health = chitty::testing::get(agent->socket(), "/health");
  REQUIRE(health);
  CHECK(health->status == 200);
}

TEST_CASE("the last slots are kept for [[service]] callers when other uids hold the rest busy",
          "[integration][limits][fairness]") {
  // Needs the app to tell the server which callers match a [[service]].
  if (!is_root()) {
    WARN("skipped: needs root to connect as other uids");
    return;
  }
  TempDir dir;
  auto agent = open_agent(dir, "max_connections = 40\nmax_connections_per_uid = 8\nreserved_service_connections = 8\n"
                               "header_timeout = \"60s\"\nidle_timeout = \"60s\"\n");
  REQUIRE(agent->wait_ready());
  // Four uids take the 32 slots open to everyone, each with a request in
  // progress: nothing is idle.
  std::vector<UdsClient> held;
  for (uid_t uid = 5101; uid <= 5104; ++uid) {
    for (auto& c : connect_as(uid, agent->socket(), 8)) {
      CHECK(status_of_get(c) == 200);
      REQUIRE(c.send(kPartial));
      held.push_back(std::move(c));
    }
  }
  REQUIRE(held.size() == 32);
  // A fifth uid would take a reserved slot: 503, nothing idle to take over.
  auto late = connect_as(5105, agent->socket(), 1);
  REQUIRE(late.size() == 1);
  late[0].send(kGet);
  auto refused = late[0].read_response(5s);
  REQUIRE(refused);
  CHECK(refused->status == 503);
  CHECK(refused->body.find("\"server_busy\"") != std::string::npos);
  CHECK(refused->body.find("kept for configured services") != std::string::npos);
  // The service is served from the reserve.
  CHECK(curl_status_as(kService, agent->socket()) == 200);
  // One of the held requests completes: that connection is idle now, and
  // the fifth uid gets its slot in place of it.
  REQUIRE(held[0].send(kRest));
  auto done = held[0].read_response(5s);
  REQUIRE(done);
  CHECK(done->status == 200);
  auto swapped = connect_as(5105, agent->socket(), 1);
  REQUIRE(swapped.size() == 1);
  CHECK(status_of_get(swapped[0]) == 200);
  CHECK(held[0].wait_closed(3s));
  // The requests in flight were never cut.
  for (std::size_t i = 1; i < held.size(); ++i) {
    REQUIRE(held[i].send(kRest));
    auto r = held[i].read_response(5s);
    INFO("held connection " << i);
    CHECK((r && r->status == 200));
  }
}

TEST_CASE("idle keep-alive connections of other uids make room for new callers", "[integration][limits][fairness]") {
  if (!is_root()) {
    WARN("skipped: needs root to connect as other uids");
    return;
  }
  TempDir dir;
  auto agent = open_agent(dir, "max_connections = 16\nmax_connections_per_uid = 4\nreserved_service_connections = 0\n"
                               "idle_timeout = \"60s\"\n");
  REQUIRE(agent->wait_ready());
  std::vector<UdsClient> first;
  for (uid_t uid = 5201; uid <= 5204; ++uid) {
    for (auto& c : connect_as(uid, agent->socket(), 4)) {
      CHECK(status_of_get(c) == 200);
      first.push_back(std::move(c));
    }
  }
  REQUIRE(first.size() == 16);
  // Every slot is held idle; a fifth uid's connections are served anyway,
  // each in place of the oldest idle one.
  auto late = connect_as(5205, agent->socket(), 4);
  REQUIRE(late.size() == 4);
  for (auto& c : late) CHECK(status_of_get(c) == 200);
  for (std::size_t i = 0; i < 4; ++i) {
    INFO("oldest connection " << i);
    CHECK(first[i].wait_closed(3s));
  }
  for (std::size_t i = 4; i < first.size(); ++i) CHECK(status_of_get(first[i]) == 200);
}
