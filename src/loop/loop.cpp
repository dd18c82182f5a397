#include "chitty/loop/loop.hpp"

#include <cstdlib>
#include <string>

#include "chitty/log/log.hpp"

namespace chitty::loop {

Loop::Loop() {
  if (int rc = uv_loop_init(&loop_); rc != 0) {
    log::error("loop", "uv_loop_init failed", {{"error", uv_strerror(rc)}});
    std::abort();  // cannot run at all; nothing sensible to fall back to
  }
}

Loop::~Loop() {
  if (!closed_) {
    if (auto r = close(); !r) log::error("loop", "event loop closed with handles still open", {{"handles", r.error().message}});
  }
}

void Loop::run() { uv_run(&loop_, UV_RUN_DEFAULT); }

Result<void> Loop::close() {
  if (closed_) return {};
  // Let pending close callbacks run; handles already closed free themselves.
  while (uv_run(&loop_, UV_RUN_NOWAIT) != 0) {
    if (uv_loop_alive(&loop_) == 0) break;
    // Something is still active. Only closing handles are expected here; give
    // them one blocking turn and re-check.
    bool only_closing = true;
    uv_walk(
        &loop_,
        [](uv_handle_t* h, void* arg) {
          if (uv_is_closing(h) == 0) *static_cast<bool*>(arg) = false;
        },
        &only_closing);
    if (!only_closing) break;
    uv_run(&loop_, UV_RUN_ONCE);
  }
  int rc = uv_loop_close(&loop_);
  if (rc == 0) {
    closed_ = true;
    return {};
  }
  std::string open;
  uv_walk(
      &loop_,
      [](uv_handle_t* h, void* arg) {
        auto* s = static_cast<std::string*>(arg);
        if (!s->empty()) *s += ", ";
        *s += uv_handle_type_name(uv_handle_get_type(h));
        if (uv_is_closing(h) != 0) *s += " (closing)";
        if (uv_is_active(h) != 0) *s += " (active)";
      },
      &open);
  return fail("uv_loop_close: " + std::string(uv_strerror(rc)) + ": open handles: " + open);
}

}  // namespace chitty::loop
