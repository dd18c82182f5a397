// Work off the loop thread: run_in_pool() runs a function on libuv's thread
// pool and hands its result to a completion on the loop thread, so that a
// slow read (a query over the whole audit spool) never stalls the loop.
//
// The work function runs on a pool thread: it may read files and compute,
// and must not touch anything the loop thread owns (capture copies). The
// completion runs on the loop thread, exactly once, even at shutdown (the
// request keeps the loop alive until then), so it must check that what it
// answers still exists — as server::Call does by itself.
#pragma once

#include <functional>
#include <memory>
#include <optional>

#include "chitty/loop/loop.hpp"

namespace chitty::loop {

// The untyped core: `work` on the pool, then `after` on the loop. False
// (nothing queued, neither runs) only if libuv refuses the request.
[[nodiscard]] bool queue_work(Loop& loop, std::function<void()> work, std::function<void()> after);

// `work()` on the pool, `done(result)` on the loop (T{} should the work not
// have run). If the work cannot be
// queued it runs here, on the loop thread, and `done` runs before this
// returns (a slow answer rather than none).
template <typename T>
void run_in_pool(Loop& loop, std::function<T()> work, std::function<void(T)> done) {
  auto result = std::make_shared<std::optional<T>>();
  auto shared_work = std::make_shared<std::function<T()>>(std::move(work));
  bool queued = queue_work(
      loop, [result, shared_work] { result->emplace((*shared_work)()); },
      [result, done] { done(*result ? std::move(**result) : T{}); });
  if (!queued) done((*shared_work)());
}

}  // namespace chitty::loop
