// Emergency revocations on disk: <state_dir>/revocations.json, written
// atomically (a temporary file, fsync, rename, fsync of the directory)
// before a revocation is acknowledged, read at start. A file that cannot be
// read or parsed stops the agent from starting (fail closed): it would
// otherwise lift revocations silently.
#pragma once

#include <string>

#include "chitty/base/result.hpp"
#include "chitty/policy/revocations.hpp"

namespace chitty::app {

class RevocationStore {
 public:
  explicit RevocationStore(std::string state_dir);
  // The revocations in force (none when the file does not exist).
  Result<policy::Revocations> load() const;
  Result<void> save(const policy::Revocations& r) const;
  const std::string& path() const noexcept { return path_; }

 private:
  std::string dir_;
  std::string path_;
};

}  // namespace chitty::app
