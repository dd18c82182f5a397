// Kernel credentials of the process at the other end of a Unix socket.
// (The identity module builds the full attested identity on top of this.)
#pragma once

#include <sys/types.h>

#include "chitty/base/result.hpp"

namespace chitty::server {

struct Peer {
  uid_t uid = static_cast<uid_t>(-1);
  gid_t gid = static_cast<gid_t>(-1);
  pid_t pid = 0;  // 0 when the peer lives in a PID namespace we cannot see
};

// SO_PEERCRED of a connected AF_UNIX stream socket: the peer's effective
// uid/gid and pid at connect() time.
Result<Peer> peer_credentials(int fd);

}  // namespace chitty::server
