// Locked memory and the sealing key, made together before any secret
// exists: the agent refuses to start (rather than run unprotected) when it
// cannot lock the memory.
#pragma once

#include <cstddef>
#include <memory>

#include "chitty/base/result.hpp"
#include "chitty/secure/arena.hpp"
#include "chitty/secure/sealer.hpp"

namespace chitty::secure {

struct Vault {
  std::unique_ptr<Arena> arena;
  std::unique_ptr<Sealer> sealer;

  // An arena of `capacity` bytes (locked, unless `allow_unlocked` and
  // locking fails) and a sealer whose key lives in it.
  [[nodiscard]] static Result<Vault> open(std::size_t capacity, bool allow_unlocked);
};

}  // namespace chitty::secure
