// The agent's state directory, locked for the life of the process so that two
// agents never share it.
#pragma once

#include <string>

#include "chitty/base/result.hpp"

namespace chitty::app {

class StateDir {
 public:
  // Creates the directory (0700) if missing, refuses one that other users
  // could write to, and takes an exclusive flock on `<dir>/agent.lock`
  // (recording our pid in it). Fails if another process holds the lock.
  static Result<StateDir> open(const std::string& path);

  StateDir(StateDir&& o) noexcept;
  StateDir& operator=(StateDir&&) = delete;
  StateDir(const StateDir&) = delete;
  StateDir& operator=(const StateDir&) = delete;
  ~StateDir();  // releases the lock

  const std::string& path() const noexcept { return path_; }

 private:
  StateDir(std::string path, int lock_fd) : path_(std::move(path)), lock_fd_(lock_fd) {}
  std::string path_;
  int lock_fd_ = -1;
};

}  // namespace chitty::app
