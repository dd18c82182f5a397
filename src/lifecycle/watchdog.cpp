#include "chitty/lifecycle/watchdog.hpp"

#include <systemd/sd-daemon.h>

#include "chitty/log/log.hpp"

namespace chitty::lifecycle {

std::optional<std::chrono::microseconds> watchdog_interval() {
  std::uint64_t usec = 0;
  // 0: keep $WATCHDOG_USEC/$WATCHDOG_PID for a later look; >0 only when they
  // are meant for this process.
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) return std::nullopt;
  return std::chrono::microseconds(usec);
}

Watchdog::Watchdog(loop::Loop& loop, Notifier& notifier)
    : notifier_(notifier), timer_(loop, [this] { notifier_.watchdog(); }), interval_(watchdog_interval()) {
  if (!interval_) return;
  auto half = std::chrono::duration_cast<std::chrono::milliseconds>(*interval_ / 2);
  if (half < std::chrono::milliseconds(1)) half = std::chrono::milliseconds(1);
  notifier_.watchdog();
  timer_.start(half, half);
  log::info("lifecycle", "watchdog enabled",
            {{"interval_us", static_cast<std::uint64_t>(interval_->count())},
             {"ping_every_ms", static_cast<std::uint64_t>(half.count())}});
}

}  // namespace chitty::lifecycle
