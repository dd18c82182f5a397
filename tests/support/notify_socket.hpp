// A NOTIFY_SOCKET a test listens on, the way systemd does: datagrams of
// newline-separated KEY=VALUE lines.
#pragma once

#include <chrono>
#include <optional>
#include <string>

#include "temp_dir.hpp"

namespace chitty::testing {

class NotifySocket {
 public:
  NotifySocket();
  ~NotifySocket();
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  const std::string& path() const noexcept { return path_; }
  std::string env() const { return "NOTIFY_SOCKET=" + path_; }

  // The next datagram, or nullopt after `timeout`.
  std::optional<std::string> next(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // Datagrams until one contains `needle` (returned), skipping others into
  // `skipped` if given; nullopt after `timeout`.
  std::optional<std::string> until(const std::string& needle, std::chrono::milliseconds timeout = std::chrono::seconds(5),
                                   std::string* skipped = nullptr);

 private:
  TempDir dir_;
  std::string path_;
  int fd_ = -1;
};

}  // namespace chitty::testing
