// The server on a real socket, driven by client threads while the loop runs
// on the test thread: shutdown must close every handle so that the loop
// closes (uv_loop_close succeeds).
#include <catch2/catch.hpp>

#include <grp.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <thread>

#include "chitty/api/health.hpp"
#include "chitty/loop/loop.hpp"
#include "chitty/loop/signal.hpp"
#include "chitty/loop/timer.hpp"
#include "chitty/server/server.hpp"
#include "chitty/server/unix_socket.hpp"
#include "temp_dir.hpp"
#include "uds_client.hpp"

using namespace std::chrono_literals;
using chitty::testing::TempDir;
using chitty::testing::UdsClient;

namespace {

struct Harness {
  TempDir dir;
  std::string path = dir / "agent.sock";
  chitty::SystemClock clock;
  chitty::loop::Loop loop;
  chitty::server::Router router;
  chitty::api::HealthContext health;
  std::unique_ptr<chitty::server::Server> server;

  // `open_to_all`: the socket (and its directory) accept every uid, for
  // clients connected as other users (connect_as).
  explicit Harness(chitty::server::ServerOptions opts = {}, bool open_to_all = false) {
    health.clock = &clock;
    health.started = clock.now();
    health.started_wall = clock.wall_now();
    chitty::api::register_health_routes(router, health);
    router.add(chitty::http::Method::get, "/never", [](chitty::server::Call call) {
      // Parks the call: answered only by the Call's destructor at shutdown.
      static std::vector<chitty::server::Call> parked;
      parked.push_back(std::move(call));
    });
    server = std::make_unique<chitty::server::Server>(loop, clock, opts, router);
    health.server = server.get();
    if (open_to_all) chmod(dir.path().c_str(), 0755);
    auto sock =
        chitty::server::create_listening_socket(chitty::server::SocketSpec{path, open_to_all ? 0666u : 0600u, "", 64});
    REQUIRE(sock.has_value());
    REQUIRE(server->start(sock->release_fd()).has_value());
  }
};

const std::string kGet = "GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
const std::string kPartial = "GET /health HTTP/1.1\r\nHo";  // a request in progress
const std::string kRest = "st: x\r\n\r\n";

// `n` connections made by a child process running as `uid`, so that
// SO_PEERCRED names that uid; the test keeps and uses the sockets. Needs
// root. Returns fewer when a connect fails.
std::vector<UdsClient> connect_as(uid_t uid, const std::string& path, int n) {
  std::vector<int> fds;
  for (int i = 0; i < n; ++i) fds.push_back(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  int done[2];
  if (pipe(done) != 0) throw std::runtime_error("pipe");
  pid_t child = fork();
  if (child == 0) {
    // Async-signal-safe calls only: the parent has threads.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    char connected = 0;
    if (setgroups(0, nullptr) == 0 && setresgid(uid, uid, uid) == 0 && setresuid(uid, uid, uid) == 0) {
      for (int fd : fds) {
        if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) break;
        ++connected;
      }
    }
    (void)!write(done[1], &connected, 1);
    _exit(0);
  }
  close(done[1]);
  char connected = 0;
  if (read(done[0], &connected, 1) != 1) connected = 0;
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

// The status of the answer to a GET on `c`; 0 for none (closed).
int status_of_get(UdsClient& c) {
  c.send(kGet);  // may fail: a refused connection is answered and closed at once
  auto r = c.read_response(3s);
  return r ? r->status : 0;
}

}  // namespace

TEST_CASE("shutdown drains connections and the loop closes cleanly", "[server][shutdown]") {
  Harness h;
  bool done = false;
  chitty::loop::Signal stop(h.loop, SIGUSR2, [&](int) {
    h.server->shutdown(5s, [&] {
      done = true;
      stop.close();
    });
  });

  std::string failure;
  std::thread client([&] {
    try {
      UdsClient served(h.path);
      served.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
      auto r = served.read_response();
      if (!r || r->status != 200) failure = "first request not served";
      UdsClient idle(h.path);
      UdsClient partial(h.path);
      partial.send("GET /health HTTP/1.1\r\nHo");
      std::this_thread::sleep_for(100ms);  // let the server see all three
      kill(getpid(), SIGUSR2);
      // Idle connections close at once when the drain begins.
      if (!idle.wait_closed(3s)) failure += "; idle connection not closed";
      if (!served.wait_closed(3s)) failure += "; served idle connection not closed";
      // The half-sent request may still finish, and is answered with close.
      partial.send("st: x\r\n\r\n");
      auto pr = partial.read_response();
      if (!pr || pr->status != 200) failure += "; partial request not answered";
      else if (pr->header("connection") != std::optional<std::string>("close")) failure += "; no Connection: close";
      if (!partial.wait_closed(3s)) failure += "; partial connection not closed";
    } catch (const std::exception& e) {
      failure += e.what();
      kill(getpid(), SIGUSR2);
    }
  });
  h.loop.run();
  client.join();
  CHECK(failure.empty());
  CHECK(done);
  h.server.reset();
  auto closed = h.loop.close();
  INFO((closed ? std::string() : closed.error().message));
  CHECK(closed.has_value());
}

TEST_CASE("the shutdown deadline closes connections that do not finish", "[server][shutdown]") {
  Harness h;
  bool done = false;
  auto started = std::chrono::steady_clock::now();
  chitty::loop::Signal stop(h.loop, SIGUSR2, [&](int) {
    h.server->shutdown(300ms, [&] {
      done = true;
      stop.close();
    });
  });
  std::string failure;
  std::thread client([&] {
    try {
      UdsClient slow(h.path);
      slow.send("GET /health HTTP/1.1\r\nHo");  // never finished
      UdsClient waiting(h.path);
      waiting.send("GET /never HTTP/1.1\r\nHost: x\r\n\r\n");  // handler never answers
      std::this_thread::sleep_for(100ms);
      kill(getpid(), SIGUSR2);
      if (!slow.wait_closed(3s)) failure += "slow not closed; ";
      if (!waiting.wait_closed(3s)) failure += "waiting not closed; ";
    } catch (const std::exception& e) {
      failure += e.what();
      kill(getpid(), SIGUSR2);
    }
  });
  h.loop.run();
  client.join();
  CHECK(failure.empty());
  CHECK(done);
  CHECK(std::chrono::steady_clock::now() - started < 3s);
  h.server.reset();
  CHECK(h.loop.close().has_value());
}

TEST_CASE("destroying a server with open connections still lets the loop close", "[server][shutdown]") {
  Harness h;
  std::thread client([&] {
    UdsClient c(h.path);
    c.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
    c.read_response();
    std::this_thread::sleep_for(50ms);
    kill(getpid(), SIGUSR2);
    c.wait_closed(3s);
  });
  chitty::loop::Signal stop(h.loop, SIGUSR2, [&](int) {
    h.server.reset();  // connections are orphaned and free themselves
    stop.close();
  });
  h.loop.run();
  client.join();
  CHECK(h.loop.close().has_value());
}

TEST_CASE("the connection caps refuse with JSON errors", "[server][limits]") {
  chitty::server::ServerOptions opts;
  opts.max_connections = 3;
  opts.max_connections_per_uid = 2;
  Harness h(opts);
  std::string failure;
  std::thread client([&] {
    try {
      UdsClient a(h.path), b(h.path);
      a.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
      b.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
      if (!a.read_response() || !b.read_response()) failure += "first two not served; ";
      // Both idle: a third from the same uid takes the place of the oldest.
      UdsClient c(h.path);
      c.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n");
      if (auto r = c.read_response(); !r || r->status != 200) failure += "own idle connection not recycled; ";
      if (!a.wait_closed(2s)) failure += "the oldest idle connection was not the one closed; ";
      // Both busy (a request begun): the next one is refused.
      b.send("GET /health HTTP/1.1\r\n");
      c.send("GET /health HTTP/1.1\r\n");
      std::this_thread::sleep_for(100ms);
      UdsClient d(h.path);
      auto r = d.read_response();
      if (!r || r->status != 429) failure += "per-uid cap did not answer 429; ";
      else if (r->body.find("\"too_many_connections\"") == std::string::npos) failure += "wrong code; ";
      if (!d.wait_closed(2s)) failure += "refused connection left open; ";
    } catch (const std::exception& e) {
      failure += e.what();
    }
    kill(getpid(), SIGUSR2);
  });
  chitty::loop::Signal stop(h.loop, SIGUSR2, [&](int) { h.server->shutdown(1s, [&] { stop.close(); }); });
  h.loop.run();
  client.join();
  CHECK(failure.empty());
  CHECK(h.server->stats().rejected_per_uid == 1);
  h.server.reset();
  CHECK(h.loop.close().has_value());
}

TEST_CASE("at the global cap the oldest idle connection makes room; a request in progress is never cut",
          "[server][limits][fairness]") {
  chitty::server::ServerOptions opts;
  opts.max_connections = 3;
  opts.max_connections_per_uid = 10;  // every client here has the test's uid: keep that cap out of the way
  Harness h(opts);
  std::string failure;
  std::thread client([&] {
    try {
      UdsClient oldest(h.path);
      if (status_of_get(oldest) != 200) failure += "first not served; ";
      UdsClient busy(h.path);
      busy.send(kPartial);
      UdsClient newer(h.path);
      if (status_of_get(newer) != 200) failure += "second idle not served; ";
      // Every slot is taken: the newcomer gets the oldest idle connection's.
      UdsClient newcomer(h.path);
      if (status_of_get(newcomer) != 200) failure += "newcomer refused although a connection was idle; ";
      if (!oldest.wait_closed(2s)) failure += "the oldest idle connection was not closed; ";
      // The one with a request in flight is untouched and finishes it.
      busy.send(kRest);
      auto r = busy.read_response(3s);
      if (!r || r->status != 200) failure += "the request in progress was cut; ";
      if (status_of_get(newer) != 200) failure += "the newer idle connection was closed instead; ";
      // Nothing idle left: every connection has a request begun.
      for (auto* c : {&busy, &newer, &newcomer}) c->send(kPartial);
      UdsClient refused(h.path);
      auto busy_answer = refused.read_response(3s);
      if (!busy_answer || busy_answer->status != 503) failure += "no 503 with nothing idle; ";
      else if (busy_answer->body.find("\"server_busy\"") == std::string::npos) failure += "wrong code; ";
      for (auto* c : {&busy, &newer, &newcomer}) {
        c->send(kRest);
        auto done = c->read_response(3s);
        if (!done || done->status != 200) failure += "a request in progress was cut by the refusal; ";
      }
    } catch (const std::exception& e) {
      failure += e.what();
    }
    kill(getpid(), SIGUSR2);
  });
  chitty::loop::Signal stop(h.loop, SIGUSR2, [&](int) { h.server->shutdown(1s, [&] { stop.close(); }); });
  h.loop.run();
  client.join();
  CHECK(failure.empty());
  INFO(failure);
  CHECK(h.server->stats().reclaimed_idle == 1);
  CHECK(h.server->stats().rejected_busy == 1);
  h.server.reset();
  CHECK(h.loop.close().has_value());
}

TEST_CASE("slots are kept for service callers: several uids holding the rest cannot lock a service out",
          "[server][limits][fairness]") {
  if (geteuid() != 0) {
    WARN("skipped: needs root to connect as other uids");
    return;
  }
  static constexpr uid_t kService = 4501, kOtherService = 4502;
  constexpr uid_t kAttackers[] = {4601, 4602, 4603};
  constexpr uid_t kLate = 4604;
  chitty::server::ServerOptions opts;
  opts.max_connections = 12;
  opts.max_connections_per_uid = 3;
  opts.reserved_service_connections = 3;
  Harness h(opts, true);
  h.server->set_service_matcher([](const chitty::identity::Identity& id) {
    return id.uid.matches(kService) || id.uid.matches(kOtherService);
  });
  std::string failure;
  std::thread client([&] {
    try {
      // Three uids take every slot open to them (3 × 3 = 12 - 3 reserved),
      // each with a request in progress, so nothing is idle.
      std::vector<UdsClient> held;
      for (uid_t uid : kAttackers) {
        for (auto& c : connect_as(uid, h.path, 3)) {
          if (status_of_get(c) != 200) failure += "attacker uid " + std::to_string(uid) + " not served; ";
          c.send(kPartial);
          held.push_back(std::move(c));
        }
      }
      if (held.size() != 9) failure += "attackers could not connect; ";
      // A fourth uid would take a reserved slot: refused, nothing idle to swap.
      auto late = connect_as(kLate, h.path, 1);
      int late_status = late.empty() ? 0 : status_of_get(late[0]);
      if (late_status != 503) failure += "a non-service caller took a reserved slot (" + std::to_string(late_status) + "); ";
      // The service still gets in, up to its own per-uid cap.
      auto service = connect_as(kService, h.path, 3);
      for (auto& c : service) {
        if (status_of_get(c) != 200) failure += "the service was not served; ";
      }
      if (service.size() != 3) failure += "the service could not connect; ";
      // At the global cap, another service gets the slot of an idle
      // connection (a service's: every other one has a request in flight).
      auto other = connect_as(kOtherService, h.path, 1);
      if (other.empty() || status_of_get(other[0]) != 200) failure += "a second service was not served at the cap; ";
      if (!service[0].wait_closed(2s)) failure += "the oldest idle service connection was not the one closed; ";
      // Only services' connections are idle now: a non-service caller may not
      // take their place (that would eat into the reserve).
      auto pushy = connect_as(kLate, h.path, 1);
      int pushy_status = pushy.empty() ? 0 : status_of_get(pushy[0]);
      if (pushy_status != 503) failure += "a non-service caller took an idle service's slot; ";
      // One attacker's request completes: its connection is idle now, and a
      // non-service newcomer may swap it (never the services' idle ones).
      held[0].send(kRest);
      auto r = held[0].read_response(3s);
      if (!r || r->status != 200) failure += "an attacker's request in flight was cut; ";
      auto swapper = connect_as(kLate, h.path, 1);
      if (swapper.empty() || status_of_get(swapper[0]) != 200) failure += "no swap for an idle non-service slot; ";
      if (!held[0].wait_closed(2s)) failure += "the idle non-service connection was not the one closed; ";
      for (std::size_t i = 1; i < service.size(); ++i) {
        if (service[i].wait_closed(1ms)) failure += "a service connection was closed for a non-service caller; ";
      }
      for (std::size_t i = 1; i < held.size(); ++i) {
        if (held[i].wait_closed(1ms)) failure += "a connection with a request in flight was closed; ";
      }
    } catch (const std::exception& e) {
      failure += e.what();
    }
    kill(getpid(), SIGUSR2);
  });
  chitty::loop::Signal stop(h.loop, SIGUSR2, [&](int) { h.server->shutdown(1s, [&] { stop.close(); }); });
  h.loop.run();
  client.join();
  INFO(failure);
  CHECK(failure.empty());
  CHECK(h.server->stats().rejected_busy == 2);
  CHECK(h.server->stats().reclaimed_idle == 2);
  h.server.reset();
  CHECK(h.loop.close().has_value());
}

TEST_CASE("without a service matcher no slot is held back", "[server][limits][fairness]") {
  chitty::server::ServerOptions opts;
  opts.max_connections = 4;
  opts.max_connections_per_uid = 4;
  opts.reserved_service_connections = 2;
  Harness h(opts);
  std::string failure;
  std::thread client([&] {
    try {
      std::vector<UdsClient> all;
      for (int i = 0; i < 4; ++i) {
        all.emplace_back(h.path);
        if (status_of_get(all.back()) != 200) failure += "connection " + std::to_string(i) + " not served; ";
        all.back().send(kPartial);
      }
    } catch (const std::exception& e) {
      failure += e.what();
    }
    kill(getpid(), SIGUSR2);
  });
  chitty::loop::Signal stop(h.loop, SIGUSR2, [&](int) { h.server->shutdown(1s, [&] { stop.close(); }); });
  h.loop.run();
  client.join();
  INFO(failure);
  CHECK(failure.empty());
  CHECK(h.server->stats().rejected_busy == 0);
  h.server.reset();
  CHECK(h.loop.close().has_value());
}
