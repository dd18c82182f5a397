// The per-service rate limit as requests meet it (docs/policy.md, "Rate
// limits"): each request takes a token from its service's bucket, or from
// the one bucket that callers no [[service]] matches share. The broker
// charges retrievals; the API charges the routes that do not retrieve and
// the callers the broker would refuse anyway (api::admit).
//
// Thread: loop thread only.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "chitty/base/clock.hpp"
#include "chitty/identity/identity.hpp"
#include "chitty/policy/rate_limiter.hpp"
#include "chitty/policy/rules.hpp"

namespace chitty::policy {

class Gate {
 public:
  // Why a request was held back, for the rate_limited answer.
  struct Limited {
    std::string message;   // "rate limit of 100/1h for service \"app\" reached; retry in 36s"
    Duration retry_after;  // until a token is back
  };

  Gate(const Rules& rules, const Clock& clock) : rules_(rules), clock_(clock) {}
  Gate(const Gate&) = delete;
  Gate& operator=(const Gate&) = delete;

  // Takes one token from `caller`'s bucket; what held it back when empty.
  [[nodiscard]] std::optional<Limited> take(const identity::Identity& caller);
  // Requests held back since start (metrics).
  std::uint64_t limited() const noexcept { return limited_; }

 private:
  const Rules& rules_;
  const Clock& clock_;
  RateLimiter limiter_;
  std::uint64_t limited_ = 0;
};

}  // namespace chitty::policy
