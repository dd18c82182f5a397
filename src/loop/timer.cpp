#include "chitty/loop/timer.hpp"

#include <cstdlib>

namespace chitty::loop {

Timer::Timer(Loop& loop, Callback cb) : cb_(std::move(cb)) {
  if (uv_timer_init(loop.raw(), handle_.get()) != 0) std::abort();  // cannot fail on Linux
  handle_.get()->data = this;
}

void Timer::start(std::chrono::milliseconds timeout, std::chrono::milliseconds repeat) {
  if (!handle_) return;
  uv_timer_start(handle_.get(), &Timer::on_timer, static_cast<std::uint64_t>(timeout.count()),
                 static_cast<std::uint64_t>(repeat.count()));
}

void Timer::stop() noexcept {
  if (handle_) uv_timer_stop(handle_.get());
}

bool Timer::active() const noexcept { return handle_ && uv_is_active(handle_.base()) != 0; }

void Timer::unref() noexcept {
  if (handle_) uv_unref(handle_.base());
}

void Timer::on_timer(uv_timer_t* t) noexcept {
  auto* self = static_cast<Timer*>(t->data);
  if (self == nullptr) return;
  // A copy, so the callback may destroy the Timer (and with it cb_).
  Callback cb = self->cb_;
  cb();
}

}  // namespace chitty::loop
