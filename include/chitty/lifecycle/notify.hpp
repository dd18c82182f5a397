// Telling the service manager what the agent is doing (sd_notify): READY=1
// once the socket accepts, STATUS= on every state change, RELOADING=1 with
// MONOTONIC_USEC, STOPPING=1 on every way out, WATCHDOG=1 pings.
//
// Without $NOTIFY_SOCKET (not started by systemd) every call is a no-op.
#pragma once

#include <chrono>
#include <string>
#include <string_view>

namespace chitty::lifecycle {

class Notifier {
 public:
  Notifier() = default;

  bool enabled() const noexcept;

  void ready(std::string_view status);
  void status(std::string_view status);
  // RELOADING=1 and MONOTONIC_USEC=<now> (what Type=notify-reload matches on).
  void reloading(std::string_view status);
  // STOPPING=1, once; later calls only update the status.
  void stopping(std::string_view status);
  void watchdog();
  // EXTEND_TIMEOUT_USEC: the current phase (start, stop) needs this long.
  void extend_timeout(std::chrono::microseconds by);

  bool stopping_sent() const noexcept { return stopping_sent_; }

 private:
  void send(const std::string& message);
  bool stopping_sent_ = false;
};

// A one-line STATUS= value: newlines and control characters become spaces.
std::string status_line(std::string_view text);

}  // namespace chitty::lifecycle
