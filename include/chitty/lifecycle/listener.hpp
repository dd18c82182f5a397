// The socket the agent serves on: the one systemd passed (socket
// activation; never unlinked: systemd owns it), or one the agent creates at
// `agent.socket` with its mode and group (and removes on a clean stop).
#pragma once

#include <optional>
#include <string>

#include "chitty/base/result.hpp"
#include "chitty/config/config.hpp"
#include "chitty/server/unix_socket.hpp"

namespace chitty::lifecycle {

struct Listener {
  std::optional<server::SocketFile> file;  // when the agent created it
  int fd = -1;                             // when systemd passed it
  std::string path;
  bool activated = false;

  // The descriptor to accept on (the created socket's is handed over).
  int take_fd() { return file ? file->release_fd() : fd; }
  // Removes a socket the agent created (so new clients get "no such
  // socket" rather than a hang); leaves systemd's.
  void remove() {
    if (file) file->remove();
  }
};

// The socket for `agent`: systemd's if it passed one, else a new one.
// Errors say why it cannot be had.
[[nodiscard]] Result<Listener> listen(const config::AgentConfig& agent);

}  // namespace chitty::lifecycle
