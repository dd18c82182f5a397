// Completing a fetch on a later loop turn (the Provider contract).
#pragma once

#include "chitty/loop/task_queue.hpp"
#include "chitty/upstream/provider.hpp"

namespace chitty::upstream {

// Runs done(result) from the loop, after the caller has returned. If the
// queue is closed (shutdown) the result is wiped and `done` never runs.
void complete_later(loop::TaskQueue& tasks, FetchDone done, FetchResult result);

}  // namespace chitty::upstream
