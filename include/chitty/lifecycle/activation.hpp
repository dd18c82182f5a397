// Socket activation: the listening socket systemd passed (LISTEN_FDS), if any.
#pragma once

#include <optional>
#include <string>

#include "chitty/base/result.hpp"

namespace chitty::lifecycle {

struct ActivatedSocket {
  int fd = -1;
  std::string path;  // where it is bound (for logs and STATUS)
};

// nullopt when the agent was not socket-activated. An error when systemd
// passed something other than exactly one listening AF_UNIX stream socket.
// The LISTEN_* variables are removed from the environment once read.
[[nodiscard]] Result<std::optional<ActivatedSocket>> activated_socket();

}  // namespace chitty::lifecycle
