#include "chitty/policy/rate_limiter.hpp"

#include <algorithm>
#include <cmath>

namespace chitty::policy {

void RateLimiter::refill(Bucket& b, const Rate& limit, MonoTime now) {
  double capacity = static_cast<double>(limit.count);
  if (b.limit != limit) {
    b.limit = limit;
    b.tokens = std::min(b.tokens, capacity);
  }
  if (now > b.last) {
    double per_ns = capacity / static_cast<double>(limit.period.count());
    b.tokens = std::min(capacity, b.tokens + per_ns * static_cast<double>((now - b.last).count()));
    b.last = now;
  }
}

RateLimiter::Verdict RateLimiter::take(const std::string& key, const Rate& limit, MonoTime now) {
  auto [it, fresh] = buckets_.try_emplace(key);
  Bucket& b = it->second;
  if (fresh) {
    b.tokens = static_cast<double>(limit.count);
    b.last = now;
    b.limit = limit;
  }
  refill(b, limit, now);
  Verdict v;
  if (b.tokens >= 1.0) {
    b.tokens -= 1.0;
    v.remaining = b.tokens;
    return v;
  }
  v.allowed = false;
  double per_ns = static_cast<double>(limit.count) / static_cast<double>(limit.period.count());
  v.retry_after = Duration(static_cast<Duration::rep>(std::ceil((1.0 - b.tokens) / per_ns)));
  v.remaining = b.tokens;
  return v;
}

double RateLimiter::level(const std::string& key, const Rate& limit, MonoTime now) const {
  auto it = buckets_.find(key);
  if (it == buckets_.end()) return static_cast<double>(limit.count);
  Bucket b = it->second;
  refill(b, limit, now);
  return b.tokens;
}

}  // namespace chitty::policy
