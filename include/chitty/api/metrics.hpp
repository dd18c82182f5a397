// GET /metrics: the Prometheus text exposition (format 0.0.4). Counters of
// answered requests by route, decision and status; latency histograms by
// route; denials by reason; rate-limit refusals; cache, memory, upstream and
// fallback-mode figures read at scrape time; revocations. Labels hold route
// patterns, error codes, service names and states — never a reference or a
// value.
//
// Thread: loop thread only.
#pragma once

#include "chitty/api/observed.hpp"

#include <array>
#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "chitty/base/clock.hpp"

namespace chitty::server {
class Server;
}
namespace chitty::cache {
class Cache;
}
namespace chitty::secure {
class Arena;
}
namespace chitty::broker {
class Broker;
}
namespace chitty::upstream {
class ConnectProvider;
}
namespace chitty::audit {
class Spool;
class Shipper;
class SpoolRecorder;
}

namespace chitty::api {

class Metrics {
 public:
  // Upper bounds of the latency buckets, in seconds.
  static constexpr std::array<double, 14> kBuckets{0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
                                                   0.025,  0.05,    0.1,    0.25,  0.5,    1.0,  2.5};

  // One answered request: its route pattern ("/api/onepassword/retrieve"),
  // the decision ("allow", "deny", or "none" for routes that decide
  // nothing), the status, the error code when refused ("" otherwise), and
  // how long it took.
  void observe(std::string_view route, std::string_view decision, int status, std::string_view code,
               Duration latency);
  // An emergency revocation made or cleared ("revoke", "clear").
  void revocation(std::string_view action);
  // A request scored `score`, in band `decision` ("allow" ... "deny").
  void risk(int score, std::string_view decision);
  // A request scored in the deny band was alerted.
  void risk_alert() { ++risk_alerts_; }

  // Upper bounds of the risk score buckets: the band edges, and 90.
  static constexpr std::array<int, 5> kRiskBuckets{29, 49, 69, 90, 100};

  // What the gauges read: the agent's parts (observed.hpp).
  using Sources = Observed;

  std::string render(const Sources& s) const;

 private:
  struct Histogram {
    std::array<std::uint64_t, kBuckets.size()> counts{};
    std::uint64_t count = 0;
    double sum = 0;
  };
  // Per route: answers by (decision, status) and the latency histogram.
  // Lookups by string_view: no allocation per request once a route is known.
  struct RouteStats {
    std::map<std::pair<std::string, int>, std::uint64_t, std::less<>> answers;
    Histogram latency;
  };
  std::map<std::string, RouteStats, std::less<>> routes_;
  std::map<std::string, std::uint64_t, std::less<>> denials_;
  std::map<std::string, std::uint64_t, std::less<>> revocations_{{"clear", 0}, {"revoke", 0}};
  std::array<std::uint64_t, 4> risk_bands_{};  // by risk::Band
  std::array<std::uint64_t, kRiskBuckets.size()> risk_buckets_{};
  std::uint64_t risk_count_ = 0;
  std::uint64_t risk_sum_ = 0;
  std::uint64_t risk_alerts_ = 0;
};

}  // namespace chitty::api
