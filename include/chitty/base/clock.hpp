// Time, injected. Every timeout, TTL, window and bucket reads a Clock so that
// unit tests can walk through minutes in microseconds.
#pragma once

#include <chrono>

namespace chitty {

using Duration = std::chrono::nanoseconds;
using MonoTime = std::chrono::time_point<std::chrono::steady_clock, Duration>;
using WallTime = std::chrono::time_point<std::chrono::system_clock, Duration>;

// Source of monotonic time (for deadlines) and wall time (for timestamps shown
// to people). Implementations must be cheap: they are read on every request.
// Thread: a Clock is read from the loop thread only.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual MonoTime now() const noexcept = 0;
  virtual WallTime wall_now() const noexcept = 0;
};

// The real clocks: CLOCK_MONOTONIC and CLOCK_REALTIME.
class SystemClock final : public Clock {
 public:
  MonoTime now() const noexcept override {
    return std::chrono::time_point_cast<Duration>(std::chrono::steady_clock::now());
  }
  WallTime wall_now() const noexcept override {
    return std::chrono::time_point_cast<Duration>(std::chrono::system_clock::now());
  }
};

// Milliseconds between two monotonic instants, saturating at zero.
inline std::chrono::milliseconds until(MonoTime now, MonoTime deadline) noexcept {
  if (deadline <= now) return std::chrono::milliseconds(0);
  return std::chrono::ceil<std::chrono::milliseconds>(deadline - now);
}

}  // namespace chitty
