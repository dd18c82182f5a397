// A locked arena for the client module's unit tests (falls back to unlocked
// memory where the memlock limit is low).
#pragma once

#include <memory>

#include "chitty/secure/arena.hpp"

namespace chitty::testing {

inline secure::Arena& client_test_arena() {
  static std::unique_ptr<secure::Arena> a = [] {
    secure::ArenaOptions o;
    o.capacity = 1 << 20;
    o.allow_unlocked = true;
    return std::move(*secure::Arena::create(o));
  }();
  return *a;
}

}  // namespace chitty::testing
