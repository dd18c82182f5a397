// A Unix signal delivered on the loop thread (uv_signal), owned by one object.
#pragma once

#include <functional>

#include "chitty/loop/handle.hpp"
#include "chitty/loop/loop.hpp"

namespace chitty::loop {

class Signal {
 public:
  using Callback = std::function<void(int signum)>;

  // Starts watching `signum` at once. The callback may destroy the Signal.
  Signal(Loop& loop, int signum, Callback cb);
  ~Signal() = default;

  Signal(const Signal&) = delete;
  Signal& operator=(const Signal&) = delete;

  void close() noexcept { handle_.close(); }
  // Lets the loop exit while this signal is still watched.
  void unref() noexcept;

 private:
  static void on_signal(uv_signal_t* s, int signum) noexcept;

  Handle<uv_signal_t> handle_;
  Callback cb_;
};

}  // namespace chitty::loop
