// The agent's state directory, locked for the life of the process so that two
// agents never share it.
#pragma once

#include <string>

#include "chitty/base/fd.hpp"
#include "chitty/base/result.hpp"

namespace chitty::app {

class StateDir {
 public:
  // Creates the directory (0700) if missing, refuses one that other users
  // could write to, and takes an exclusive flock on `<dir>/agent.lock`
  // (recording our pid in it). Fails if another process holds the lock.
  [[nodiscard]] static Result<StateDir> open(const std::string& path);

  StateDir(StateDir&& o) noexcept = default;
  StateDir& operator=(StateDir&&) = delete;
  StateDir(const StateDir&) = delete;
  StateDir& operator=(const StateDir&) = delete;
  ~StateDir() = default;  // closing the lock's descriptor releases the lock

  const std::string& path() const noexcept { return path_; }

 private:
  StateDir(std::string path, UniqueFd lock) : path_(std::move(path)), lock_(std::move(lock)) {}
  std::string path_;
  UniqueFd lock_;
};

}  // namespace chitty::app
