// The event loop: one per process, run on the main thread.
#pragma once

#include <uv.h>

#include "chitty/base/clock.hpp"
#include "chitty/base/result.hpp"

namespace chitty::loop {

class Loop {
 public:
  Loop();
  ~Loop();  // closes the loop if close() was not called (and logs leftovers)

  Loop(const Loop&) = delete;
  Loop& operator=(const Loop&) = delete;

  uv_loop_t* raw() noexcept { return &loop_; }

  // Runs until no active handle or request is left, or stop() is called.
  void run();
  void stop() noexcept { uv_stop(&loop_); }

  // Runs the loop until every closing handle has finished closing, then
  // uv_loop_close(). Fails (and names the handle types still open) if some
  // owner forgot to close a handle: that is a bug, asserted by tests.
  [[nodiscard]] Result<void> close();

 private:
  uv_loop_t loop_{};
  bool closed_ = false;
};

}  // namespace chitty::loop
