// A one-shot or repeating timer owned by one object.
#pragma once

#include <chrono>
#include <functional>

#include "chitty/loop/handle.hpp"
#include "chitty/loop/loop.hpp"

namespace chitty::loop {

class Timer {
 public:
  using Callback = std::function<void()>;

  // The callback runs on the loop thread; it may destroy the Timer.
  Timer(Loop& loop, Callback cb);
  ~Timer() = default;  // the Handle member closes the uv handle

  Timer(const Timer&) = delete;
  Timer& operator=(const Timer&) = delete;

  // (Re)starts: first run after `timeout`, then every `repeat` (0: once).
  void start(std::chrono::milliseconds timeout, std::chrono::milliseconds repeat = std::chrono::milliseconds(0));
  void stop() noexcept;
  bool active() const noexcept;
  // Stops and releases the handle now (e.g. during shutdown); the Timer is
  // unusable afterwards.
  void close() noexcept { handle_.close(); }
  // Lets the loop exit even while this timer is active (uv_unref).
  void unref() noexcept;

 private:
  static void on_timer(uv_timer_t* t) noexcept;

  Handle<uv_timer_t> handle_;
  Callback cb_;
};

}  // namespace chitty::loop
