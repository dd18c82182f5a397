// What each service will read next, learnt from what it has read: its
// start-up set, co-access pairs and periodic references (docs/prediction.md).
// The model holds references (cache keys) and counts only, never a value.
// Pure: time comes from the injected clock; nothing here fetches — the
// prefetcher (prefetcher.hpp) acts on what it predicts, within its budgets.
//
// Thread: loop thread only.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "chitty/base/clock.hpp"
#include "chitty/base/result.hpp"

namespace chitty::predict {

// Why a value is fetched ahead of need. Names: model.cpp, in this order.
enum class Kind : std::uint8_t { refresh, startup, coaccess, periodic };
std::string_view kind_name(Kind k) noexcept;  // "refresh-ahead", "start-up", "co-access", "periodic"

struct Options {
  // A service's start-up set: what it reads within `startup_window` of
  // starting (a new pid of the service, or its first read since the agent
  // started). A reference belongs to the set when it was read in at least
  // `startup_min_share` of the service's last `startup_runs` start-ups.
  Duration startup_window = std::chrono::seconds(10);
  std::size_t startup_runs = 8;
  double startup_min_share = 0.5;
  // Co-access: after A, the same service reads B within `coaccess_window`.
  // B is predicted after A when that happened at least `coaccess_min_count`
  // times and in at least `coaccess_min_probability` of A's reads.
  Duration coaccess_window = std::chrono::seconds(5);
  std::uint32_t coaccess_min_count = 2;
  double coaccess_min_probability = 0.6;
  // Periodicity: a reference read on a clock. Learnt from the last
  // `period_intervals` intervals as a grid that at least
  // `period_min_intervals` + 1 episodes lie on, each within
  // `period_tolerance` (a fraction) of the period (model.cpp, fit_period;
  // docs/prediction.md); periods outside [period_min, period_max] are not
  // learnt. Reads closer together than coaccess_window count as one.
  std::size_t period_intervals = 8;
  std::size_t period_min_intervals = 3;
  double period_tolerance = 0.03;
  Duration period_min = std::chrono::seconds(1);
  Duration period_max = std::chrono::hours(24);
  // Bounds on what is learnt: services, references per service, successors
  // per reference. Past them the least recently read are forgotten.
  std::size_t max_services = 256;
  std::size_t max_refs_per_service = 512;
  std::size_t max_successors = 8;
};

// A reference to fetch ahead of a read expected at `due` (monotonic; now for
// start-up and co-access predictions).
struct Prediction {
  std::string ref;
  Kind kind;
  MonoTime due;
  double confidence;  // 0..1: the share of the evidence that supports it
  std::string service;  // whose read it is (set by due(); observe()'s are the observed service's)
};

// What insights/{service} shows of the model.
struct Insights {
  struct Pair {
    std::string from, to;
    double probability;
    std::uint32_t count;
  };
  struct Period {
    std::string ref;
    Duration period;
    WallTime next_due;
  };
  std::vector<std::string> startup_set;  // ordered by share, then name
  std::uint32_t startups_seen = 0;
  std::vector<Pair> top_pairs;           // by probability, then count; at most 10
  std::vector<Period> periods;           // by next due
  std::vector<Prediction> next;          // what is predicted next (periodic, soonest first; at most 10)
};

class Model {
 public:
  Model(Options options, const Clock& clock);

  // `service` read `ref` (a cache key) from process `pid` (0: unknown). A new
  // pid of the service (or its first read since the agent started) begins a
  // start-up. Returns what to fetch ahead because of this read: the start-up
  // set when this read begins a start-up (less `ref`), and the co-access
  // successors of `ref`.
  std::vector<Prediction> observe(std::string_view service, std::string_view ref, std::int64_t pid);

  // The periodic reads expected from now to now + horizon, soonest first.
  std::vector<Prediction> due(Duration horizon) const;
  // Whether some service reads `ref` periodically (its period learnt); its
  // next expected read then, the soonest over services.
  std::optional<MonoTime> next_periodic_read(std::string_view ref) const;
  // Whether `service` reads `ref` after another reference often enough that
  // the pair is learnt (co-access): it is then fetched when the other is read.
  bool follows(std::string_view service, std::string_view ref) const;
  // The share of `service`'s episodes of `ref` that came right after a read
  // of a reference it follows (a learnt pair, as in follows()): the largest
  // over those references of the pair's count over the episodes of `ref`.
  // Near 1 when `ref` is read (almost) only right after another reference,
  // whose read then fetches it ahead; 0 when it follows none.
  double brought_share(std::string_view service, std::string_view ref) const;
  // The median of the kept intervals between `service`'s episodes of `ref`;
  // none before it has two episodes.
  std::optional<Duration> typical_interval(std::string_view service, std::string_view ref) const;
  // How `service` reads `ref` between episodes: the mean of the kept
  // intervals (the rate of a reference read at random), and its last read.
  // None before it has two episodes.
  struct Rhythm {
    Duration mean{0};
    std::size_t intervals = 0;  // kept
    MonoTime last_read{};
  };
  std::optional<Rhythm> rhythm(std::string_view service, std::string_view ref) const;

  // A service's start-up set (for warming the cache when the agent starts).
  std::vector<std::string> startup_set(std::string_view service) const;
  std::vector<std::string> services() const;
  Insights insights(std::string_view service) const;

  void set_options(Options o);  // a reload; what was learnt is kept
  const Options& options() const noexcept { return options_; }

  // The model as text (docs/prediction.md, "The model file"): references,
  // counts and wall-clock times, no values. parse() refuses text that is not
  // in that format, naming the line; it does not check any MAC (the caller
  // does, around it). Last-read times are kept as wall time, so periods
  // carry across a restart.
  std::string serialize() const;
  [[nodiscard]] Result<void> parse(std::string_view text);

 private:
  struct State;
  Options options_;
  const Clock& clock_;
  std::shared_ptr<State> state_;
};

}  // namespace chitty::predict
