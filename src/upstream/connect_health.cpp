#include "connect_health.hpp"

#include <algorithm>
#include <utility>

#include "chitty/json/in_place.hpp"
#include "chitty/log/log.hpp"
#include "connect_text.hpp"

namespace chitty::upstream {

using json::InPlace;
using json::Node;

std::string_view connect_health_name(ConnectStatus::Health h) noexcept {
  switch (h) {
    case ConnectStatus::Health::unknown: return "unknown";
    case ConnectStatus::Health::healthy: return "healthy";
    case ConnectStatus::Health::unreachable: return "unreachable";
    case ConnectStatus::Health::unauthorized: return "unauthorized";
    case ConnectStatus::Health::rate_limited: return "rate_limited";
  }
  return "unknown";
}

ConnectHealth::ConnectHealth(loop::Loop& loop, HttpClient& http, const Clock& clock, const Token& token,
                             ConnectOptions options, std::function<double()> random)
    : http_(http), clock_(clock), token_(token), options_(std::move(options)), random_(std::move(random)),
      breaker_(options_.breaker, random_), probe_timer_(loop, [this] { probe(); }) {}

ConnectHealth::~ConnectHealth() { close(); }

std::string ConnectHealth::where() const { return "1Password Connect (" + options_.name + ", " + options_.url + ")"; }

void ConnectHealth::start() {
  next_health_probe_ = clock_.now();  // the first probe asks /health: version and dependencies
  probe();
}

void ConnectHealth::close() noexcept {
  if (closed_) return;
  closed_ = true;
  probe_timer_.close();
  if (probe_) http_.cancel(*probe_);
  probe_.reset();
}

void ConnectHealth::reconfigure(const ConnectOptions& o) {
  options_.reload_from(o);
  breaker_.set_options(o.breaker);
}

std::optional<std::string> ConnectHealth::admit(MonoTime now) {
  if (now < rate_limited_until_) {
    return where() + " is rate limiting the agent (429); requests resume in " + seconds_text(rate_limited_until_ - now);
  }
  if (!breaker_.allow(now)) {
    return where() + " is unreachable (" + (status_.last_error.empty() ? "circuit open" : status_.last_error) +
           "); next attempt in " + seconds_text(breaker_.retry_at() - now);
  }
  return std::nullopt;
}

void ConnectHealth::failure(const std::string& why) {
  MonoTime now = clock_.now();
  Breaker::State before = breaker_.state();
  bool was_ok = last_outcome_ok_;
  last_outcome_ok_ = false;
  ++status_.failures;
  status_.last_failure = clock_.wall_now();
  status_.last_error = why;
  if (!status_.unavailable_since) status_.unavailable_since = clock_.wall_now();
  breaker_.failure(now);
  if (was_ok) log::warn("upstream", "Connect request failed", {{"upstream", options_.name}, {"reason", why}});
  if (breaker_.state() == Breaker::State::open && before != Breaker::State::open) {
    log::warn("upstream", "Connect unreachable: circuit open",
              {{"upstream", options_.name},
               {"url", options_.url},
               {"retry_in", seconds_text(breaker_.retry_at() - now)},
               {"reason", why}});
    schedule_probe();  // the trial goes out when the backoff ends
  }
  set_health(ConnectStatus::Health::unreachable);
  if (before != breaker_.state() || was_ok) changed();
}

void ConnectHealth::success(Duration latency, const std::string& version, bool authenticated) {
  Breaker::State before = breaker_.state();
  bool was_ok = last_outcome_ok_;
  last_outcome_ok_ = true;
  status_.last_success = clock_.wall_now();
  status_.last_latency = latency;
  status_.unavailable_since.reset();
  if (!version.empty()) status_.server_version = version;
  breaker_.success(clock_.now());
  if (!was_ok || before != Breaker::State::closed) {
    log::info("upstream", "Connect reachable again", {{"upstream", options_.name}, {"url", options_.url}});
  }
  ConnectStatus::Health h = status_.health;
  if (h == ConnectStatus::Health::unknown || h == ConnectStatus::Health::unreachable ||
      h == ConnectStatus::Health::rate_limited || (authenticated && h == ConnectStatus::Health::unauthorized)) {
    status_.last_error.clear();
    set_health(ConnectStatus::Health::healthy);
  }
  if (before != breaker_.state() || !was_ok) changed();
}

Duration ConnectHealth::rate_limited() {
  // Connect defines no rate-limit headers: our own jittered exponential backoff.
  ++rate_limits_in_a_row_;
  Duration period = options_.rate_limit_backoff;
  for (unsigned i = 1; i < rate_limits_in_a_row_ && period < options_.rate_limit_max_backoff; ++i) period *= 2;
  period = std::min(period, options_.rate_limit_max_backoff);
  double j = random_ ? random_() : 0.5;
  period = std::chrono::duration_cast<Duration>(period * (0.75 + 0.5 * j));
  rate_limited_until_ = clock_.now() + period;
  status_.last_error = "rate limited (429)";
  set_health(ConnectStatus::Health::rate_limited);
  return period;
}

void ConnectHealth::set_health(ConnectStatus::Health h) {
  if (status_.health == h) return;
  ConnectStatus::Health before = status_.health;
  status_.health = h;
  if (h == ConnectStatus::Health::unauthorized) {
    log::error("upstream", "ALERT: Connect refuses the agent's token (401); it has expired or was revoked",
               {{"upstream", options_.name}, {"url", options_.url}, {"token", token_.describe()}});
  } else if (before == ConnectStatus::Health::unauthorized && h == ConnectStatus::Health::healthy) {
    log::info("upstream", "Connect accepts the agent's token again", {{"upstream", options_.name}});
  } else if (h == ConnectStatus::Health::rate_limited) {
    log::warn("upstream", "Connect is rate limiting the agent (429): backing off", {{"upstream", options_.name}});
  }
  changed();
}

void ConnectHealth::changed() {
  status_.breaker = breaker_.state();
  if (listener_) listener_();
}

// ---------------------------------------------------------------------------
// Probes

void ConnectHealth::probe() {
  if (closed_ || probe_) return;
  MonoTime now = clock_.now();
  if (!breaker_.allow(now)) return schedule_probe();
  bool health = now >= next_health_probe_;
  HttpRequest r;
  r.url = options_.url + (health ? "/health" : "/heartbeat");
  r.timeout = options_.timeout;
  r.connect_timeout = options_.connect_timeout;
  r.max_body = options_.max_response_bytes;
  ++status_.requests;
  probe_ = http_.send(std::move(r), [this, health](HttpResult result) { on_probe(health, std::move(result)); });
}

void ConnectHealth::on_probe(bool health, HttpResult r) {
  if (closed_) return;
  probe_.reset();
  if (!r) {
    failure(failure_text(r.error()));
  } else if (r->status != 200) {
    failure("HTTP " + std::to_string(r->status) + " from " + (health ? "/health" : "/heartbeat"));
  } else {
    if (health) {
      next_health_probe_ = clock_.now() + options_.health_interval;
      if (r->body) {
        if (auto doc = InPlace::parse(r->body)) {
          status_.dependencies.clear();
          for (Node d : doc->root().get("dependencies")) {
            Node service = d.get("service");
            Node state = d.get("status");
            if (service.is(Node::Type::string) && state.is(Node::Type::string) && status_.dependencies.size() < 16) {
              status_.dependencies.emplace_back(printable(service.text(), 64), printable(state.text(), 64));
            }
          }
          Node version = doc->root().get("version");
          if (version.is(Node::Type::string)) status_.server_version = printable(version.text(), 32);
        }
      }
    }
    success(r->elapsed, r->connect_version, false);
  }
  schedule_probe();
}

void ConnectHealth::schedule_probe() {
  if (closed_ || probe_) return;
  std::chrono::milliseconds delay = options_.probe_interval;
  if (breaker_.state() == Breaker::State::open) {
    delay = std::max(until(clock_.now(), breaker_.retry_at()), std::chrono::milliseconds(1));
  }
  probe_timer_.start(delay);
}

}  // namespace chitty::upstream
