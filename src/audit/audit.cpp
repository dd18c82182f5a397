#include "chitty/audit/audit.hpp"

#include "chitty/log/log.hpp"

#include <algorithm>

namespace chitty::audit {

std::string_view decision_name(Decision d) noexcept { return d == Decision::allow ? "allow" : "deny"; }

Result<void> MemoryRecorder::record(const Event& event) {
  if (capacity_ == 0) return fail("the audit recorder holds no events");
  if (events_.size() == capacity_) events_.pop_front();
  events_.push_back(event);
  ++recorded_;
  log::debug("audit", "decision", {{"request_id", event.request_id}, {"service", event.service},
                                   {"ref", event.ref}, {"decision", decision_name(event.decision)},
                                   {"code", event.code}, {"cache", event.cache}, {"source", event.source}});
  return {};
}

std::vector<Event> MemoryRecorder::query(const Query& q) const {
  std::vector<Event> out;
  for (auto it = events_.rbegin(); it != events_.rend() && out.size() < q.limit; ++it) {
    if (q.service && it->service != *q.service) continue;
    if (q.since && it->at < *q.since) break;  // events are in time order
    out.push_back(*it);
  }
  std::reverse(out.begin(), out.end());
  return out;
}

std::vector<Event> MemoryRecorder::recent(std::size_t limit) const {
  std::size_t n = std::min(limit, events_.size());
  return {events_.end() - static_cast<std::ptrdiff_t>(n), events_.end()};
}

}  // namespace chitty::audit
