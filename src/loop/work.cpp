#include "chitty/loop/work.hpp"

#include <uv.h>

#include <exception>
#include <utility>

#include "chitty/log/log.hpp"

namespace chitty::loop {
namespace {

// One request: freed in its after-work callback, on the loop thread.
struct Job {
  uv_work_t req{};
  std::function<void()> work;
  std::function<void()> after;
};

void on_work(uv_work_t* req) noexcept {
  auto* job = static_cast<Job*>(req->data);
  try {
    job->work();
  } catch (const std::exception& e) {
    // (Allocation failure on a large read, say.) The completion still runs,
    // with what the work left: nothing.
    log::error("loop", "work on the thread pool failed", {{"error", e.what()}});
  }
}

void on_after(uv_work_t* req, int) noexcept {
  std::unique_ptr<Job> job(static_cast<Job*>(req->data));
  // Also after a cancellation (status UV_ECANCELED, work not run): the
  // completion still runs once, with whatever the work left (nothing).
  if (job->after) job->after();
}

}  // namespace

bool queue_work(Loop& loop, std::function<void()> work, std::function<void()> after) {
  auto job = std::make_unique<Job>();
  job->work = std::move(work);
  job->after = std::move(after);
  job->req.data = job.get();
  if (uv_queue_work(loop.raw(), &job->req, &on_work, &on_after) != 0) return false;
  job.release();  // owned by the request until on_after
  return true;
}

}  // namespace chitty::loop
