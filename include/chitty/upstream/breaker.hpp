// A circuit breaker for one upstream server: closed (requests go out) →
// open after `failure_threshold` consecutive availability failures (nothing
// goes out; callers fall back at once) → half-open once the jittered backoff
// has passed (exactly one trial goes out: a probe or a real request) →
// closed on its success, open again with a doubled backoff on its failure.
//
// Only availability outcomes count: an answer the upstream gave on purpose
// (400, 403, 404, 401) is a success for the breaker, however unwelcome.
// Pure: time comes in as arguments, randomness from an injected function.
//
// Thread: loop thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string_view>

#include "chitty/base/clock.hpp"

namespace chitty::upstream {

class Breaker {
 public:
  enum class State { closed, open, half_open };

  struct Options {
    unsigned failure_threshold = 2;
    Duration backoff = std::chrono::seconds(1);       // the first open period (before jitter)
    Duration max_backoff = std::chrono::seconds(30);  // the cap of the doubling
  };

  // `jitter` returns a number in [0, 1); each open period is the backoff
  // (doubled for each time the breaker reopened in a row, up to
  // max_backoff) scaled to between 75% and 125%, so that agents on many
  // hosts do not retry in lockstep.
  Breaker(Options options, std::function<double()> jitter);

  // Whether a request may go out now. In the open state this turns the
  // breaker half-open once the backoff has passed and admits that one trial.
  bool allow(MonoTime now);
  // The outcome of a request that went out.
  void success(MonoTime now);
  void failure(MonoTime now);

  State state() const noexcept { return state_; }
  // When the open state ends (meaningful while open).
  MonoTime retry_at() const noexcept { return retry_at_; }
  unsigned consecutive_failures() const noexcept { return failures_; }
  std::uint64_t times_opened() const noexcept { return opened_; }
  void set_options(Options o) noexcept { options_ = o; }
  const Options& options() const noexcept { return options_; }

 private:
  void open(MonoTime now);

  Options options_;
  std::function<double()> jitter_;
  State state_ = State::closed;
  unsigned failures_ = 0;
  unsigned opens_in_a_row_ = 0;  // doubles the backoff
  MonoTime retry_at_{};
  std::uint64_t opened_ = 0;
};

std::string_view breaker_state_name(Breaker::State s) noexcept;  // "closed", "open", "half_open"

}  // namespace chitty::upstream
