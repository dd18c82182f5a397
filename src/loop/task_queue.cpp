#include "chitty/loop/task_queue.hpp"

#include <cstdlib>
#include <utility>

namespace chitty::loop {

TaskQueue::TaskQueue(Loop& loop) {
  if (uv_async_init(loop.raw(), handle_.get(), &TaskQueue::on_async) != 0) std::abort();  // cannot fail on Linux
  handle_.get()->data = this;
  uv_unref(handle_.base());
}

bool TaskQueue::post(Task task) {
  {
    std::lock_guard lock(mutex_);
    if (closed_) return false;
    tasks_.push_back(std::move(task));
  }
  // After close() the handle is gone, but close() runs on the loop thread and
  // sets closed_ first, so a post that got here still sees a live handle as
  // long as posts from other threads stop before close() (the owner's rule).
  uv_async_send(handle_.get());
  return true;
}

void TaskQueue::close() noexcept {
  std::vector<Task> dropped;
  {
    std::lock_guard lock(mutex_);
    closed_ = true;
    dropped.swap(tasks_);
  }
  handle_.close();
  dropped.clear();  // outside the lock: a task's destructor may post
}

std::size_t TaskQueue::pending() const {
  std::lock_guard lock(mutex_);
  return tasks_.size();
}

void TaskQueue::on_async(uv_async_t* a) noexcept {
  auto* self = static_cast<TaskQueue*>(a->data);
  if (self != nullptr) self->run_pending();
}

void TaskQueue::run_pending() {
  // Tasks posted while these run wait for the next turn (uv_async_send from
  // inside the callback schedules another), so a task that re-posts itself
  // cannot starve the loop.
  std::vector<Task> batch;
  {
    std::lock_guard lock(mutex_);
    batch.swap(tasks_);
  }
  for (auto& task : batch) {
    {
      std::lock_guard lock(mutex_);
      if (closed_) return;  // a task closed the queue: the rest are dropped with `batch`
    }
    task();
  }
}

}  // namespace chitty::loop
