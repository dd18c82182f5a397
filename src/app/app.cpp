#include "chitty/app/app.hpp"

#include <signal.h>
#include <sys/resource.h>

#include <csignal>
#include <memory>

#include "chitty/api/health.hpp"
#include "chitty/app/state_dir.hpp"
#include "chitty/base/units.hpp"
#include "chitty/log/log.hpp"
#include "chitty/loop/loop.hpp"
#include "chitty/loop/signal.hpp"
#include "chitty/server/server.hpp"
#include "chitty/server/unix_socket.hpp"
#include "chitty_version.h"

namespace chitty::app {
namespace {

void prepare_process() {
  // Writes to a socket whose peer left must fail with EPIPE, not kill us.
  std::signal(SIGPIPE, SIG_IGN);
  // Every connection is a descriptor: use the whole hard limit.
  rlimit nofile{};
  if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
    nofile.rlim_cur = nofile.rlim_max;
    setrlimit(RLIMIT_NOFILE, &nofile);
  }
}

http::Limits limits_from(const config::AgentConfig& a) {
  http::Limits l;
  l.max_header_bytes = a.max_header_bytes;
  l.max_headers = a.max_headers;
  l.max_uri_bytes = a.max_uri_bytes;
  l.max_body_bytes = a.max_body_bytes;
  l.max_requests_per_connection = a.max_requests_per_connection;
  l.max_pipelined_requests = a.max_pipelined_requests;
  l.idle_timeout = a.idle_timeout;
  l.header_timeout = a.header_timeout;
  l.body_timeout = a.body_timeout;
  l.write_timeout = a.write_timeout;
  return l;
}

// Everything that lives on the loop, so that it can be torn down (and its
// handles closed) before the loop itself is closed.
class Agent {
 public:
  Agent(loop::Loop& loop, const config::Config& config, server::SocketFile socket, const Clock& clock)
      : loop_(loop), config_(config), socket_(std::move(socket)), clock_(clock),
        server_(loop, clock, server::ServerOptions{limits_from(config.agent), config.agent.max_connections,
                                                   config.agent.max_connections_per_uid},
                router_),
        sigterm_(loop, SIGTERM, [this](int s) { stop(s); }),
        sigint_(loop, SIGINT, [this](int s) { stop(s); }),
        sighup_(loop, SIGHUP, [](int) {
          log::warn("app", "SIGHUP received; this version cannot reload its configuration, restart it to apply changes");
        }) {
    health_.clock = &clock_;
    health_.started = clock_.now();
    health_.started_wall = clock_.wall_now();
    health_.server = &server_;
    api::register_health_routes(router_, health_);
  }

  Result<void> start() {
    auto r = server_.start(socket_.release_fd());
    if (!r) socket_.remove();
    return r;
  }

  bool stopped_cleanly() const noexcept { return stopped_; }

 private:
  void stop(int signum) {
    if (stopping_) {
      log::warn("app", "second stop signal; closing connections now", {{"signal", signum}});
      server_.shutdown(std::chrono::milliseconds(0), nullptr);
      return;
    }
    stopping_ = true;
    log::info("app", "stopping", {{"signal", signum == SIGTERM ? "SIGTERM" : "SIGINT"},
                                  {"grace", format_duration(config_.agent.shutdown_timeout)}});
    // New clients get "no such socket" instead of a connection that hangs.
    socket_.remove();
    server_.shutdown(config_.agent.shutdown_timeout, [this] {
      sigterm_.close();
      sigint_.close();
      sighup_.close();
      stopped_ = true;
    });
  }

  loop::Loop& loop_;
  const config::Config& config_;
  server::SocketFile socket_;
  const Clock& clock_;
  server::Router router_;
  api::HealthContext health_;
  server::Server server_;
  loop::Signal sigterm_;
  loop::Signal sigint_;
  loop::Signal sighup_;
  bool stopping_ = false;
  bool stopped_ = false;
};

}  // namespace

int run(const config::Config& config, MonoTime process_start) {
  const config::AgentConfig& a = config.agent;
  log::set_level(a.log_level);
  prepare_process();

  auto state = StateDir::open(a.state_dir);
  if (!state) {
    log::error("app", "cannot start", {{"reason", state.error().message}});
    return kExitFailure;
  }
  auto socket = server::create_listening_socket(server::SocketSpec{a.socket, a.socket_mode, a.socket_group});
  if (!socket) {
    log::error("app", "cannot start", {{"reason", socket.error().message}});
    return kExitFailure;
  }

  SystemClock clock;
  loop::Loop loop;
  bool clean = false;
  {
    Agent agent(loop, config, std::move(*socket), clock);
    if (auto r = agent.start(); !r) {
      log::error("app", "cannot start", {{"reason", r.error().message}});
      return kExitFailure;
    }
    auto startup = std::chrono::duration_cast<std::chrono::microseconds>(clock.now() - process_start);
    log::info("app", "ready", {{"version", CHITTY_VERSION}, {"socket", a.socket}, {"state_dir", a.state_dir},
                               {"config", config.source}, {"startup_ms", static_cast<double>(startup.count()) / 1000.0}});
    loop.run();
    clean = agent.stopped_cleanly();
  }
  if (auto r = loop.close(); !r) {
    log::error("app", "event loop did not close cleanly", {{"reason", r.error().message}});
    return kExitFailure;
  }
  log::info("app", "stopped");
  return clean ? kExitOk : kExitFailure;
}

}  // namespace chitty::app
