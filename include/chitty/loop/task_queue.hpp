// Work deferred to the loop: post() a task and it runs on the loop thread,
// on a later turn, never inside post() itself. Asynchronous interfaces use it
// so that a completion never runs inside the call that started the work —
// even when the answer was at hand — and callers need not be reentrant.
//
// Thread: post() may be called from any thread; tasks run on the loop thread.
// The queue does not keep the loop alive (whoever waits for a task does).
#pragma once

#include <functional>
#include <mutex>
#include <vector>

#include "chitty/loop/handle.hpp"
#include "chitty/loop/loop.hpp"

namespace chitty::loop {

class TaskQueue {
 public:
  using Task = std::function<void()>;

  explicit TaskQueue(Loop& loop);
  ~TaskQueue() = default;  // pending tasks are destroyed without running
  TaskQueue(const TaskQueue&) = delete;
  TaskQueue& operator=(const TaskQueue&) = delete;

  // Queues `task`; false (and the task is dropped) once the queue is closed
  // — shutdown drops work by design, so callers may ignore it.
  bool post(Task task);
  // Stops running tasks and releases the handle (shutdown). Tasks still
  // queued are destroyed, on this thread, without running.
  void close() noexcept;
  std::size_t pending() const;

 private:
  static void on_async(uv_async_t* a) noexcept;
  void run_pending();

  Handle<uv_async_t> handle_;
  mutable std::mutex mutex_;
  std::vector<Task> tasks_;
  bool closed_ = false;
};

}  // namespace chitty::loop
