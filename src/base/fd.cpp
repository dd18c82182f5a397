#include "chitty/base/fd.hpp"

#include <unistd.h>

#include <cerrno>

namespace chitty {

void UniqueFd::reset(int fd) noexcept {
  int old = std::exchange(fd_, fd < 0 ? -1 : fd);
  if (old >= 0) {
    int saved = errno;
    // Linux frees the descriptor even when close() fails (EINTR included):
    // never retried, or another thread's new descriptor could be closed.
    ::close(old);
    errno = saved;
  }
}

bool write_all(int fd, std::string_view bytes) noexcept {
  std::size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return false;
    if (n == 0) {
      errno = EIO;
      return false;
    }
    done += static_cast<std::size_t>(n);
  }
  return true;
}

}  // namespace chitty
