#include "chitty/app/app.hpp"

#include <unistd.h>

#include <csignal>
#include <memory>
#include <vector>

#include "chitty/api/credentials.hpp"
#include "chitty/api/health.hpp"
#include "chitty/app/revocation_store.hpp"
#include "chitty/app/risk_keeper.hpp"
#include "chitty/app/state_dir.hpp"
#include "chitty/audit/trail.hpp"
#include "chitty/base/random.hpp"
#include "chitty/base/time_format.hpp"
#include "chitty/base/units.hpp"
#include "chitty/broker/broker.hpp"
#include "chitty/cache/cache.hpp"
#include "chitty/config/schema.hpp"
#include "chitty/identity/peer.hpp"
#include "chitty/lifecycle/listener.hpp"
#include "chitty/lifecycle/notify.hpp"
#include "chitty/lifecycle/process.hpp"
#include "chitty/lifecycle/watchdog.hpp"
#include "chitty/log/journal.hpp"
#include "chitty/log/log.hpp"
#include "chitty/loop/loop.hpp"
#include "chitty/loop/signal.hpp"
#include "chitty/loop/task_queue.hpp"
#include "chitty/loop/timer.hpp"
#include "chitty/policy/policy.hpp"
#include "chitty/predict/predictor.hpp"
#include "chitty/secure/hardening.hpp"
#include "chitty/secure/vault.hpp"
#include "chitty/server/server.hpp"
#include "chitty/upstream/connect_upstream.hpp"
#include "chitty/upstream/credential_provider.hpp"
#include "chitty/upstream/env_provider.hpp"
#include "chitty/upstream/token.hpp"
#include "chitty_version.h"

namespace chitty::app {
namespace {

// Everything that lives on the loop, so that it can be torn down (and its
// handles closed) before the loop itself is closed.
class Agent {
 public:
  Agent(loop::Loop& loop, const RunOptions& options, const config::Config& config, lifecycle::Listener listener,
        const Clock& clock, lifecycle::Notifier& notifier, secure::Vault& vault)
      : loop_(loop), options_(options), config_(config), listener_(std::move(listener)), clock_(clock), notifier_(notifier),
        vault_(vault),
        tasks_(loop),
        cache_(*vault.arena, *vault.sealer, clock, cache::options_from(config.cache)),
        env_(*vault.arena, *vault.sealer, tasks_),
        credentials_(*vault.arena, tasks_, upstream::CredentialProvider::directory_from_environment()),
        gate_(rules_, clock),
        broker_(cache_, broker::Sources{{}, {&credentials_, &env_}}, rules_, gate_, clock),
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
    observed_.gate = &gate_;
    observed_.fallback_window = config.cache.fallback_window;
    // Callers matching a [[service]] (not the catch-all default rule) may
    // take the reserved connection slots; the policy is read at each accept.
    server_.set_service_matcher([this](const identity::Identity& caller) {
      const policy::Service* s = rules_.service_of(caller);
      return s != nullptr && !s->is_default;
    });
    api::register_health_routes(router_, observed_);
    api::register_metrics_route(router_, credentials_ctx_, observed_);
    credentials_ctx_.broker = &broker_;
    credentials_ctx_.rules = &rules_;
    credentials_ctx_.gate = &gate_;
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
    server_.set_credential_handler(api::load_credential_handler(credentials_ctx_));
    api::register_emergency_routes(router_, credentials_ctx_);
    api::register_admin_routes(router_, credentials_ctx_);
  }

  // The catalog, policy and environment import of the configuration, and
  // the Connect upstream with its token(s).
  [[nodiscard]] Result<void> load_sources() {
    if (auto r = open_trail(); !r) return r;
    if (auto r = open_upstream(); !r) return r;
    predictor_ = std::make_unique<predict::Predictor>(
        predict::Predictor::Deps{loop_, broker_, trail_->recorder(), clock_, trail_->chain_key()}, config_.predict,
        config_.agent.state_dir);
    credentials_ctx_.prediction = &predictor_->model();
    observed_.prefetcher = &predictor_->prefetcher();
    risk_ = std::make_unique<RiskKeeper>(loop_, clock_, trail_->chain_key(), config_.risk, config_.agent.state_dir);
    broker_.on_risk_alert([this](const broker::RiskAlert& a) { risk_alert(a); });
    credentials_ctx_.step_up_token = [this](std::string_view service) { return step_up_.get(service); };
    if (auto r = emergency_.open(config_.emergency.token_file); !r) return r;
    credentials_ctx_.emergency_token = emergency_.get();
    auto store = open_revocations(config_.agent.state_dir, *trail_, broker_, options_.accept_revocations);
    if (!store) return tl::unexpected(store.error());
    revocation_store_ = std::move(*store);
    return apply(config_, true);
  }

  [[nodiscard]] Result<void> start() {
    int fd = listener_.take_fd();
    sweep_.start(std::chrono::minutes(1), std::chrono::minutes(1));
    sweep_.unref();
    auto r = server_.start(fd);
    if (!r) listener_.remove();
    if (r) {
      if (connect_) connect_->start();
      predictor_->start();
      risk_->start();
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
    if (!last_alert_.empty()) s += "; " + last_alert_;
    return s;
  }

  const std::string& socket_path() const noexcept { return listener_.path; }
  bool socket_activated() const noexcept { return listener_.activated; }
  bool stopped_cleanly() const noexcept { return stopped_; }

 private:
  // The audit trail, opened from its section: everything decided goes
  // through it from here on.
  [[nodiscard]] Result<void> open_trail() {
    auto trail = audit::Trail::open({loop_, tasks_, *vault_.arena, *vault_.sealer, clock_, &random_unit}, config_.audit,
                                    config_.agent.state_dir);
    if (!trail) return tl::unexpected(trail.error());
    trail_ = std::move(*trail);
    trail_->on_mode([this] { return std::string(cache::mode_name(broker_.mode())); });
    credentials_ctx_.audit = &trail_->recorder();
    observed_.spool = trail_->spool();
    observed_.shipper = trail_->shipper();
    observed_.recorder = trail_->spool_recorder();
    broker_.on_mode_change([this](cache::Mode m) {
      trail_->state(audit::Kind::mode, "mode",
                    m == cache::Mode::fallback ? "upstream unavailable: cached values served up to the fallback window"
                                               : "upstream available again");
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
  [[nodiscard]] Result<void> open_upstream() {
    auto u = upstream::ConnectUpstream::open({loop_, tasks_, *vault_.arena, *vault_.sealer, clock_, &random_unit},
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

  // Everything of `c` that applies at once, at start and on every reload:
  // catalog, policy, environment fallbacks, cache, Connect's timeouts, the
  // emergency token, limits and log level. Nothing is applied if the catalog
  // or policy cannot be built.
  [[nodiscard]] Result<void> apply(const config::Config& c, bool first) {
    auto cat = config::catalog_from(c);
    if (!cat) return tl::unexpected(cat.error());
    auto pol = policy::policy_from(c);
    if (!pol) return tl::unexpected(pol.error());
    env_.take(config::catalog_env_names(c), c.fallback.env);
    // Values cached under the old catalog may have come from sources it no
    // longer names: fetch afresh.
    if (!first && (c.credentials != config_.credentials || c.fallback != config_.fallback)) cache_.clear();
    rules_.set_policy(std::move(*pol));
    rules_.set_catalog(std::move(*cat));
    cache_.set_options(cache::options_from(c.cache));
    observed_.fallback_window = c.cache.fallback_window;
    credentials_ctx_.services_vault = c.onepassword.services_vault;
    credentials_ctx_.integrations_vault = c.onepassword.integrations_vault;
    if (first) {
      if (auto r = step_up_.open(c.services); !r) return r;
    } else {
      emergency_.reload(c.emergency.token_file);
      if (connect_) connect_->reconfigure(c.onepassword);
      predictor_->reconfigure(c.predict);
      risk_->reconfigure(c.risk);
      step_up_.reload(c.services);
    }
    broker_.set_risk(risk_->scoring());
    credentials_ctx_.risk = risk_->scoring();
    credentials_ctx_.emergency_token = emergency_.get();
    log::set_level(c.agent.log_level);
    server_.reconfigure(server::options_from(c.agent));
    return {};
  }

  // A request scored in the deny band (refused): counted, and — at most ten
  // a minute, the rest counted into the next — an alert-level log line, an
  // audit alert event, and a STATUS line systemd shows.
  void risk_alert(const broker::RiskAlert& a) {
    metrics_.risk_alert();
    if (!alerts_.allow(clock_.now())) return;
    std::string factors;
    for (const risk::Fired& f : a.assessment.fired) {
      if (f.weight == 0) continue;
      factors += (factors.empty() ? "" : ", ") + std::string(risk::factor_name(f.factor)) + " +" + std::to_string(f.weight);
    }
    std::string who = a.service.empty() ? "uid " + (a.uid >= 0 ? std::to_string(a.uid) : std::string("unknown"))
                                        : "service \"" + a.service + "\"";
    log::alert("risk", "ALERT: request refused for risk",
               {{"request_id", a.request_id}, {"service", a.service}, {"uid", a.uid}, {"ref", a.ref},
                {"score", a.assessment.score}, {"factors", factors}, {"refused", a.code},
                {"suppressed", alerts_.suppressed()}});
    audit::Event e;
    e.kind = audit::Kind::alert;
    e.action = "risk";
    e.request_id = a.request_id;
    e.service = a.service;
    e.uid = a.uid;
    e.ref = a.ref;
    e.decision = audit::Decision::deny;
    e.code = a.code;
    e.reason = "risk score " + std::to_string(a.assessment.score) + " for " + who + ": " + factors +
               (alerts_.suppressed() > 0 ? " (" + std::to_string(alerts_.suppressed()) + " more not alerted one by one)"
                                         : "");
    trail_->state(std::move(e));
    last_alert_ = "risk alert " + format_rfc3339_ms(clock_.wall_now()) + ": " + who + " scored " +
                  std::to_string(a.assessment.score);
    if (!stopping_) notifier_.status(serving_status());
  }

  void sweep() {
    std::size_t wiped = cache_.sweep();
    if (wiped > 0) log::debug("cache", "wiped values past the fallback window", {{"count", wiped}});
  }

  void stop(int signum) {
    if (stopping_) {
      log::warn("app", "second stop signal; closing connections now", {{"signal", signum}});
      return server_.shutdown(std::chrono::milliseconds(0), nullptr);
    }
    stopping_ = true;
    announce_stop(signum);
    // New clients get "no such socket" instead of a connection that hangs (a
    // socket systemd passed stays: it belongs to the .socket unit).
    listener_.remove();
    server_.shutdown(config_.agent.shutdown_timeout, [this, signum] { close_all(signum); });
  }

  void announce_stop(int signum) {
    std::size_t open = server_.stats().connections;
    log::info("app", "stopping", {{"signal", signum == SIGTERM ? "SIGTERM" : "SIGINT"}, {"connections", open},
                                  {"grace", format_duration(config_.agent.shutdown_timeout)}});
    notifier_.stopping("stopping: draining " + std::to_string(open) + " connection" + (open == 1 ? "" : "s"));
    // shutdown_timeout may exceed the unit's TimeoutStopSec: ask for the drain.
    notifier_.extend_timeout(std::chrono::duration_cast<std::chrono::microseconds>(config_.agent.shutdown_timeout) +
                             std::chrono::seconds(5));
  }

  // Once the connections are drained: the stop recorded, every part that
  // holds a loop handle closed, so that the loop can end.
  void close_all(int signum) {
    predictor_->close();
    risk_->close();
    trail_->state(audit::Kind::stop, "stop", signum == SIGTERM ? "SIGTERM" : "SIGINT");
    trail_->close();
    if (connect_) connect_->close();
    tasks_.close();
    sweep_.close();
    for (loop::Signal* s : {&sigterm_, &sigint_, &sighup_}) s->close();
    watchdog_.close();
    stopped_ = true;
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
      trail_->state(audit::Kind::reload, "reload", loaded.error().front().to_string(), audit::Decision::deny,
                    "invalid_configuration");
      notifier_.ready(serving_status() + "; reload failed (" + std::to_string(n) + " problem" + (n == 1 ? "" : "s") +
                      "), running the previous configuration");
      return;
    }
    config::Config next = std::move(*loaded);
    auto plan = config::plan_reload(config_, next);
    if (auto r = apply(next, false); !r) {
      log::error("app", "configuration not reloaded; still running the previous one", {{"reason", r.error().message}});
      notifier_.ready(serving_status() + "; reload failed, running the previous configuration");
      return;
    }
    config_ = std::move(next);
    std::string applied = config::ReloadPlan::keys(plan.applied), held = config::ReloadPlan::keys(plan.held);
    log::info("app", "configuration reloaded",
              {{"config", config_.source}, {"applied", applied.empty() ? std::string("nothing changed") : applied},
               {"needs_restart", held.empty() ? std::string("none") : held}});
    trail_->state(audit::Kind::reload, "reload",
                  "configuration reloaded from " + config_.source + (applied.empty() ? "" : "; applied: " + applied) +
                      (held.empty() ? std::string() : "; needs a restart: " + held),
                  audit::Decision::allow);
    notifier_.ready(serving_status() + "; configuration reloaded" +
                    (held.empty() ? std::string() : " (restart needed for " + held + ")"));
  }

  loop::Loop& loop_;
  const RunOptions& options_;
  config::Config config_;
  lifecycle::Listener listener_;
  const Clock& clock_;
  lifecycle::Notifier& notifier_;
  secure::Vault& vault_;
  loop::TaskQueue tasks_;
  cache::Cache cache_;
  upstream::EnvProvider env_;
  upstream::CredentialProvider credentials_;
  std::unique_ptr<upstream::ConnectUpstream> connect_;
  std::string last_status_;
  std::unique_ptr<audit::Trail> trail_;
  std::unique_ptr<predict::Predictor> predictor_;  // opened after the trail it records into; closed before it
  std::unique_ptr<RiskKeeper> risk_;               // opened after the trail (its chain key); closed before it
  log::Throttle alerts_{10, std::chrono::minutes(1)};
  std::string last_alert_;  // the last risk alert, for STATUS
  policy::Rules rules_;
  policy::Gate gate_;
  broker::Broker broker_;
  loop::Timer sweep_;
  server::Router router_;
  api::Observed observed_;
  api::CredentialsContext credentials_ctx_;
  api::Metrics metrics_;
  upstream::TokenSlot emergency_{*vault_.arena, *vault_.sealer, "emergency.token_file"};
  StepUpTokens step_up_{*vault_.arena, *vault_.sealer};
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

std::vector<std::string> selector_warnings(const config::Config& config) {
  std::vector<std::string> out;
  if (identity::can_read_other_users_exe()) return out;
  const uid_t self = ::geteuid();
  for (const auto& svc : config.services) {
    if (svc.exe.empty() || (svc.uid && *svc.uid == static_cast<std::int64_t>(self))) continue;
    out.push_back("service \"" + svc.name + "\" selects by exe = \"" + svc.exe +
                  "\", but this process cannot read the executable of another user's process (it lacks "
                  "CAP_SYS_PTRACE): the service matches only callers running as uid " + std::to_string(self) +
                  " (docs/systemd.md, \"Executable selectors\")");
  }
  return out;
}

int run(const RunOptions& options, const config::Config& config, MonoTime process_start) {
  const config::AgentConfig& a = config.agent;
  lifecycle::block_handled_signals(true);
  if (log::stderr_is_journal()) log::set_sink(std::make_unique<log::JournalSink>());
  log::set_level(a.log_level);
  lifecycle::prepare_process();

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
  auto vault = secure::Vault::open(config.cache.max_locked_bytes + config.cache.transient_locked_bytes,
                                   config.cache.allow_unlocked_memory);
  if (!vault) return refuse(vault.error().message);
  if (vault->arena->backing() == secure::Backing::unlocked) {
    log::warn("secure", "secrets are in memory that is NOT locked and may be swapped (cache.allow_unlocked_memory)");
  }

  for (const std::string& w : selector_warnings(config)) log::warn("app", w);

  auto state = StateDir::open(a.state_dir);
  if (!state) return refuse(state.error().message);

  auto listener = lifecycle::listen(a);
  if (!listener) return refuse(listener.error().message);

  SystemClock clock;
  loop::Loop loop;
  bool clean = false;
  {
    Agent agent(loop, options, config, std::move(*listener), clock, notifier, *vault);
    if (auto r = agent.load_sources(); !r) return refuse(r.error().message);
    lifecycle::block_handled_signals(false);  // the loop watches them now; pending ones arrive there
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
