// A file descriptor with one owner: closed when its owner dies, so no error
// path can leak one and none is closed twice.
//
// Thread: any; one UniqueFd is not shared between threads.
#pragma once

#include <string_view>
#include <utility>

namespace chitty {

class UniqueFd {
 public:
  UniqueFd() noexcept = default;
  // Takes `fd` over (a negative value: empty), e.g. UniqueFd(::open(…)).
  explicit UniqueFd(int fd) noexcept : fd_(fd < 0 ? -1 : fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) reset(o.release());
    return *this;
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;

  int get() const noexcept { return fd_; }
  explicit operator bool() const noexcept { return fd_ >= 0; }

  // Gives the descriptor up without closing it (the caller owns it now); -1
  // when empty.
  [[nodiscard]] int release() noexcept { return std::exchange(fd_, -1); }
  // Closes the descriptor held, if any, and takes `fd` instead. errno is
  // left as it was, so a caller can close first and report errno after.
  void reset(int fd = -1) noexcept;

 private:
  int fd_ = -1;
};

// Writes all of `bytes` to `fd`, retrying after EINTR and short writes. False
// with errno set on failure (EIO if the descriptor took nothing).
[[nodiscard]] bool write_all(int fd, std::string_view bytes) noexcept;

}  // namespace chitty
