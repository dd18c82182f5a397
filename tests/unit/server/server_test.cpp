// The server on a real socket, driven by client threads while the loop runs
// on the test thread: shutdown must close every handle so that the loop
// closes (uv_loop_close succeeds).
#include <catch2/catch.hpp>

#include <csignal>
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

  explicit Harness(chitty::server::ServerOptions opts = {}) {
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
    auto sock = chitty::server::create_listening_socket(chitty::server::SocketSpec{path, 0600, "", 64});
    REQUIRE(sock.has_value());
    REQUIRE(server->start(sock->release_fd()).has_value());
  }
};

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
      UdsClient c(h.path);  // third from the same uid
      auto r = c.read_response();
      if (!r || r->status != 429) failure += "per-uid cap did not answer 429; ";
      else if (r->body.find("\"too_many_connections\"") == std::string::npos) failure += "wrong code; ";
      if (!c.wait_closed(2s)) failure += "refused connection left open; ";
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
