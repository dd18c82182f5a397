#include "chitty/predict/model.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <deque>
#include <limits>
#include <list>
#include <set>
#include <tuple>
#include <utility>

#include "chitty/base/enum_names.hpp"
#include "chitty/base/records.hpp"
#include "chitty/base/text.hpp"

namespace chitty::predict {

namespace {

constexpr std::array<std::string_view, 4> kKindNames{"refresh-ahead", "start-up", "co-access", "periodic"};
static_assert(names_every(kKindNames, Kind::periodic));

constexpr std::string_view kHeader = "chitty-predict 1";
// The co-access window is scanned on every read: bound it even for a service
// that reads hundreds of references within one window.
constexpr std::size_t kRecentCap = 64;
constexpr std::size_t kTopPairs = 10;
constexpr std::size_t kNextMax = 10;
// Millisecond values the model file may hold: any larger would overflow the
// nanosecond Duration (year 2255 as a wall time).
constexpr std::uint64_t kMaxMillis = 9'000'000'000'000ULL;

using NamePtr = const std::string*;  // a key of a std::map node: stable until erased
using Line = RecordLine;
using Record = RecordWriter;

struct Successor {
  std::string ref;
  std::uint32_t count = 0;
  std::uint32_t counted_in = 0;  // the predecessor's episode it was last counted in (once per episode)
  MonoTime last{};               // when it was last counted: the tie-break for eviction
};

struct RefStats {
  std::uint32_t episodes = 0;
  MonoTime episode_start{};
  MonoTime last_read{};
  std::deque<Duration> intervals;  // between episode starts, oldest first
  std::vector<Successor> successors;
  Duration period{0};  // learnt from `intervals`; zero when none is
  MonoTime beat{};     // the latest episode on the period's grid
  // Without a period: a tentative one, from three episodes a period apart
  // (tentative_period()); zero when none.
  Duration tentative{0};
  MonoTime tentative_beat{};
  std::list<NamePtr>::iterator lru;
};

struct Run {
  MonoTime start{};
  std::vector<std::string> refs;  // in order of first read
};

struct Recent {
  std::string ref;
  MonoTime at;
};

struct ServiceState {
  std::int64_t pid = 0;  // the last known pid; 0 until one is known
  std::uint32_t startups = 0;
  std::deque<Run> runs;  // oldest first; only the newest can still be open
  std::map<std::string, RefStats, std::less<>> refs;
  std::list<NamePtr> lru;                       // front: most recently read
  std::deque<Recent> recent;                    // read within coaccess_window, oldest first
  std::set<std::string, std::less<>> periodic;  // refs whose period is learnt
  std::set<std::string, std::less<>> tentative;  // refs with a tentative period only
  std::list<NamePtr>::iterator lru_pos;         // in Store::lru
};

struct Store {
  std::map<std::string, ServiceState, std::less<>> services;
  std::list<NamePtr> lru;  // front: most recently read
};

Duration scaled(Duration d, double factor) {
  return Duration(static_cast<Duration::rep>(static_cast<double>(d.count()) * factor));
}

// How far past its due time a periodic read is still expected.
Duration slack(const Options& o, Duration period) { return scaled(period, std::clamp(o.period_tolerance, 0.0, 1.0)); }

// A period fitted to a reference's recent episodes: reads on a grid of
// `period` through `beat` (the latest episode on it).
struct Fit {
  Duration period{0};  // zero: none
  Duration age{0};     // of the beat, before the latest episode
};

// The grid through one episode with one candidate period: how many beats of
// it the episodes up to the anchor cover, and how many episodes fall off it.
struct Grid {
  std::size_t beats = 0;      // distinct beats with an episode on them
  std::size_t span = 0;       // beats from the first covered to the anchor, both included
  std::size_t off = 0;        // episodes from the first covered on that are not on a beat
  Duration first_offset{0};   // of the first covered beat's episode, before the anchor
};

Grid grid(const std::vector<Duration>& ago, std::size_t anchor, Duration period, double tolerance) {
  Grid g;
  const double p = static_cast<double>(period.count());
  std::vector<std::int64_t> covered;
  std::size_t first = ago.size();
  for (std::size_t i = 0; i < ago.size(); ++i) {
    const double since = static_cast<double>((ago[i] - ago[anchor]).count());  // >= 0 before the anchor
    const double k = std::round(since / p);
    if (k >= 0 && std::abs(since - k * p) <= tolerance * p) {
      if (std::find(covered.begin(), covered.end(), static_cast<std::int64_t>(k)) == covered.end()) {
        covered.push_back(static_cast<std::int64_t>(k));
      }
      first = std::min(first, i);
    }
  }
  g.beats = covered.size();
  g.span = static_cast<std::size_t>(*std::max_element(covered.begin(), covered.end())) + 1;
  g.first_offset = ago[first] - ago[anchor];
  for (std::size_t i = first; i < ago.size(); ++i) {
    const double since = static_cast<double>((ago[i] - ago[anchor]).count());
    const double k = std::round(since / p);
    if (k < 0 || std::abs(since - k * p) > tolerance * p) ++g.off;
  }
  return g;
}

// Periods are read off a grid rather than off consecutive intervals, so that
// a beat missed (the service was restarting) or a read in between (the same
// reference wanted for another reason) does not hide a job that runs on a
// clock. The anchor is the newest episode or the one before it; candidates
// are an older episode's distance before it, divided by the beats it may
// span. A grid counts when at least period_min_intervals + 1 of its beats
// have an episode, at least three in four beats of its span do, and no
// episode falls off it — or, with one more beat than that, no more than a
// third of the beats. The most beats wins, then the newer anchor, then the
// longest span; the period is the span's average, the beat the anchor.
Fit fit_period(const std::deque<Duration>& intervals, const Options& o) {
  if (intervals.size() < o.period_min_intervals) return {};
  // Each episode's distance before the latest one, oldest first — as far
  // back as a grid of at most period_max can reach (twice the beats of the
  // kept intervals): older episodes cannot be on one, and summing the
  // intervals of a model file (each up to centuries) must not overflow.
  const auto reach_beats = static_cast<Duration::rep>(2 * o.period_intervals + 2);
  const Duration reach = o.period_max > Duration::max() / (2 * reach_beats) ? Duration::max() / 2
                                                                             : o.period_max * reach_beats;
  std::vector<Duration> ago{Duration(0)};
  for (std::size_t i = intervals.size(); i-- > 0 && intervals[i] <= reach - ago.back();) {
    ago.push_back(ago.back() + intervals[i]);
  }
  std::reverse(ago.begin(), ago.end());
  if (ago.size() < o.period_min_intervals + 1) return {};
  const double tolerance = std::clamp(o.period_tolerance, 0.0, 0.5);
  Fit best;
  std::size_t best_beats = 0;
  Duration best_offset{0};
  for (std::size_t anchor = ago.size(); anchor-- > 0 && anchor + 2 >= ago.size();) {
    for (std::size_t from = 0; from < anchor; ++from) {
      const Duration distance = ago[from] - ago[anchor];
      // Beats between them: one per episode between, and as many again missed.
      for (std::size_t k = 1; k <= 2 * (anchor - from); ++k) {
        const Duration candidate = distance / static_cast<Duration::rep>(k);
        if (candidate <= Duration(0) || candidate < o.period_min || candidate > o.period_max) continue;
        const Grid g = grid(ago, anchor, candidate, tolerance);
        if (g.span < 2 || g.beats < o.period_min_intervals + 1) continue;
        if (g.beats * 4 < g.span * 3) continue;
        if (g.off > 0 && (g.beats < o.period_min_intervals + 2 || g.off * 3 > g.beats)) continue;
        if (g.beats < best_beats || (g.beats == best_beats && g.first_offset <= best_offset)) continue;
        const Duration period = g.first_offset / static_cast<Duration::rep>(g.span - 1);
        if (period < o.period_min || period > o.period_max) continue;
        best = Fit{period, ago[anchor]};
        best_beats = g.beats;
        best_offset = g.first_offset;
      }
    }
    if (best_beats > 0) break;  // a later anchor is preferred to more beats further back
  }
  return best;
}

// Before a period can be learnt (period_min_intervals + 1 beats), a job
// that runs on a clock has been read at least three times, and each read
// after the first missed when its period is longer than the TTL. A
// tentative period is read off the newest episode and two older ones a
// period apart — each of the two intervals may have one other episode in it
// (a read for another reason) — whose intervals agree within the tolerance.
// It is only fetched ahead of (due()), never taken for a learnt period: a
// reference with one keeps its refresh-ahead, and a wrong guess costs one
// or two fetches (the next beat, and the one after as for a missed run).
Fit tentative_period(const std::deque<Duration>& intervals, const Options& o) {
  // Each episode's distance before the newest, newest first — only as far
  // back as two periods of at most period_max (plus their tolerance) can
  // reach: the intervals of a model file (each up to centuries) must not
  // overflow their sum.
  const Duration reach = o.period_max > Duration::max() / 4 ? Duration::max() / 2 : o.period_max * 3;
  std::vector<Duration> ago{Duration(0)};
  for (std::size_t i = intervals.size(); i-- > 0 && ago.size() < 5 && intervals[i] <= reach - ago.back();) {
    ago.push_back(ago.back() + intervals[i]);
  }
  const double tolerance = std::clamp(o.period_tolerance, 0.0, 0.5);
  for (std::size_t b = 1; b <= 2 && b < ago.size(); ++b) {
    for (std::size_t a = b + 1; a <= b + 2 && a < ago.size(); ++a) {
      const Duration newer = ago[b];
      const Duration older = ago[a] - ago[b];
      const Duration gap = newer > older ? newer - older : older - newer;
      if (static_cast<double>(gap.count()) > tolerance * static_cast<double>(std::max(newer, older).count())) continue;
      const Duration period = ago[a] / 2;
      if (period < o.period_min || period > o.period_max) continue;
      return Fit{period, Duration(0)};
    }
  }
  return {};
}

// Sets `period` and `beat` from `fit`, and lists the reference in `listed`
// while it has one.
void apply_fit(const Fit& fit, MonoTime episode_start, const std::string& name, Duration& period, MonoTime& beat,
               std::set<std::string, std::less<>>& listed) {
  period = fit.period;
  beat = episode_start - fit.age;
  if (period > Duration(0)) {
    listed.insert(name);
  } else {
    listed.erase(name);
  }
}

void update_period(ServiceState& svc, const std::string& name, RefStats& s, const Options& o) {
  apply_fit(fit_period(s.intervals, o), s.episode_start, name, s.period, s.beat, svc.periodic);
  const Fit guess = s.period > Duration(0) ? Fit{} : tentative_period(s.intervals, o);
  apply_fit(guess, s.episode_start, name, s.tentative, s.tentative_beat, svc.tentative);
}

// The next beat of a learnt period still expected at `now`: a beat is
// expected until its tolerance has passed; one missed beat is skipped (a
// restart), two mean the job has stopped.
std::optional<MonoTime> next_beat(Duration period, MonoTime beat, MonoTime now, const Options& o) {
  if (period <= Duration(0)) return std::nullopt;
  const Duration late = slack(o, period);
  for (int k = 1; k <= 2; ++k) {
    const MonoTime at = beat + period * k;
    if (at + late >= now) return at;
  }
  return std::nullopt;
}

std::optional<MonoTime> next_beat(const RefStats& s, MonoTime now, const Options& o) {
  return next_beat(s.period, s.beat, now, o);
}

void evict_ref(ServiceState& svc) {
  const NamePtr victim = svc.lru.back();
  svc.lru.pop_back();
  std::erase_if(svc.recent, [&](const Recent& r) { return r.ref == *victim; });
  svc.periodic.erase(*victim);
  svc.tentative.erase(*victim);
  svc.refs.erase(svc.refs.find(*victim));
}

void evict_service(Store& st) {
  const NamePtr victim = st.lru.back();
  st.lru.pop_back();
  st.services.erase(st.services.find(*victim));
}

// Least counted first; among equals the one counted longest ago.
void evict_successor(RefStats& s) {
  auto victim = std::min_element(s.successors.begin(), s.successors.end(), [](const Successor& a, const Successor& b) {
    return a.count != b.count ? a.count < b.count : a.last < b.last;
  });
  s.successors.erase(victim);
}

// Runs that are over: the newest is still open while its window lasts,
// unless `close_newest` (a new start-up is beginning, which ends it).
std::size_t closed_runs(const ServiceState& svc, MonoTime now, const Options& o, bool close_newest) {
  std::size_t n = svc.runs.size();
  if (!close_newest && n > 0 && now - svc.runs.back().start < o.startup_window) --n;
  return n;
}

// The start-up set with each reference's share, by share then name.
std::vector<std::pair<std::string, double>> startup_shares(const ServiceState& svc, MonoTime now, const Options& o,
                                                           bool close_newest) {
  std::vector<std::pair<std::string, double>> out;
  const std::size_t n = closed_runs(svc, now, o, close_newest);
  if (n == 0) return out;
  std::map<std::string_view, std::size_t> seen;
  for (std::size_t i = 0; i < n; ++i) {
    for (const std::string& r : svc.runs[i].refs) ++seen[r];
  }
  for (const auto& [ref, count] : seen) {
    const double share = static_cast<double>(count) / static_cast<double>(n);
    if (share >= o.startup_min_share) out.emplace_back(std::string(ref), share);
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) {
    return a.second != b.second ? a.second > b.second : a.first < b.first;
  });
  return out;
}

// P(B within the window after an episode of A). An episode of A whose window
// is still open and has not seen B yet is not evidence either way.
double probability(const RefStats& a, const Successor& b, MonoTime now, const Options& o) {
  std::uint32_t n = a.episodes;
  if (n > 0 && now - a.last_read <= o.coaccess_window && b.counted_in != a.episodes) --n;
  if (n == 0) return 0.0;
  return std::min(1.0, static_cast<double>(b.count) / static_cast<double>(n));
}

bool predicted(const Successor& b, double p, const Options& o) {
  return b.count >= o.coaccess_min_count && p >= o.coaccess_min_probability;
}

void count_successor(RefStats& a, std::string_view b, MonoTime now, const Options& o) {
  for (Successor& s : a.successors) {
    if (s.ref != b) continue;
    if (s.counted_in != a.episodes) {
      if (s.count < std::numeric_limits<std::uint32_t>::max()) ++s.count;
      s.counted_in = a.episodes;
      s.last = now;
    }
    return;
  }
  if (o.max_successors == 0) return;
  while (a.successors.size() >= o.max_successors) evict_successor(a);
  a.successors.push_back(Successor{std::string(b), 1, a.episodes, now});
}

// `ref` was read now: one more episode unless it continues the last one,
// a successor of every other reference read within the window.
void learn_read(ServiceState& svc, std::string_view ref, MonoTime now, const Options& o) {
  if (o.max_refs_per_service == 0) return;
  auto it = svc.refs.find(ref);
  const bool fresh = it == svc.refs.end();
  if (fresh) {
    while (svc.refs.size() >= o.max_refs_per_service) evict_ref(svc);
    it = svc.refs.emplace(std::string(ref), RefStats{}).first;
    svc.lru.push_front(&it->first);
    it->second.lru = svc.lru.begin();
  } else {
    svc.lru.splice(svc.lru.begin(), svc.lru, it->second.lru);
  }
  RefStats& s = it->second;

  // `recent` is in order of last read, so the scan stops at the first one
  // older than the window.
  for (auto r = svc.recent.rbegin(); r != svc.recent.rend() && now - r->at <= o.coaccess_window; ++r) {
    if (r->ref == ref) continue;
    auto a = svc.refs.find(r->ref);
    if (a != svc.refs.end()) count_successor(a->second, ref, now, o);
  }

  if (fresh || now - s.last_read >= o.coaccess_window) {
    if (!fresh && now > s.episode_start) {
      s.intervals.push_back(now - s.episode_start);
      while (s.intervals.size() > o.period_intervals) s.intervals.pop_front();
    }
    if (s.episodes < std::numeric_limits<std::uint32_t>::max()) ++s.episodes;
    s.episode_start = now;
    update_period(svc, it->first, s, o);
  }
  s.last_read = now;

  std::erase_if(svc.recent, [&](const Recent& r) { return r.ref == ref; });
  svc.recent.push_back(Recent{std::string(ref), now});
  while (!svc.recent.empty() && (svc.recent.size() > kRecentCap || now - svc.recent.front().at > o.coaccess_window)) {
    svc.recent.pop_front();
  }
}

void begin_run(ServiceState& svc, MonoTime now, const Options& o) {
  if (svc.startups < std::numeric_limits<std::uint32_t>::max()) ++svc.startups;
  if (o.startup_runs == 0) return;
  svc.runs.push_back(Run{now, {}});
  while (svc.runs.size() > o.startup_runs) svc.runs.pop_front();
}

void add_to_run(ServiceState& svc, std::string_view ref, MonoTime now, const Options& o) {
  if (svc.runs.empty()) return;
  Run& run = svc.runs.back();
  if (now - run.start >= o.startup_window || run.refs.size() >= o.max_refs_per_service) return;
  if (std::find(run.refs.begin(), run.refs.end(), ref) == run.refs.end()) run.refs.emplace_back(ref);
}

// Periodic reads of one service due in [now - slack, now + horizon].
// With `tentative`, also those of tentative periods (confidence 0.5).
void collect_due(const std::string& service, const ServiceState& svc, MonoTime now, Duration horizon, const Options& o,
                 std::vector<Prediction>& out, bool tentative = false) {
  for (const std::string& name : svc.periodic) {
    const auto next = next_beat(svc.refs.find(name)->second, now, o);
    if (!next || *next > now + horizon) continue;
    out.push_back(Prediction{name, Kind::periodic, *next, 1.0, service});
  }
  if (!tentative) return;
  for (const std::string& name : svc.tentative) {
    const RefStats& s = svc.refs.find(name)->second;
    const auto next = next_beat(s.tentative, s.tentative_beat, now, o);
    if (!next || *next > now + horizon) continue;
    out.push_back(Prediction{name, Kind::periodic, *next, 0.5, service});
  }
}

void sort_soonest_first(std::vector<Prediction>& out) {
  std::sort(out.begin(), out.end(), [](const Prediction& a, const Prediction& b) {
    return std::tie(a.due, a.service, a.ref) < std::tie(b.due, b.service, b.ref);
  });
}

// Trims everything to the bounds in `o` and relearns the periods under it.
void apply_bounds(Store& st, const Options& o) {
  while (st.services.size() > o.max_services) evict_service(st);
  for (auto& [service, svc] : st.services) {
    while (svc.refs.size() > o.max_refs_per_service) evict_ref(svc);
    while (svc.runs.size() > o.startup_runs) svc.runs.pop_front();
    for (Run& run : svc.runs) {
      if (run.refs.size() > o.max_refs_per_service) run.refs.resize(o.max_refs_per_service);
    }
    for (auto& [name, s] : svc.refs) {
      while (s.intervals.size() > o.period_intervals) s.intervals.pop_front();
      while (s.successors.size() > o.max_successors) evict_successor(s);
      update_period(svc, name, s, o);
    }
  }
}

// --- The model file -------------------------------------------------------

std::uint64_t millis(Duration d) {
  const auto ms = std::chrono::floor<std::chrono::milliseconds>(d).count();
  return ms < 0 ? 0 : static_cast<std::uint64_t>(ms);
}

// Reads the model file into `st` (empty on entry), times converted from the
// wall clock to the monotonic one through `now`/`wall_now`.
class Reader {
 public:
  Reader(Store& st, MonoTime now, WallTime wall_now) : st_(st), now_(now), wall_now_(wall_now) {}

  Result<void> read(std::string_view text) {
    return read_records(text, kHeader, "model file", [this](const Line& line) -> Result<void> {
      if (line.type() == "service") return service(line);
      if (line.type() == "run") return run(line);
      if (line.type() == "ref") return ref(line);
      if (line.type() == "successor") return successor(line);
      return tl::unexpected(line.error("unknown record type"));
    });
  }

 private:
  Result<MonoTime> time(const Line& line, std::size_t i) const {
    auto ms = line.number(i, kMaxMillis);
    if (!ms) return tl::unexpected(ms.error());
    const WallTime wall{std::chrono::milliseconds(static_cast<std::int64_t>(*ms))};
    // A time ahead of the wall clock (it was set back) counts as now.
    return std::min(now_, now_ - (wall_now_ - wall));
  }

  Result<void> service(const Line& line) {
    if (line.size() != 4) return tl::unexpected(line.error("a service record has 3 fields: name pid startups"));
    auto name = line.text(1);
    if (!name) return tl::unexpected(name.error());
    auto pid = line.signed_number(2);
    if (!pid) return tl::unexpected(pid.error());
    auto startups = line.number(3, std::numeric_limits<std::uint32_t>::max());
    if (!startups) return tl::unexpected(startups.error());
    auto [it, inserted] = st_.services.try_emplace(std::move(*name));
    if (!inserted) return tl::unexpected(line.error("a second record of the same service"));
    st_.lru.push_back(&it->first);  // the file lists services most recently read first
    svc_ = &it->second;
    svc_->lru_pos = std::prev(st_.lru.end());
    svc_->pid = *pid;
    svc_->startups = static_cast<std::uint32_t>(*startups);
    ref_ = nullptr;
    return {};
  }

  Result<void> run(const Line& line) {
    if (svc_ == nullptr) return tl::unexpected(line.error("a run record before any service record"));
    if (line.size() < 2) return tl::unexpected(line.error("a run record has its start time and then its references"));
    auto start = time(line, 1);
    if (!start) return tl::unexpected(start.error());
    if (!svc_->runs.empty() && *start < svc_->runs.back().start) {
      return tl::unexpected(line.error("run records must be oldest first"));
    }
    Run r{*start, {}};
    std::set<std::string, std::less<>> seen;
    for (std::size_t i = 2; i < line.size(); ++i) {
      auto ref = line.text(i);
      if (!ref) return tl::unexpected(ref.error());
      if (!seen.insert(*ref).second) return tl::unexpected(line.field_error(i, "a repeated reference"));
      r.refs.push_back(std::move(*ref));
    }
    svc_->runs.push_back(std::move(r));
    ref_ = nullptr;
    return {};
  }

  Result<void> ref(const Line& line) {
    if (svc_ == nullptr) return tl::unexpected(line.error("a ref record before any service record"));
    if (line.size() < 5) {
      return tl::unexpected(line.error("a ref record has at least 4 fields: name episodes episode-start last-read"));
    }
    auto name = line.text(1);
    if (!name) return tl::unexpected(name.error());
    auto episodes = line.number(2, std::numeric_limits<std::uint32_t>::max());
    if (!episodes) return tl::unexpected(episodes.error());
    if (*episodes == 0) return tl::unexpected(line.field_error(2, "zero episodes"));
    auto episode_start = time(line, 3);
    if (!episode_start) return tl::unexpected(episode_start.error());
    auto last_read = time(line, 4);
    if (!last_read) return tl::unexpected(last_read.error());
    if (*last_read < *episode_start) return tl::unexpected(line.error("the last read is before its episode's start"));
    RefStats s;
    s.episodes = static_cast<std::uint32_t>(*episodes);
    s.episode_start = *episode_start;
    s.last_read = *last_read;
    for (std::size_t i = 5; i < line.size(); ++i) {
      auto ms = line.number(i, kMaxMillis);
      if (!ms) return tl::unexpected(ms.error());
      if (*ms == 0) return tl::unexpected(line.field_error(i, "a zero interval"));
      s.intervals.push_back(std::chrono::milliseconds(static_cast<std::int64_t>(*ms)));
    }
    auto [it, inserted] = svc_->refs.try_emplace(std::move(*name), std::move(s));
    if (!inserted) return tl::unexpected(line.error("a second record of the same reference"));
    svc_->lru.push_back(&it->first);  // most recently read first
    it->second.lru = std::prev(svc_->lru.end());
    ref_ = &*it;
    return {};
  }

  Result<void> successor(const Line& line) {
    if (ref_ == nullptr) return tl::unexpected(line.error("a successor record not after a ref record"));
    if (line.size() != 3) return tl::unexpected(line.error("a successor record has 2 fields: name count"));
    auto name = line.text(1);
    if (!name) return tl::unexpected(name.error());
    RefStats& a = ref_->second;
    auto count = line.number(2, a.episodes);
    if (!count) return tl::unexpected(count.error());
    if (*count == 0) return tl::unexpected(line.field_error(2, "a zero count"));
    if (*name == ref_->first) return tl::unexpected(line.error("a reference cannot succeed itself"));
    for (const Successor& s : a.successors) {
      if (s.ref == *name) return tl::unexpected(line.error("a second record of the same successor"));
    }
    // Counted in the current episode: a read of it right after the restart
    // is not counted twice.
    a.successors.push_back(Successor{std::move(*name), static_cast<std::uint32_t>(*count), a.episodes, a.last_read});
    return {};
  }

  Store& st_;
  MonoTime now_;
  WallTime wall_now_;
  ServiceState* svc_ = nullptr;
  std::pair<const std::string, RefStats>* ref_ = nullptr;
};

}  // namespace

std::string_view kind_name(Kind k) noexcept { return name_of(kKindNames, k); }

struct Model::State : Store {};

Model::Model(Options options, const Clock& clock)
    : options_(std::move(options)), clock_(clock), state_(std::make_shared<State>()) {}

std::vector<Prediction> Model::observe(std::string_view service, std::string_view ref, std::int64_t pid) {
  std::vector<Prediction> out;
  // An empty name could not be written to the model file; nothing reads one.
  if (service.empty() || ref.empty() || options_.max_services == 0) return out;
  const MonoTime now = clock_.now();
  Store& st = *state_;

  auto it = st.services.find(service);
  bool startup = false;
  if (it == st.services.end()) {
    while (st.services.size() >= options_.max_services) evict_service(st);
    it = st.services.try_emplace(std::string(service)).first;
    st.lru.push_front(&it->first);
    it->second.lru_pos = st.lru.begin();
    startup = true;
  } else {
    // A pid of 0 is unknown: it neither begins a start-up nor replaces the
    // last known pid; the first known pid is adopted without one.
    startup = pid != 0 && it->second.pid != 0 && pid != it->second.pid;
    st.lru.splice(st.lru.begin(), st.lru, it->second.lru_pos);
  }
  ServiceState& svc = it->second;
  if (pid != 0) svc.pid = pid;

  if (startup) {
    for (auto& [r, share] : startup_shares(svc, now, options_, true)) {
      if (r != ref) out.push_back(Prediction{std::move(r), Kind::startup, now, share, std::string(service)});
    }
    begin_run(svc, now, options_);
  }
  add_to_run(svc, ref, now, options_);

  // Co-access from what was learnt before this read.
  if (auto a = svc.refs.find(ref); a != svc.refs.end()) {
    const std::size_t first = out.size();
    for (const Successor& b : a->second.successors) {
      const double p = probability(a->second, b, now, options_);
      if (!predicted(b, p, options_)) continue;
      const bool dup = std::any_of(out.begin(), out.end(), [&](const Prediction& x) { return x.ref == b.ref; });
      if (!dup) out.push_back(Prediction{b.ref, Kind::coaccess, now, p, std::string(service)});
    }
    std::sort(out.begin() + static_cast<std::ptrdiff_t>(first), out.end(),
              [](const Prediction& x, const Prediction& y) {
                return x.confidence != y.confidence ? x.confidence > y.confidence : x.ref < y.ref;
              });
  }

  learn_read(svc, ref, now, options_);
  return out;
}

std::vector<Prediction> Model::due(Duration horizon) const {
  const MonoTime now = clock_.now();
  std::vector<Prediction> out;
  for (const auto& [name, svc] : state_->services) {
    collect_due(name, svc, now, horizon, options_, out, true);
  }
  sort_soonest_first(out);
  return out;
}

std::optional<MonoTime> Model::next_periodic_read(std::string_view ref) const {
  const MonoTime now = clock_.now();
  std::optional<MonoTime> soonest;
  for (const auto& [name, svc] : state_->services) {
    auto it = svc.refs.find(ref);
    if (it == svc.refs.end()) continue;
    const auto next = next_beat(it->second, now, options_);
    if (next && (!soonest || *next < *soonest)) soonest = next;
  }
  return soonest;
}

bool Model::follows(std::string_view service, std::string_view ref) const {
  auto it = state_->services.find(service);
  if (it == state_->services.end()) return false;
  const MonoTime now = clock_.now();
  for (const auto& [name, a] : it->second.refs) {
    if (name == ref) continue;
    for (const Successor& b : a.successors) {
      if (b.ref == ref && predicted(b, probability(a, b, now, options_), options_)) return true;
    }
  }
  return false;
}

double Model::brought_share(std::string_view service, std::string_view ref) const {
  auto it = state_->services.find(service);
  if (it == state_->services.end()) return 0.0;
  auto b = it->second.refs.find(ref);
  if (b == it->second.refs.end() || b->second.episodes == 0) return 0.0;
  const MonoTime now = clock_.now();
  std::uint32_t most = 0;
  for (const auto& [name, a] : it->second.refs) {
    if (name == ref) continue;
    for (const Successor& s : a.successors) {
      if (s.ref == ref && predicted(s, probability(a, s, now, options_), options_)) most = std::max(most, s.count);
    }
  }
  return std::min(1.0, static_cast<double>(most) / static_cast<double>(b->second.episodes));
}

std::optional<Duration> Model::typical_interval(std::string_view service, std::string_view ref) const {
  auto it = state_->services.find(service);
  if (it == state_->services.end()) return std::nullopt;
  auto r = it->second.refs.find(ref);
  if (r == it->second.refs.end() || r->second.intervals.empty()) return std::nullopt;
  std::vector<Duration> v(r->second.intervals.begin(), r->second.intervals.end());
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(v.size() / 2), v.end());
  return v[v.size() / 2];
}

std::optional<Model::Rhythm> Model::rhythm(std::string_view service, std::string_view ref) const {
  auto it = state_->services.find(service);
  if (it == state_->services.end()) return std::nullopt;
  auto r = it->second.refs.find(ref);
  if (r == it->second.refs.end() || r->second.intervals.empty()) return std::nullopt;
  // The mean of intervals that may each be centuries long (a model file's):
  // summed in long double, so it cannot overflow; it is at most the longest.
  long double sum = 0;
  for (Duration d : r->second.intervals) sum += static_cast<long double>(d.count());
  const auto mean = static_cast<Duration::rep>(sum / static_cast<long double>(r->second.intervals.size()));
  return Rhythm{Duration(mean), r->second.intervals.size(), r->second.last_read};
}

std::vector<std::string> Model::startup_set(std::string_view service) const {
  std::vector<std::string> out;
  auto it = state_->services.find(service);
  if (it == state_->services.end()) return out;
  for (auto& [ref, share] : startup_shares(it->second, clock_.now(), options_, false)) out.push_back(std::move(ref));
  return out;
}

std::vector<std::string> Model::services() const {
  std::vector<std::string> out;
  out.reserve(state_->services.size());
  for (const auto& [name, svc] : state_->services) out.push_back(name);
  return out;
}

Insights Model::insights(std::string_view service) const {
  Insights in;
  auto it = state_->services.find(service);
  if (it == state_->services.end()) return in;
  const ServiceState& svc = it->second;
  const MonoTime now = clock_.now();
  const WallTime wall_now = clock_.wall_now();

  for (auto& [ref, share] : startup_shares(svc, now, options_, false)) in.startup_set.push_back(std::move(ref));
  in.startups_seen = svc.startups;

  for (const auto& [from, a] : svc.refs) {
    for (const Successor& b : a.successors) {
      const double p = probability(a, b, now, options_);
      if (predicted(b, p, options_)) in.top_pairs.push_back(Insights::Pair{from, b.ref, p, b.count});
    }
  }
  std::sort(in.top_pairs.begin(), in.top_pairs.end(), [](const Insights::Pair& x, const Insights::Pair& y) {
    if (x.probability != y.probability) return x.probability > y.probability;
    if (x.count != y.count) return x.count > y.count;
    return std::tie(x.from, x.to) < std::tie(y.from, y.to);
  });
  if (in.top_pairs.size() > kTopPairs) in.top_pairs.resize(kTopPairs);

  Duration longest{0};
  for (const std::string& ref : svc.periodic) {
    const RefStats& s = svc.refs.find(ref)->second;
    const MonoTime next = next_beat(s, now, options_).value_or(s.beat + s.period);
    in.periods.push_back(Insights::Period{ref, s.period, wall_now - (now - next)});
    longest = std::max(longest, s.period);
  }
  std::sort(in.periods.begin(), in.periods.end(), [](const Insights::Period& x, const Insights::Period& y) {
    return std::tie(x.next_due, x.ref) < std::tie(y.next_due, y.ref);
  });

  collect_due(it->first, svc, now, longest, options_, in.next);
  sort_soonest_first(in.next);
  if (in.next.size() > kNextMax) in.next.resize(kNextMax);
  return in;
}

void Model::set_options(Options o) {
  options_ = std::move(o);
  apply_bounds(*state_, options_);
}

std::string Model::serialize() const {
  const MonoTime now = clock_.now();
  const WallTime wall_now = clock_.wall_now();
  auto wall_ms = [&](MonoTime t) { return millis((wall_now - (now - t)).time_since_epoch()); };

  std::string out(kHeader);
  out += '\n';
  for (NamePtr service : state_->lru) {
    const ServiceState& svc = state_->services.find(*service)->second;
    Record(out, "service").text(*service).signed_number(svc.pid).number(svc.startups);
    for (const Run& run : svc.runs) {
      Record r(out, "run");
      r.number(wall_ms(run.start));
      for (const std::string& ref : run.refs) r.text(ref);
    }
    for (NamePtr ref : svc.lru) {
      const RefStats& s = svc.refs.find(*ref)->second;
      {
        Record r(out, "ref");
        r.text(*ref).number(s.episodes).number(wall_ms(s.episode_start)).number(wall_ms(s.last_read));
        for (Duration d : s.intervals) r.number(std::max<std::uint64_t>(millis(d), 1));
      }
      for (const Successor& b : s.successors) Record(out, "successor").text(b.ref).number(b.count);
    }
  }
  out += "end\n";
  return out;
}

Result<void> Model::parse(std::string_view text) {
  auto fresh = std::make_shared<State>();
  Reader reader(*fresh, clock_.now(), clock_.wall_now());
  if (auto r = reader.read(text); !r) return r;
  apply_bounds(*fresh, options_);
  state_ = std::move(fresh);
  return {};
}

}  // namespace chitty::predict
