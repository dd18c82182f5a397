// Ownership of libuv handles.
//
// The rule (STYLE.md): every uv handle has exactly one owner, and its memory
// is freed only in its close callback. Handle<T> enforces it: the uv struct is
// a separate heap block that the owner never frees itself. Destroying or
// closing the owner calls uv_close(); libuv frees the block later from the
// close callback, so the owner may die at any time, even from inside one of
// the handle's own callbacks.
//
// Callbacks find their owner through handle->data. close() replaces it (with
// nullptr, or with the on_closed callback for the close callback's own use),
// and libuv delivers no handle callback after uv_close() other than the close
// callback itself. Requests on the handle (writes, shutdowns) carry their own
// data and are completed with UV_ECANCELED before the close callback runs.
//
// Thread: loop thread only.
#pragma once

#include <uv.h>

#include <functional>
#include <utility>

namespace chitty::loop {

template <typename T>
class Handle {
 public:
  Handle() : h_(new T{}) {}
  ~Handle() { close(); }

  Handle(const Handle&) = delete;
  Handle& operator=(const Handle&) = delete;
  Handle(Handle&& other) noexcept : h_(std::exchange(other.h_, nullptr)) {}
  Handle& operator=(Handle&& other) noexcept {
    if (this != &other) {
      close();
      h_ = std::exchange(other.h_, nullptr);
    }
    return *this;
  }

  T* get() const noexcept { return h_; }
  uv_handle_t* base() const noexcept { return reinterpret_cast<uv_handle_t*>(h_); }
  uv_stream_t* stream() const noexcept { return reinterpret_cast<uv_stream_t*>(h_); }
  explicit operator bool() const noexcept { return h_ != nullptr; }

  // Detaches the handle from its owner and starts closing it. `on_closed`, if
  // given, runs from the close callback after the memory is freed: the place
  // for an owner that itself must outlive the handle (a connection) to be
  // released. Idempotent. A handle that was never initialised is freed at
  // once, and `on_closed` then runs synchronously, before close() returns.
  void close(std::function<void()> on_closed = {}) noexcept {
    T* h = std::exchange(h_, nullptr);
    if (h == nullptr) return;
    auto* base_handle = reinterpret_cast<uv_handle_t*>(h);
    if (base_handle->type == UV_UNKNOWN_HANDLE) {  // uv_*_init never ran
      delete h;
      if (on_closed) on_closed();
      return;
    }
    base_handle->data = on_closed ? new std::function<void()>(std::move(on_closed)) : nullptr;
    uv_close(base_handle, &Handle::on_close);
  }

 private:
  static void on_close(uv_handle_t* handle) noexcept {
    auto* callback = static_cast<std::function<void()>*>(handle->data);
    delete reinterpret_cast<T*>(handle);
    if (callback != nullptr) {
      (*callback)();
      delete callback;
    }
  }

  T* h_;
};

}  // namespace chitty::loop
