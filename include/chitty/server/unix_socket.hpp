// Creating the listening Unix socket safely, and removing it again.
//
// The socket is bound under a temporary name with a umask that makes it
// owner-only, given its group and mode, put into listen(), and only then
// renamed over the configured path: there is no moment at which the path
// exists with looser permissions than configured, or exists and refuses
// connections. An existing file at the path is replaced only if it is a
// socket nobody answers on (a stale socket of a dead agent). Agents starting
// on the same path serialise on an flock of "<path>.lock", held for the life
// of the process, and the directory must be one that nobody but root and the
// agent's user can write to (or sticky, like /tmp).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <utility>

#include "chitty/base/fd.hpp"
#include "chitty/base/result.hpp"

namespace chitty::server {

struct SocketSpec {
  std::string path;
  std::uint32_t mode = 0660;
  std::string group;  // name or numeric gid; empty keeps the process's group
  int backlog = 511;
};

// A listening socket this process created at `path`.
class SocketFile {
 public:
  SocketFile() = default;
  SocketFile(UniqueFd fd, UniqueFd lock, std::string path, dev_t dev, ino_t ino)
      : fd_(std::move(fd)), lock_(std::move(lock)), path_(std::move(path)), dev_(dev), ino_(ino) {}
  ~SocketFile() = default;
  SocketFile(SocketFile&& o) noexcept
      : fd_(std::move(o.fd_)), lock_(std::move(o.lock_)), path_(std::move(o.path_)), dev_(o.dev_), ino_(o.ino_),
        removed_(std::exchange(o.removed_, true)) {}
  SocketFile& operator=(SocketFile&& o) noexcept = delete;
  SocketFile(const SocketFile&) = delete;
  SocketFile& operator=(const SocketFile&) = delete;

  // The listening descriptor; release_fd() hands it over (to the event loop).
  int fd() const noexcept { return fd_.get(); }
  int release_fd() noexcept { return fd_.release(); }
  const std::string& path() const noexcept { return path_; }

  // Unlinks the path if it is still the socket this process created (a
  // successor agent's socket at the same path is left alone). Idempotent.
  void remove() noexcept;

 private:
  UniqueFd fd_;
  UniqueFd lock_;  // flock on "<path>.lock", released when this dies
  std::string path_;
  dev_t dev_ = 0;
  ino_t ino_ = 0;
  bool removed_ = false;
};

// Creates, secures and listens on the socket described by `spec`. Errors say
// what was found at the path and what to do about it.
[[nodiscard]] Result<SocketFile> create_listening_socket(const SocketSpec& spec);

// What is at `path`: nothing, a live listener, a stale socket, or something
// else. Exposed for tests and for the operator-facing error messages.
enum class PathState { absent, live_socket, stale_socket, not_a_socket, unknown };
PathState probe_socket_path(const std::string& path, std::string* detail = nullptr);

}  // namespace chitty::server
