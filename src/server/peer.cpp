#include "chitty/server/peer.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <cstring>
#include <string>

namespace chitty::server {

Result<Peer> peer_credentials(int fd) {
  struct ucred cred {};
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return fail(std::string("SO_PEERCRED: ") + std::strerror(errno));
  }
  return Peer{cred.uid, cred.gid, cred.pid};
}

}  // namespace chitty::server
