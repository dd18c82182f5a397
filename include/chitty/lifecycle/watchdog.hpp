// The systemd watchdog: when the unit has WatchdogSec= (and $WATCHDOG_USEC is
// meant for this process), WATCHDOG=1 is sent from a loop timer at half the
// interval, so a stuck loop really does miss its pings.
#pragma once

#include <chrono>
#include <optional>

#include "chitty/lifecycle/notify.hpp"
#include "chitty/loop/loop.hpp"
#include "chitty/loop/timer.hpp"

namespace chitty::lifecycle {

// The watchdog interval systemd asks for, if any (sd_watchdog_enabled).
std::optional<std::chrono::microseconds> watchdog_interval();

class Watchdog {
 public:
  // Starts pinging at interval/2 if systemd asked for a watchdog.
  Watchdog(loop::Loop& loop, Notifier& notifier);
  bool active() const noexcept { return interval_.has_value(); }
  std::optional<std::chrono::microseconds> interval() const noexcept { return interval_; }
  void close() noexcept { timer_.close(); }

 private:
  Notifier& notifier_;
  loop::Timer timer_;
  std::optional<std::chrono::microseconds> interval_;
};

}  // namespace chitty::lifecycle
