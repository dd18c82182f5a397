#include "chitty/upstream/breaker.hpp"

#include <algorithm>

namespace chitty::upstream {

std::string_view breaker_state_name(Breaker::State s) noexcept {
  switch (s) {
    case Breaker::State::closed: return "closed";
    case Breaker::State::open: return "open";
    case Breaker::State::half_open: return "half_open";
  }
  return "closed";
}

Breaker::Breaker(Options options, std::function<double()> jitter)
    : options_(options), jitter_(std::move(jitter)) {}

bool Breaker::allow(MonoTime now) {
  switch (state_) {
    case State::closed: return true;
    case State::half_open: return false;  // the trial is out
    case State::open:
      if (now < retry_at_) return false;
      state_ = State::half_open;
      return true;
  }
  return false;
}

void Breaker::success(MonoTime) {
  state_ = State::closed;
  failures_ = 0;
  opens_in_a_row_ = 0;
}

void Breaker::failure(MonoTime now) {
  ++failures_;
  if (state_ == State::half_open || (state_ == State::closed && failures_ >= options_.failure_threshold)) {
    open(now);
  }
  // Already open: a request that went out before it opened; nothing changes.
}

void Breaker::open(MonoTime now) {
  state_ = State::open;
  ++opened_;
  // backoff × 2^(opens in a row), capped, then jittered to 75–125%.
  Duration period = options_.backoff;
  for (unsigned i = 0; i < opens_in_a_row_ && period < options_.max_backoff; ++i) period *= 2;
  period = std::min(period, options_.max_backoff);
  double j = jitter_ ? std::clamp(jitter_(), 0.0, 1.0) : 0.5;
  auto scaled = std::chrono::duration_cast<Duration>(std::chrono::duration<double, std::nano>(
      static_cast<double>(period.count()) * (0.75 + 0.5 * j)));
  retry_at_ = now + scaled;
  ++opens_in_a_row_;
}

}  // namespace chitty::upstream
