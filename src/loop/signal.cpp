#include "chitty/loop/signal.hpp"

#include <cstdlib>

namespace chitty::loop {

Signal::Signal(Loop& loop, int signum, Callback cb) : cb_(std::move(cb)) {
  if (uv_signal_init(loop.raw(), handle_.get()) != 0) std::abort();
  handle_.get()->data = this;
  if (uv_signal_start(handle_.get(), &Signal::on_signal, signum) != 0) std::abort();
}

void Signal::unref() noexcept {
  if (handle_) uv_unref(handle_.base());
}

void Signal::on_signal(uv_signal_t* s, int signum) noexcept {
  auto* self = static_cast<Signal*>(s->data);
  if (self == nullptr) return;
  Callback cb = self->cb_;  // a copy, so the callback may destroy the Signal
  cb(signum);
}

}  // namespace chitty::loop
