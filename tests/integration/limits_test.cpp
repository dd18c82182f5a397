// Many, slow, greedy and non-reading clients against the real agent.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <thread>

#include "process.hpp"
#include "uds_client.hpp"

using namespace std::chrono_literals;
using chitty::testing::AgentProcess;
using chitty::testing::TempDir;
using chitty::testing::UdsClient;

namespace {

const std::string kGet = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";

bool is_root() { return geteuid() == 0; }

}  // namespace

TEST_CASE("200 concurrent keep-alive connections are all served, twice each", "[integration][limits]") {
  TempDir dir;
  AgentProcess agent(dir, "max_connections_per_uid = 256");  // all of them from this test's uid
  REQUIRE(agent.wait_ready());
  std::vector<UdsClient> clients;
  clients.reserve(200);
  for (int i = 0; i < 200; ++i) clients.emplace_back(agent.socket());
  for (int round = 0; round < 2; ++round) {
    for (auto& c : clients) REQUIRE(c.send(kGet));
    int ok = 0;
    for (auto& c : clients) {
      auto r = c.read_response();
      if (r && r->status == 200) ++ok;
    }
    CHECK(ok == 200);
  }
  auto health = chitty::testing::get(agent.socket(), "/health");
  REQUIRE(health);
  CHECK(health->body.find("\"connections\":201") != std::string::npos);
}

TEST_CASE("200 idle or half-sent connections do not delay a /health request", "[integration][limits]") {
  TempDir dir;
  AgentProcess agent(dir, "header_timeout = \"60s\"\nidle_timeout = \"60s\"\nmax_connections_per_uid = 256");
  REQUIRE(agent.wait_ready());
  std::vector<UdsClient> hogs;
  for (int i = 0; i < 200; ++i) {
    hogs.emplace_back(agent.socket());
    if (i % 2 == 1) REQUIRE(hogs.back().send("GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: "));
  }
  auto t0 = std::chrono::steady_clock::now();
  auto res = chitty::testing::curl(agent.socket(), "/health");
  auto elapsed = std::chrono::steady_clock::now() - t0;
  CHECK(res.exit_code == 0);
  CHECK(res.out.rfind("HTTP/1.1 200 OK", 0) == 0);
  // Functional bound, far below every timeout in play (60 s): the request was
  // not queued behind the hogs.
  CHECK(elapsed < 2s);
  // And the hogs are still connected: the agent neither blocked on nor dropped them.
  for (auto& h : hogs) CHECK_FALSE(h.wait_closed(1ms));
}

TEST_CASE("a client that never reads its responses is dropped after the write timeout", "[integration][limits]") {
  TempDir dir;
  AgentProcess agent(dir, "write_timeout = \"1s\"\nmax_requests_per_connection = 1000000000\nidle_timeout = \"60s\"");
  REQUIRE(agent.wait_ready());
  UdsClient greedy(agent.socket());
  int fd = greedy.fd();
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  std::string burst;
  for (int i = 0; i < 100; ++i) burst += kGet;
  // Pipeline requests without ever reading until the agent stops taking them.
  auto t0 = std::chrono::steady_clock::now();
  std::size_t sent = 0;
  bool dropped = false;
  while (std::chrono::steady_clock::now() - t0 < 15s) {
    ssize_t n = ::send(fd, burst.data(), burst.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      sent += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EPIPE || errno == ECONNRESET)) {
      dropped = true;
      break;
    }
    pollfd p{fd, POLLOUT, 0};
    if (::poll(&p, 1, 50) > 0 && (p.revents & (POLLHUP | POLLERR)) != 0) {
      dropped = true;
      break;
    }
  }
  auto elapsed = std::chrono::steady_clock::now() - t0;
  CHECK(dropped);
  CHECK(sent > 100 * 1024);
  CHECK(elapsed < 10s);
  CHECK(agent.log().find("client does not read its responses") != std::string::npos);
  // The agent is unaffected.
  auto ok = chitty::testing::get(agent.socket(), "/health");
  REQUIRE(ok);
  CHECK(ok->status == 200);
}

TEST_CASE("a slow request head gets 408 and the connection closes", "[integration][limits]") {
  TempDir dir;
  AgentProcess agent(dir, "header_timeout = \"500ms\"");
  REQUIRE(agent.wait_ready());
  UdsClient c(agent.socket());
  REQUIRE(c.send("GET /health HTTP/1.1\r\nHo"));
  auto t0 = std::chrono::steady_clock::now();
  auto r = c.read_response(5s);
  REQUIRE(r);
  CHECK(r->status == 408);
  CHECK(r->body.find("\"code\":\"request_timeout\"") != std::string::npos);
  CHECK(std::chrono::steady_clock::now() - t0 >= 400ms);
  CHECK(c.wait_closed(3s));
}

TEST_CASE("a slow body gets 408", "[integration][limits]") {
  TempDir dir;
  AgentProcess agent(dir, "body_timeout = \"500ms\"");
  REQUIRE(agent.wait_ready());
  UdsClient c(agent.socket());
  REQUIRE(c.send("POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly some"));
  auto r = c.read_response(5s);
  REQUIRE(r);
  CHECK(r->status == 408);
  CHECK(c.wait_closed(3s));
}

TEST_CASE("an idle keep-alive connection is closed after the idle timeout", "[integration][limits]") {
  TempDir dir;
  AgentProcess agent(dir, "idle_timeout = \"300ms\"");
  REQUIRE(agent.wait_ready());
  UdsClient c(agent.socket());
  REQUIRE(c.send(kGet));
  REQUIRE(c.read_response());
  auto t0 = std::chrono::steady_clock::now();
  CHECK(c.wait_closed(5s));
  CHECK(std::chrono::steady_clock::now() - t0 >= 250ms);
}

TEST_CASE("the requests-per-connection cap closes with the last answer", "[integration][limits]") {
  TempDir dir;
  AgentProcess agent(dir, "max_requests_per_connection = 3");
  REQUIRE(agent.wait_ready());
  UdsClient c(agent.socket());
  REQUIRE(c.send(kGet + kGet + kGet + kGet));
  for (int i = 0; i < 3; ++i) {
    auto r = c.read_response();
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK((r->header("connection") == std::optional<std::string>("close")) == (i == 2));
  }
  CHECK(c.wait_closed(3s));
}

TEST_CASE("the global connection cap answers 503 server_busy when no connection is idle", "[integration][limits]") {
  TempDir dir;
  AgentProcess agent(dir, "max_connections = 3\nmax_connections_per_uid = 3\nreserved_service_connections = 0\n"
                          "header_timeout = \"60s\"");
  REQUIRE(agent.wait_ready());
  std::vector<UdsClient> held;
  for (int i = 0; i < 3; ++i) {
    held.emplace_back(agent.socket());
    REQUIRE(held.back().send(kGet));
    REQUIRE(held.back().read_response());
    // A request begun: not idle, so not closed to make room (fairness_test.cpp).
    REQUIRE(held.back().send("GET /health HTTP/1.1\r\nHo"));
  }
  UdsClient extra(agent.socket());
  auto r = extra.read_response();
  REQUIRE(r);
  CHECK(r->status == 503);
  CHECK(r->body.find("\"code\":\"server_busy\"") != std::string::npos);
  CHECK(r->header("retry-after") == std::optional<std::string>("1"));
  CHECK(extra.wait_closed(2s));
  held.pop_back();  // a slot frees up
  std::this_thread::sleep_for(100ms);
  auto ok = chitty::testing::get(agent.socket(), "/health");
  REQUIRE(ok);
  CHECK(ok->status == 200);
}

TEST_CASE("the per-uid cap limits one uid and not another", "[integration][limits]") {
  TempDir dir;
  chmod(dir.path().c_str(), 0755);
  AgentProcess agent(dir, "max_connections = 100\nmax_connections_per_uid = 2\nsocket_mode = \"0666\"\n"
                          "socket_world_accessible = true");
  REQUIRE(agent.wait_ready());
  UdsClient a(agent.socket()), b(agent.socket());
  REQUIRE(a.send(kGet));
  REQUIRE(a.read_response());
  REQUIRE(b.send(kGet));
  REQUIRE(b.read_response());
  // Both idle: a third takes the place of the oldest (a keeps-connections
  // pool of one uid is not refused).
  UdsClient recycled(agent.socket());
  REQUIRE(recycled.send(kGet));
  auto ok = recycled.read_response();
  REQUIRE(ok);
  CHECK(ok->status == 200);
  CHECK(a.wait_closed(2s));
  // Both busy (a request begun on each): refused.
  REQUIRE(b.send("GET /health HTTP/1.1\r\n"));
  REQUIRE(recycled.send("GET /health HTTP/1.1\r\n"));
  std::this_thread::sleep_for(100ms);
  UdsClient c(agent.socket());
  auto r = c.read_response();
  REQUIRE(r);
  CHECK(r->status == 429);
  CHECK(r->body.find("\"code\":\"too_many_connections\"") != std::string::npos);
  CHECK(r->body.find("uid " + std::to_string(geteuid())) != std::string::npos);

  if (!is_root()) return;
  auto other = chitty::testing::run({"setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "curl", "--silent",
                                     "--unix-socket", agent.socket(), "http://localhost/health"});
  CHECK(other.exit_code == 0);
  CHECK(other.out.find("\"healthy\"") != std::string::npos);
}
