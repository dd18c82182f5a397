#include "chitty/lifecycle/listener.hpp"

#include "chitty/lifecycle/activation.hpp"
#include "chitty/log/log.hpp"

namespace chitty::lifecycle {

[[nodiscard]] Result<Listener> listen(const config::AgentConfig& a) {
  Listener listener;
  auto activated = activated_socket();
  if (!activated) return tl::unexpected(activated.error());
  if (*activated) {
    listener.fd = (*activated)->fd;
    listener.path = (*activated)->path;
    listener.activated = true;
    if (listener.path != a.socket) {
      log::info("app", "socket-activated: serving on the socket systemd passed, not agent.socket",
                {{"socket", listener.path}, {"agent.socket", a.socket}});
    }
    return listener;
  }
  auto socket = server::create_listening_socket(server::SocketSpec{a.socket, a.socket_mode, a.socket_group});
  if (!socket) return tl::unexpected(socket.error());
  listener.path = socket->path();
  listener.file.emplace(std::move(*socket));
  return listener;
}

}  // namespace chitty::lifecycle
