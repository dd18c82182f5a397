#include "chitty/lifecycle/activation.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>

#include <systemd/sd-daemon.h>

namespace chitty::lifecycle {

[[nodiscard]] Result<std::optional<ActivatedSocket>> activated_socket() {
  int n = sd_listen_fds(1 /* unset LISTEN_* */);
  if (n < 0) return fail(std::string("sd_listen_fds: ") + std::strerror(-n));
  if (n == 0) return std::optional<ActivatedSocket>();
  if (n != 1) {
    for (int i = 0; i < n; ++i) close(SD_LISTEN_FDS_START + i);
    return fail("systemd passed " + std::to_string(n) +
                " sockets (LISTEN_FDS); chitty-agent takes exactly one listening Unix stream socket");
  }
  int fd = SD_LISTEN_FDS_START;
  int r = sd_is_socket_unix(fd, SOCK_STREAM, 1 /* listening */, nullptr, 0);
  if (r <= 0) {
    close(fd);
    return fail("the socket systemd passed (fd 3) is not a listening AF_UNIX stream socket; check ListenStream= "
                "in the .socket unit");
  }
  ActivatedSocket s;
  s.fd = fd;
  sockaddr_un addr{};
  socklen_t len = sizeof addr;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0 && len > sizeof(sa_family_t)) {
    std::size_t path_len = len - sizeof(sa_family_t);
    if (addr.sun_path[0] == '\0') {
      s.path = "@" + std::string(addr.sun_path + 1, path_len - 1);  // abstract
    } else {
      s.path = std::string(addr.sun_path, strnlen(addr.sun_path, path_len));
    }
  }
  return std::optional<ActivatedSocket>(std::move(s));
}

}  // namespace chitty::lifecycle
