// The availability of one Connect server (docs/upstream.md, "The circuit
// breaker and the modes"): its circuit breaker, the /heartbeat and /health
// probes, the 429 backoff, and the ConnectStatus that /health, /metrics and
// the STATUS line show. The ConnectProvider owns one and reports the outcome
// of every request it sends; the probes are this class's own requests (one
// at a time, cancelled by close()).
//
// Thread: loop thread only.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "chitty/base/clock.hpp"
#include "chitty/loop/timer.hpp"
#include "chitty/upstream/breaker.hpp"
#include "chitty/upstream/connect_provider.hpp"
#include "chitty/upstream/http_client.hpp"
#include "chitty/upstream/token.hpp"

namespace chitty::upstream {

class ConnectHealth {
 public:
  // `options.url` without a trailing '/'. `token` is only described (in the
  // alert of a refused token). `random` returns numbers in [0, 1) (jitter).
  ConnectHealth(loop::Loop& loop, HttpClient& http, const Clock& clock, const Token& token, ConnectOptions options,
                std::function<double()> random);
  ~ConnectHealth();  // close()
  ConnectHealth(const ConnectHealth&) = delete;
  ConnectHealth& operator=(const ConnectHealth&) = delete;

  // Starts the probes; the first one, at once, asks /health.
  void start();
  // Stops the probes and cancels the one in flight. Idempotent.
  void close() noexcept;
  // New timeouts, intervals, backoffs and breaker settings (not the name or URL).
  void reconfigure(const ConnectOptions& options);
  // Called whenever status().health or the breaker state changes.
  void on_change(std::function<void()> listener) { listener_ = std::move(listener); }

  // Whether a request may go out at `now`: nullopt if so (a half-open
  // breaker admits it as its one trial), else why not, for the client (the
  // 429 backoff, or the open circuit and when it is tried again).
  std::optional<std::string> admit(MonoTime now);
  // The breaker is closed and the last outcome was not an availability
  // failure (so the first failure already means fallback).
  bool available() const noexcept { return breaker_.state() == Breaker::State::closed && last_outcome_ok_; }

  // What the provider's requests met. `sent`: one more HTTP request;
  // `resolving`: one more vault or item lookup.
  void sent() noexcept { ++status_.requests; }
  void resolving() noexcept { ++status_.resolutions; }
  // An availability failure (no answer, 5xx, a malformed answer).
  void failure(const std::string& why);
  // An answer. `authenticated`: to a request carrying the token (a /v1
  // call), so it also says the token is accepted.
  void success(Duration latency, const std::string& version, bool authenticated);
  // An HTTP answer with `status` to a /v1 request: anything but 429 ends a
  // run of 429s.
  void answered(long status) noexcept {
    if (status != 429) rate_limits_in_a_row_ = 0;
  }
  // A 429: requests pause for the (doubling, jittered) period returned.
  Duration rate_limited();
  // A 401 that a re-read token did not cure: an alert, not an outage.
  void unauthorized() { set_health(ConnectStatus::Health::unauthorized); }

  const ConnectStatus& status() const noexcept { return status_; }
  // "1Password Connect (primary, http://…)", for messages.
  std::string where() const;

 private:
  void probe();
  void on_probe(bool health_probe, HttpResult r);
  void schedule_probe();
  void set_health(ConnectStatus::Health h);
  void changed();

  HttpClient& http_;
  const Clock& clock_;
  const Token& token_;
  ConnectOptions options_;
  std::function<double()> random_;
  Breaker breaker_;
  loop::Timer probe_timer_;
  std::function<void()> listener_;
  ConnectStatus status_;
  bool last_outcome_ok_ = true;
  bool closed_ = false;
  std::optional<HttpClient::Id> probe_;  // the probe in flight
  MonoTime next_health_probe_{};
  MonoTime rate_limited_until_{};
  unsigned rate_limits_in_a_row_ = 0;
};

}  // namespace chitty::upstream
