// A Clock that only moves when told to: unit tests walk through timeouts and
// windows in microseconds.
#pragma once

#include "chitty/base/clock.hpp"

namespace chitty::testing {

class ManualClock final : public Clock {
 public:
  // Starts at an arbitrary non-zero monotonic time and at 2026-11-24T00:00:00Z.
  ManualClock() : mono_(std::chrono::seconds(1000)), wall_(std::chrono::seconds(1795478400)) {}

  MonoTime now() const noexcept override { return mono_; }
  WallTime wall_now() const noexcept override { return wall_; }

  void advance(Duration d) noexcept {
    mono_ += d;
    wall_ += d;
  }

 private:
  MonoTime mono_;
  WallTime wall_;
};

}  // namespace chitty::testing
