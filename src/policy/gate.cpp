#include "chitty/policy/gate.hpp"

#include "chitty/base/units.hpp"

namespace chitty::policy {

std::optional<Gate::Limited> Gate::take(const identity::Identity& caller) {
  const Service* service = rules_.service_of(caller);
  const std::string key = service != nullptr ? service->name : std::string();
  const Rate& limit = service != nullptr ? service->rate_limit : rules_.policy().unknown_callers();
  RateLimiter::Verdict v = limiter_.take(key, limit, clock_.now());
  if (v.allowed) return std::nullopt;
  ++limited_;
  std::string who = service != nullptr ? "service \"" + service->name + "\"" : "callers without a [[service]]";
  return Limited{"rate limit of " + format_rate(limit) + " for " + who + " reached; retry in " +
                     format_duration(std::chrono::ceil<std::chrono::seconds>(v.retry_after)),
                 v.retry_after};
}

}  // namespace chitty::policy
