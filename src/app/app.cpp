#include "chitty/app/app.hpp"

#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <memory>
#include <vector>

#include "chitty/api/credentials.hpp"
#include "chitty/api/health.hpp"
#include "chitty/audit/audit.hpp"
#include "chitty/audit/trail.hpp"
#include "chitty/broker/broker.hpp"
#include "chitty/cache/cache.hpp"
#include "chitty/catalog/catalog.hpp"
#include "chitty/config/schema.hpp"
#include "chitty/loop/task_queue.hpp"
#include "chitty/loop/timer.hpp"
#include "chitty/policy/policy.hpp"
#include "chitty/secure/arena.hpp"
#include "chitty/secure/hardening.hpp"
#include "chitty/secure/sealer.hpp"
#include "chitty/base/random.hpp"
#include "chitty/upstream/connect_upstream.hpp"
#include "chitty/upstream/credential_provider.hpp"
#include "chitty/upstream/token.hpp"
#include "chitty/upstream/env_provider.hpp"
#include "chitty/app/revocation_store.hpp"
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



double jitter() { return static_cast<double>(random_u64() >> 11) * 0x1.0p-53; }



// Locked memory and the sealing key: made before anything else exists, so
// the agent refuses to start (rather than run unprotected) when it cannot
// lock the memory.
struct Vault {
  std::unique_ptr<secure::Arena> arena;
  std::unique_ptr<secure::Sealer> sealer;
};

Result<Vault> open_vault(const config::CacheConfig& c) {
  secure::ArenaOptions o;
  o.capacity = c.max_locked_bytes + c.transient_locked_bytes;
  o.allow_unlocked = c.allow_unlocked_memory;
  auto arena = secure::Arena::create(o);
  if (!arena) return tl::unexpected(arena.error());
  auto sealer = secure::Sealer::create(**arena);
  if (!sealer) return tl::unexpected(sealer.error());
  return Vault{std::move(*arena), std::move(*sealer)};
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
        const Clock& clock, lifecycle::Notifier& notifier, Vault& vault)
      : loop_(loop), options_(options), config_(config), listener_(std::move(listener)), clock_(clock), notifier_(notifier),
        vault_(vault),
        tasks_(loop),
        cache_(*vault.arena, *vault.sealer, clock, cache::options_from(config.cache)),
        env_(*vault.arena, *vault.sealer, tasks_),
        credentials_(*vault.arena, tasks_, upstream::CredentialProvider::directory_from_environment()),
        broker_(cache_, broker::Sources{{}, {&credentials_, &env_}}, clock),
        sweep_(loop, [this] { sweep(); }),
        server_(loop, clock, server::options_from(config.agent), router_),
        watchdog_(loop, notifier),
        sigterm_(loop, SIGTERM, [this](int s) { stop(s); }),
        sigint_(loop, SIGINT, [this](int s) { stop(s); }),
        sighup_(loop, SIGHUP, [this](int) { reload(); }) {
    observed_.clock = &clock_;
    observed_.started = clock_.now();
    observed_.started_wall = clock_.wall_now();
    observed_.server = &server_;
    observed_.cache = &cache_;
    observed_.arena = vault_.arena.get();
    observed_.sealer = vault_.sealer.get();
    observed_.broker = &broker_;
    observed_.fallback_window = config.cache.fallback_window;
    // Callers matching a [[service]] (not the catch-all default rule) may
    // take the reserved connection slots; the policy is read at each accept.
    server_.set_service_matcher([this](const identity::Identity& caller) {
      const policy::Service* s = broker_.policy().service_for(caller);
      return s != nullptr && !s->is_default;
    });
    api::register_health_routes(router_, observed_);
    api::register_metrics_route(router_, credentials_ctx_, observed_);
    credentials_ctx_.broker = &broker_;
    credentials_ctx_.arena = vault_.arena.get();
    credentials_ctx_.metrics = &metrics_;
    credentials_ctx_.clock = &clock_;
    credentials_ctx_.services_vault = config.onepassword.services_vault;
    credentials_ctx_.integrations_vault = config.onepassword.integrations_vault;
    credentials_ctx_.persist_revocations = [this](const policy::Revocations& r) -> Result<std::uint64_t> {
      if (!revocation_store_) return fail("the revocation store is not open");
      return revocation_store_->save(r);
    };
    api::register_credential_routes(router_, credentials_ctx_);
    api::register_emergency_routes(router_, credentials_ctx_);
    api::register_admin_routes(router_, credentials_ctx_);
  }

  // The catalog, policy and environment import of the configuration, and
  // the Connect upstream with its token(s).
  Result<void> load_sources() {
    if (auto r = open_trail(); !r) return r;
    if (auto r = open_upstream(); !r) return r;
    if (auto r = open_emergency(); !r) return r;
    if (auto r = open_revocations(); !r) return r;
    return apply_sources(config_, true);
  }

  Result<void> start() {
    int fd = listener_.file ? listener_.file->release_fd() : listener_.fd;
    sweep_.start(std::chrono::minutes(1), std::chrono::minutes(1));
    sweep_.unref();
    auto r = server_.start(fd);
    if (!r && listener_.file) listener_.file->remove();
    if (r) {
      if (connect_) connect_->start();
    }
    return r;
  }

  std::string serving_status() const {
    std::string s = "serving on " + listener_.path + (listener_.activated ? " (socket-activated)" : "");
    if (!connect_) return s;
    s += "; upstream " + std::string(upstream::connect_health_name(connect_->primary().status().health));
    if (connect_->backup() != nullptr) {
      s += ", backup " + std::string(upstream::connect_health_name(connect_->backup()->status().health));
    }
    if (broker_.mode() == cache::Mode::fallback) s += " (fallback mode: cached values up to " +
                                                       format_duration(config_.cache.fallback_window) + ")";
    return s;
  }

  const std::string& socket_path() const noexcept { return listener_.path; }
  bool socket_activated() const noexcept { return listener_.activated; }
  bool stopped_cleanly() const noexcept { return stopped_; }

 private:
  // The audit trail, opened from its section: everything decided goes
  // through it from here on.
  Result<void> open_trail() {
    auto trail = audit::Trail::open({loop_, tasks_, *vault_.arena, *vault_.sealer, clock_, &jitter}, config_.audit,
                                    config_.agent.state_dir);
    if (!trail) return tl::unexpected(trail.error());
    trail_ = std::move(*trail);
    trail_->on_mode([this] { return std::string(cache::mode_name(broker_.mode())); });
    credentials_ctx_.audit = &trail_->recorder();
    observed_.spool = trail_->spool();
    observed_.shipper = trail_->shipper();
    observed_.recorder = trail_->spool_recorder();
    broker_.on_mode_change([this](cache::Mode m) {
      audit::Event e;
      e.kind = audit::Kind::mode;
      e.action = "mode";
      e.decision = audit::Decision::none;
      e.mode = std::string(cache::mode_name(m));
      e.reason = m == cache::Mode::fallback ? "upstream unavailable: cached values served up to the fallback window"
                                            : "upstream available again";
      trail_->state(std::move(e));
    });
    return {};
  }

  // The emergency revocations in force (sealed under the chain key).
  Result<void> open_revocations() {
    revocation_store_ = std::make_unique<RevocationStore>(config_.agent.state_dir, trail_->chain_key());
    // The audit trail records the file's generation at every start and
    // revocation: a missing file, or an older copy, is refused then.
    std::optional<std::uint64_t> recorded;
    if (trail_->spool()) recorded = audit::SpoolRecorder::recorded_revocations_generation(*trail_->spool());
    auto loaded = revocation_store_->load(recorded, options_.accept_revocations);
    if (!loaded) return tl::unexpected(loaded.error());
    if (!loaded->existed && !options_.accept_revocations) {
      // Written now (and recorded by the start event), so that from here on
      // its absence means it was removed.
      if (auto ok = revocation_store_->save(loaded->revocations); !ok) return tl::unexpected(ok.error());
    }
    if (loaded->accepted) {
      trail_->alert("the operator accepted " + revocation_store_->path() + " as it is (--accept-revocations): " +
                   std::to_string(loaded->revocations.list().size()) + " emergency revocation(s) in force, " +
                   (loaded->existed ? "its MAC was not checked and it is sealed again" : "it was missing: none"));
    }
    if (!loaded->revocations.empty()) {
      log::warn("app", "emergency revocations in force from before the restart",
                {{"count", loaded->revocations.list().size()}, {"file", revocation_store_->path()}});
    }
    broker_.set_revocations(std::move(loaded->revocations));
    broker_.on_revocations_changed([this] {
      auto ok = revocation_store_->save(broker_.revocations());
      if (!ok) {
        log::error("app", "revocations learnt more spellings but could not be saved; they are in force until a restart",
                   {{"reason", ok.error().message}});
        return;
      }
      audit::Event e;
      e.kind = audit::Kind::revoke;
      e.action = "revoke-resolved";
      e.decision = audit::Decision::none;
      e.reason = "emergency revocations learnt more spellings from the upstream";
      e.revocations_generation = *ok;
      trail_->state(std::move(e));
    });
    return {};
  }

 public:
  void started(const std::string& detail) {
    audit::Event e;
    e.kind = audit::Kind::start;
    e.action = "start";
    e.decision = audit::Decision::none;
    e.reason = detail;
    if (revocation_store_) e.revocations_generation = revocation_store_->generation();
    trail_->state(std::move(e));
    trail_->start();
  }

 private:
  Result<void> open_emergency() {
    const std::string& file = config_.emergency.token_file;
    if (file.empty()) return {};
    auto t = upstream::Token::from_file(*vault_.arena, *vault_.sealer, file);
    if (!t) return fail("emergency.token_file: " + t.error().message);
    emergency_token_ = std::move(*t);
    credentials_ctx_.emergency_token = emergency_token_.get();
    return {};
  }

  // SIGHUP: the emergency token file is re-read — or, when the file's path
  // changed, the new one opened; on failure the token in use stays.
  void reload_emergency_token(const std::string& file) {
    if (file == config_.emergency.token_file) {
      if (!emergency_token_) return;
      if (auto r = emergency_token_->reload(); !r) {
        log::error("app", "the emergency token could not be re-read; keeping the one in use",
                   {{"reason", r.error().message}});
      }
      return;
    }
    if (file.empty()) {
      credentials_ctx_.emergency_token = nullptr;
      emergency_token_.reset();
      log::warn("app", "emergency revocation turned off (emergency.token_file is empty)");
      return;
    }
    auto t = upstream::Token::from_file(*vault_.arena, *vault_.sealer, file);
    if (!t) {
      log::error("app", "the new emergency token file could not be read; keeping the token in use",
                 {{"file", file}, {"reason", t.error().message}});
      return;
    }
    emergency_token_ = std::move(*t);
    credentials_ctx_.emergency_token = emergency_token_.get();
    log::info("app", "emergency token read from a new file", {{"file", file}});
  }

  Result<void> open_upstream() {
    auto u = upstream::ConnectUpstream::open({loop_, tasks_, *vault_.arena, *vault_.sealer, clock_, &jitter},
                                             config_.onepassword);
    if (!u) return tl::unexpected(u.error());
    connect_ = std::move(*u);
    if (!connect_) return {};
    connect_->on_change([this] { upstream_changed(); });
    std::vector<upstream::Provider*> primaries;
    for (auto* c : connect_->servers()) {
      observed_.connect.push_back(c);
      primaries.push_back(c);
    }
    broker_.set_primaries(std::move(primaries));
    return {};
  }

  // A Connect server's health or breaker changed: the mode, and what
  // systemd shows.
  void upstream_changed() {
    broker_.update_mode();
    std::string status = serving_status();
    if (status != last_status_) {
      last_status_ = status;
      if (!stopping_) notifier_.status(status);
    }
  }

  Result<void> apply_sources(const config::Config& c, bool first) {
    auto cat = config::catalog_from(c);
    if (!cat) return tl::unexpected(cat.error());
    auto pol = policy::policy_from(c);
    if (!pol) return tl::unexpected(pol.error());
    if (!c.fallback.env) {
      // Not served, but scrubbed all the same: /proc/PID/environ must not
      // keep secrets the catalog names.
      auto scrubbed = env_.scrub(config::catalog_env_names(c));
      if (!scrubbed.empty()) {
        std::string names;
        for (const auto& name : scrubbed) names += (names.empty() ? "" : " ") + name;
        log::info("upstream", "environment variables named in the catalog scrubbed from the environment, not "
                              "imported ([fallback] env = false)",
                  {{"count", scrubbed.size()}, {"env", names}});
      }
    }
    auto report = env_.import(c.fallback.env ? config::catalog_env_names(c) : std::vector<std::string>{});
    if (!report.missing.empty()) {
      std::string names;
      for (const auto& name : report.missing) names += (names.empty() ? "" : " ") + name;
      log::info("upstream", "environment variables named in the catalog are not set; they cannot be sources",
                {{"count", report.missing.size()}, {"env", names}});
    }
    if (!report.imported.empty()) {
      log::info("upstream", "environment values imported into locked memory and scrubbed from the environment",
                {{"count", report.imported.size()}});
    }
    if (!first && (c.credentials != config_.credentials || c.fallback != config_.fallback)) {
      // Values cached under the old catalog may have come from sources it no
      // longer names: fetch afresh.
      cache_.clear();
    }
    broker_.set_catalog(std::move(*cat));
    broker_.set_policy(std::move(*pol));
    return {};
  }

  void sweep() {
    std::size_t wiped = cache_.sweep();
    if (wiped > 0) log::debug("cache", "wiped values past the fallback window", {{"count", wiped}});
  }

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
    server_.shutdown(config_.agent.shutdown_timeout, [this, signum] {
      audit::Event e;
      e.kind = audit::Kind::stop;
      e.action = "stop";
      e.decision = audit::Decision::none;
      e.reason = signum == SIGTERM ? "SIGTERM" : "SIGINT";
      trail_->state(std::move(e));
      trail_->close();
      if (connect_) connect_->close();
      tasks_.close();
      sweep_.close();
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
      audit::Event ev;
      ev.kind = audit::Kind::reload;
      ev.action = "reload";
      ev.decision = audit::Decision::deny;
      ev.code = "invalid_configuration";
      ev.reason = loaded.error().front().to_string();
      trail_->state(std::move(ev));
      notifier_.ready(serving_status() + "; reload failed (" + std::to_string(n) + " problem" + (n == 1 ? "" : "s") +
                      "), running the previous configuration");
      return;
    }
    config::Config next = std::move(*loaded);
    // What changed, as the schema declares it: restart-only keys keep their
    // running values (and are named); the rest applies now.
    auto changed = config::changes(config::agent_schema(), &config_, &next);
    auto restart = config::hold_restart_keys(config::agent_schema(), &config_, &next);
    for (const auto& c : restart) {
      log::warn("app", "setting changed in the file but needs a restart; keeping the running value",
                {{"key", c.key}, {"running", c.running}, {"file", c.next}});
    }
    std::string applied;
    for (const auto& c : changed) {
      if (c.reload == config::Reload::live) applied += (applied.empty() ? "" : " ") + c.key;
    }
    const config::AgentConfig& a = next.agent;
    const config::CacheConfig& cc = next.cache;
    const config::OnePasswordConfig& op = next.onepassword;
    if (auto r = apply_sources(next, false); !r) {
      log::error("app", "configuration not reloaded; still running the previous one", {{"reason", r.error().message}});
      notifier_.ready(serving_status() + "; reload failed, running the previous configuration");
      return;
    }
    cache_.set_options(cache::options_from(cc));
    observed_.fallback_window = cc.fallback_window;
    credentials_ctx_.services_vault = op.services_vault;
    credentials_ctx_.integrations_vault = op.integrations_vault;
    reload_emergency_token(next.emergency.token_file);
    if (connect_) connect_->reconfigure(op);

    log::set_level(a.log_level);
    server_.reconfigure(server::options_from(a));
    config_ = std::move(next);
    std::string held;
    for (const auto& c : restart) held += (held.empty() ? "" : " ") + c.key;
    log::info("app", "configuration reloaded",
              {{"config", config_.source}, {"applied", applied.empty() ? std::string("nothing changed") : applied},
               {"needs_restart", held.empty() ? std::string("none") : held}});
    {
      audit::Event ev;
      ev.kind = audit::Kind::reload;
      ev.action = "reload";
      ev.decision = audit::Decision::allow;
      ev.reason = "configuration reloaded from " + config_.source + (applied.empty() ? "" : "; applied: " + applied) +
                  (held.empty() ? std::string() : "; needs a restart: " + held);
      trail_->state(std::move(ev));
    }
    std::string status = serving_status() + "; configuration reloaded";
    if (!held.empty()) status += " (restart needed for " + held + ")";
    notifier_.ready(status);
  }

  loop::Loop& loop_;
  const RunOptions& options_;
  config::Config config_;
  Listener listener_;
  const Clock& clock_;
  lifecycle::Notifier& notifier_;
  Vault& vault_;
  loop::TaskQueue tasks_;
  cache::Cache cache_;
  upstream::EnvProvider env_;
  upstream::CredentialProvider credentials_;
  std::unique_ptr<upstream::ConnectUpstream> connect_;
  std::string last_status_;
  std::unique_ptr<audit::Trail> trail_;
  broker::Broker broker_;
  loop::Timer sweep_;
  server::Router router_;
  api::Observed observed_;
  api::CredentialsContext credentials_ctx_;
  api::Metrics metrics_;
  std::unique_ptr<upstream::Token> emergency_token_;
  std::unique_ptr<RevocationStore> revocation_store_;
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

  // Before any secret exists: no core dumps, no ptrace, locked memory.
  if (auto h = secure::harden_process(); !h) return refuse(h.error().message);
  auto vault = open_vault(config.cache);
  if (!vault) return refuse(vault.error().message);
  if (vault->arena->backing() == secure::Backing::unlocked) {
    log::warn("secure", "secrets are in memory that is NOT locked and may be swapped (cache.allow_unlocked_memory)");
  }

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
    Agent agent(loop, options, config, std::move(listener), clock, notifier, *vault);
    if (auto r = agent.load_sources(); !r) return refuse(r.error().message);
    block_handled_signals(false);  // the loop watches them now; pending ones arrive there
    if (auto r = agent.start(); !r) return refuse(r.error().message);
    auto startup = std::chrono::duration_cast<std::chrono::microseconds>(clock.now() - process_start);
    notifier.ready(agent.serving_status());
    agent.started(std::string("chitty-agent ") + CHITTY_VERSION + " on " + agent.socket_path() + ", config " +
                  config.source);
    log::info("app", "ready", {{"version", CHITTY_VERSION}, {"socket", agent.socket_path()},
                               {"socket_activated", agent.socket_activated()},
                               {"state_dir", a.state_dir}, {"config", config.source},
                               {"memory", secure::backing_name(vault->arena->backing())},
                               {"locked_bytes", vault->arena->capacity()},
                               {"cipher", secure::cipher_name(vault->sealer->cipher())},
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
