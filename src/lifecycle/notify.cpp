#include "chitty/lifecycle/notify.hpp"

#include <time.h>

#include <cstdlib>
#include <string>

#include <systemd/sd-daemon.h>

namespace chitty::lifecycle {

std::string status_line(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7F) c = ' ';
  }
  return out;
}

bool Notifier::enabled() const noexcept {
  const char* s = std::getenv("NOTIFY_SOCKET");
  return s != nullptr && *s != '\0';
}

void Notifier::send(const std::string& message) {
  if (!enabled()) return;
  sd_notify(0, message.c_str());  // best effort: systemd's word on failures is its timeout
}

void Notifier::ready(std::string_view status) { send("READY=1\nSTATUS=" + status_line(status)); }

void Notifier::status(std::string_view status) { send("STATUS=" + status_line(status)); }

void Notifier::reloading(std::string_view status) {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  unsigned long long usec =
      static_cast<unsigned long long>(ts.tv_sec) * 1000000ULL + static_cast<unsigned long long>(ts.tv_nsec) / 1000ULL;
  send("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec) + "\nSTATUS=" + status_line(status));
}

void Notifier::stopping(std::string_view status) {
  if (stopping_sent_) {
    send("STATUS=" + status_line(status));
    return;
  }
  stopping_sent_ = true;
  send("STOPPING=1\nSTATUS=" + status_line(status));
}

void Notifier::watchdog() { send("WATCHDOG=1"); }

void Notifier::extend_timeout(std::chrono::microseconds by) {
  send("EXTEND_TIMEOUT_USEC=" + std::to_string(by.count()));
}

}  // namespace chitty::lifecycle
