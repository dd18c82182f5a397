#include "chitty/app/app.hpp"

#include <signal.h>
#include <sys/resource.h>

#include <csignal>
#include <memory>
#include <vector>

#include "chitty/api/health.hpp"
#include "chitty/app/state_dir.hpp"
#include "chitty/base/units.hpp"
#include "chitty/identity/peer.hpp"
#include "chitty/lifecycle/activation.hpp"
#include "chitty/lifecycle/notify.hpp"
#include "chitty/lifecycle/watchdog.hpp"
#include "chitty/log/journal.hpp"
#include "chitty/log/log.hpp"
#include "chitty/loop/loop.hpp"
#include "chitty/loop/signal.hpp"
#include "chitty/server/server.hpp"
#include "chitty/server/unix_socket.hpp"
#include "chitty_version.h"

namespace chitty::app {
namespace {

// Stop and reload signals stay blocked from start until the loop watches them,
// so one that arrives while the agent starts is handled, not fatal.
constexpr int kHandledSignals[] = {SIGTERM, SIGINT, SIGHUP};

void block_handled_signals(bool block) {
  sigset_t set;
  sigemptyset(&set);
  for (int s : kHandledSignals) sigaddset(&set, s);
  sigprocmask(block ? SIG_BLOCK : SIG_UNBLOCK, &set, nullptr);
}

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

server::ServerOptions server_options(const config::AgentConfig& a) {
  server::ServerOptions o;
  o.limits.max_header_bytes = a.max_header_bytes;
  o.limits.max_headers = a.max_headers;
  o.limits.max_uri_bytes = a.max_uri_bytes;
  o.limits.max_body_bytes = a.max_body_bytes;
  o.limits.max_requests_per_connection = a.max_requests_per_connection;
  o.limits.max_pipelined_requests = a.max_pipelined_requests;
  o.limits.idle_timeout = a.idle_timeout;
  o.limits.header_timeout = a.header_timeout;
  o.limits.body_timeout = a.body_timeout;
  o.limits.write_timeout = a.write_timeout;
  o.max_connections = a.max_connections;
  o.max_connections_per_uid = a.max_connections_per_uid;
  o.identity = identity::options_from_environment();
  return o;
}

std::string octal(std::uint32_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", mode);
  return buf;
}

// The socket the agent serves on: one it created (and removes on a clean
// stop) or one systemd passed (never unlinked: systemd owns it).
struct Listener {
  std::optional<server::SocketFile> file;
  int fd = -1;
  std::string path;
  bool activated = false;
};

// Everything that lives on the loop, so that it can be torn down (and its
// handles closed) before the loop itself is closed.
class Agent {
 public:
  Agent(loop::Loop& loop, const RunOptions& options, const config::Config& config, Listener listener,
        const Clock& clock, lifecycle::Notifier& notifier)
      : options_(options), config_(config), listener_(std::move(listener)), clock_(clock), notifier_(notifier),
        server_(loop, clock, server_options(config.agent), router_),
        watchdog_(loop, notifier),
        sigterm_(loop, SIGTERM, [this](int s) { stop(s); }),
        sigint_(loop, SIGINT, [this](int s) { stop(s); }),
        sighup_(loop, SIGHUP, [this](int) { reload(); }) {
    health_.clock = &clock_;
    health_.started = clock_.now();
    health_.started_wall = clock_.wall_now();
    health_.server = &server_;
    api::register_health_routes(router_, health_);
  }

  Result<void> start() {
    int fd = listener_.file ? listener_.file->release_fd() : listener_.fd;
    auto r = server_.start(fd);
    if (!r && listener_.file) listener_.file->remove();
    return r;
  }

  std::string serving_status() const {
    return "serving on " + listener_.path + (listener_.activated ? " (socket-activated)" : "");
  }

  const std::string& socket_path() const noexcept { return listener_.path; }
  bool socket_activated() const noexcept { return listener_.activated; }
  bool stopped_cleanly() const noexcept { return stopped_; }

 private:
  void stop(int signum) {
    if (stopping_) {
      log::warn("app", "second stop signal; closing connections now", {{"signal", signum}});
      server_.shutdown(std::chrono::milliseconds(0), nullptr);
      return;
    }
    stopping_ = true;
    std::size_t open = server_.stats().connections;
    log::info("app", "stopping", {{"signal", signum == SIGTERM ? "SIGTERM" : "SIGINT"},
                                  {"connections", open},
                                  {"grace", format_duration(config_.agent.shutdown_timeout)}});
    notifier_.stopping("stopping: draining " + std::to_string(open) + " connection" + (open == 1 ? "" : "s"));
    // shutdown_timeout may exceed the unit's TimeoutStopSec: ask for the drain.
    notifier_.extend_timeout(std::chrono::duration_cast<std::chrono::microseconds>(config_.agent.shutdown_timeout) +
                             std::chrono::seconds(5));
    // New clients get "no such socket" instead of a connection that hangs. A
    // socket systemd passed stays: it belongs to the .socket unit.
    if (listener_.file) listener_.file->remove();
    server_.shutdown(config_.agent.shutdown_timeout, [this] {
      sigterm_.close();
      sigint_.close();
      sighup_.close();
      watchdog_.close();
      stopped_ = true;
    });
  }

  void reload() {
    if (stopping_) return;
    notifier_.reloading("reloading configuration");
    if (!options_.config_path) {
      log::info("app", "SIGHUP: running on the built-in defaults, there is no configuration file to re-read");
      notifier_.ready(serving_status());
      return;
    }
    log::info("app", "reloading configuration", {{"config", *options_.config_path}});
    auto loaded = load_configuration(options_);
    if (!loaded) {
      for (const auto& d : loaded.error()) {
        log::error("config", "reload refused: invalid configuration", {{"problem", d.to_string()}});
      }
      std::size_t n = loaded.error().size();
      log::error("app", "configuration not reloaded; still running the previous one", {{"problems", n}});
      notifier_.ready(serving_status() + "; reload failed (" + std::to_string(n) + " problem" + (n == 1 ? "" : "s") +
                      "), running the previous configuration");
      return;
    }
    config::Config next = std::move(*loaded);
    // Settings bound to the socket and state directory cannot change at run
    // time: keep the running values and say so.
    config::AgentConfig& a = next.agent;
    const config::AgentConfig& cur = config_.agent;
    std::vector<std::string> restart;
    auto keep = [&](const char* key, auto& value, const auto& running, std::string shown_running, std::string shown_new) {
      if (value == running) return;
      log::warn("app", "setting changed in the file but needs a restart; keeping the running value",
                {{"key", key}, {"running", shown_running}, {"file", shown_new}});
      restart.emplace_back(key);
      value = running;
    };
    keep(kRestartKeys[0], a.socket, cur.socket, cur.socket, a.socket);
    keep(kRestartKeys[1], a.socket_mode, cur.socket_mode, octal(cur.socket_mode), octal(a.socket_mode));
    keep(kRestartKeys[2], a.socket_group, cur.socket_group, cur.socket_group, a.socket_group);
    keep(kRestartKeys[3], a.socket_world_accessible, cur.socket_world_accessible,
         cur.socket_world_accessible ? "true" : "false", a.socket_world_accessible ? "true" : "false");
    keep(kRestartKeys[4], a.state_dir, cur.state_dir, cur.state_dir, a.state_dir);

    log::set_level(a.log_level);
    server_.reconfigure(server_options(a));
    config_ = std::move(next);
    log::info("app", "configuration reloaded", {{"config", config_.source}, {"needs_restart", restart.size()}});
    std::string status = serving_status() + "; configuration reloaded";
    if (!restart.empty()) {
      status += " (restart needed for";
      for (const auto& k : restart) status += " " + k;
      status += ")";
    }
    notifier_.ready(status);
  }

  const RunOptions& options_;
  config::Config config_;
  Listener listener_;
  const Clock& clock_;
  lifecycle::Notifier& notifier_;
  server::Router router_;
  api::HealthContext health_;
  server::Server server_;
  lifecycle::Watchdog watchdog_;
  loop::Signal sigterm_;
  loop::Signal sigint_;
  loop::Signal sighup_;
  bool stopping_ = false;
  bool stopped_ = false;
};

// STOPPING=1 leaves on every way out of run(), the failed ones included.
struct StopNotice {
  lifecycle::Notifier& notifier;
  std::string reason = "stopped";
  ~StopNotice() { notifier.stopping(reason); }
};

}  // namespace

config::LoadResult load_configuration(const RunOptions& options) {
  config::LoadResult loaded = options.config_path ? config::load_file(*options.config_path) : config::defaults();
  if (!loaded) return loaded;
  config::Config& c = *loaded;
  if (!options.socket && !options.state_dir) return loaded;
  if (options.socket) c.agent.socket = *options.socket;
  if (options.state_dir) c.agent.state_dir = *options.state_dir;
  std::vector<config::Diagnostic> diags;
  auto absolute = [&](const char* flag, const std::string& v) {
    if (v.empty() || v.front() != '/') diags.push_back({flag, 0, 0, "must be an absolute path"});
  };
  if (options.socket) absolute("--socket", *options.socket);
  if (options.state_dir) absolute("--state-dir", *options.state_dir);
  for (auto& p : config::validate(c)) diags.push_back({"command line", 0, 0, p.key + ": " + p.message});
  if (!diags.empty()) return tl::unexpected(std::move(diags));
  return loaded;
}

void report_startup_failure(const std::string& reason) {
  lifecycle::Notifier notifier;
  notifier.stopping("failed to start: " + reason);
}

int run(const RunOptions& options, const config::Config& config, MonoTime process_start) {
  const config::AgentConfig& a = config.agent;
  block_handled_signals(true);
  if (log::stderr_is_journal()) log::set_sink(std::make_unique<log::JournalSink>());
  log::set_level(a.log_level);
  prepare_process();

  lifecycle::Notifier notifier;
  StopNotice stop_notice{notifier};
  notifier.status("starting");
  auto refuse = [&](const std::string& reason) {
    log::error("app", "cannot start", {{"reason", reason}});
    stop_notice.reason = "failed to start: " + reason;
    return kExitFailure;
  };

  auto state = StateDir::open(a.state_dir);
  if (!state) return refuse(state.error().message);

  Listener listener;
  auto activated = lifecycle::activated_socket();
  if (!activated) return refuse(activated.error().message);
  if (*activated) {
    listener.fd = (*activated)->fd;
    listener.path = (*activated)->path;
    listener.activated = true;
    if (listener.path != a.socket) {
      log::info("app", "socket-activated: serving on the socket systemd passed, not agent.socket",
                {{"socket", listener.path}, {"agent.socket", a.socket}});
    }
  } else {
    auto socket = server::create_listening_socket(server::SocketSpec{a.socket, a.socket_mode, a.socket_group});
    if (!socket) return refuse(socket.error().message);
    listener.path = socket->path();
    listener.file = std::move(*socket);
  }

  SystemClock clock;
  loop::Loop loop;
  bool clean = false;
  {
    Agent agent(loop, options, config, std::move(listener), clock, notifier);
    block_handled_signals(false);  // the loop watches them now; pending ones arrive there
    if (auto r = agent.start(); !r) return refuse(r.error().message);
    auto startup = std::chrono::duration_cast<std::chrono::microseconds>(clock.now() - process_start);
    notifier.ready(agent.serving_status());
    log::info("app", "ready", {{"version", CHITTY_VERSION}, {"socket", agent.socket_path()},
                               {"socket_activated", agent.socket_activated()},
                               {"state_dir", a.state_dir}, {"config", config.source},
                               {"startup_ms", static_cast<double>(startup.count()) / 1000.0}});
    loop.run();
    clean = agent.stopped_cleanly();
  }
  if (auto r = loop.close(); !r) {
    log::error("app", "event loop did not close cleanly", {{"reason", r.error().message}});
    stop_notice.reason = "stopped uncleanly: " + r.error().message;
    return kExitFailure;
  }
  log::info("app", "stopped");
  return clean ? kExitOk : kExitFailure;
}

}  // namespace chitty::app
