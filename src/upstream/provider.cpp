#include "chitty/upstream/provider.hpp"

namespace chitty::upstream {

std::string_view fetch_error_name(FetchError e) noexcept {
  switch (e) {
    case FetchError::not_found: return "not_found";
    case FetchError::denied: return "denied";
    case FetchError::unauthorized: return "unauthorized";
    case FetchError::unavailable: return "unavailable";
    case FetchError::rejected: return "rejected";
    case FetchError::no_memory: return "no_memory";
  }
  return "unknown";
}

}  // namespace chitty::upstream

#include "complete_later.hpp"

namespace chitty::upstream {

void complete_later(loop::TaskQueue& tasks, FetchDone done, FetchResult result) {
  // std::function needs a copyable task; the buffer is shared, not copied.
  auto held = std::make_shared<FetchResult>(std::move(result));
  tasks.post([done = std::move(done), held] { done(std::move(*held)); });
}

}  // namespace chitty::upstream
