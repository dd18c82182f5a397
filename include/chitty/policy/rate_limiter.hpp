// Token buckets, one per key (a service name; "" for the callers no service
// matches): `count` tokens, refilled continuously at count/period, each
// request taking one. Pure: time comes in as an argument.
//
// Thread: loop thread only.
#pragma once

#include <string>
#include <unordered_map>

#include "chitty/base/clock.hpp"
#include "chitty/base/units.hpp"

namespace chitty::policy {

class RateLimiter {
 public:
  struct Verdict {
    bool allowed = true;
    Duration retry_after{};  // when refused: until one token is back
    double remaining = 0;    // tokens left after this request
  };

  // Takes one token from `key`'s bucket (created full, with `limit`). A
  // changed limit (a reload) keeps the bucket's level, capped to the new
  // size.
  Verdict take(const std::string& key, const Rate& limit, MonoTime now);
  // Tokens in `key`'s bucket now (full for a key never seen).
  double level(const std::string& key, const Rate& limit, MonoTime now) const;
  std::size_t buckets() const noexcept { return buckets_.size(); }

 private:
  struct Bucket {
    double tokens = 0;
    MonoTime last{};
    Rate limit;
  };
  static void refill(Bucket& b, const Rate& limit, MonoTime now);

  std::unordered_map<std::string, Bucket> buckets_;
};

}  // namespace chitty::policy
