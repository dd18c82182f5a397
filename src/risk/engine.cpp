#include "chitty/risk/engine.hpp"

#include <algorithm>
#include <deque>
#include <iterator>
#include <limits>
#include <list>
#include <map>
#include <unordered_map>

#include "chitty/base/enum_names.hpp"
#include "chitty/base/records.hpp"

namespace chitty::risk {
namespace {

constexpr std::array<std::string_view, kFactors> kFactorNames{
    "identity_partial", "service_mismatch",      "purpose_not_allowed", "first_access", "new_references",
    "new_executable",   "new_unit",              "new_uid",             "unusual_hour", "unusual_hour_activity",
    "burst",            "enumeration",           "recently_revoked"};
static_assert(names_every(kFactorNames, Factor::recently_revoked));
constexpr std::array<std::string_view, 4> kBandNames{"allow", "monitor", "step_up", "deny"};
static_assert(names_every(kBandNames, Band::deny));
constexpr std::array<std::string_view, 4> kLevelNames{"low", "medium", "high", "critical"};
static_assert(names_every(kLevelNames, Band::deny));

constexpr Duration kMinute = std::chrono::minutes(1);
constexpr std::string_view kHeader = "chitty-risk 1";
// Millisecond times the file may hold (below year 2255: nanoseconds fit).
constexpr std::uint64_t kMaxMillis = 9'000'000'000'000ULL;
constexpr std::uint64_t kMaxCount = std::uint64_t{1} << 53;

// Look-ups by string_view without building a std::string.
struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
template <typename T>
using StringMap = std::unordered_map<std::string, T, StringHash, std::equal_to<>>;
// Requests one subject's window holds at most (those for a reference new to
// it, or answered not_found/forbidden): a flood is counted as the newest this
// many (enough to see any enumeration threshold crossed).
constexpr std::size_t kWindowCap = 4096;

// A subject's requests within the enumeration window: the distinct
// references among them that were new to it (never served to it before),
// and how many requests were answered not_found/forbidden.
class Window {
 public:
  void expire(MonoTime now, Duration span) {
    while (!entries_.empty() && now - entries_.front().at > span) drop_front();
  }
  // Only what counts is kept: a request for a reference the subject knows,
  // answered, changes neither count (the steady state costs nothing here).
  void add(MonoTime at, std::string_view ref, bool failed, bool fresh) {
    if (!failed && !fresh) return;
    entries_.push_back(Entry{at, fresh ? std::string(ref) : std::string(), failed, fresh});
    if (fresh && ++fresh_refs_[entries_.back().ref] == 1) ++distinct_fresh_;
    failures_ += failed ? 1 : 0;
    while (entries_.size() > kWindowCap) drop_front();
  }
  std::size_t distinct_fresh() const noexcept { return distinct_fresh_; }
  bool holds_fresh(std::string_view ref) const { return fresh_refs_.find(ref) != fresh_refs_.end(); }
  std::uint32_t failures() const noexcept { return failures_; }

 private:
  struct Entry {
    MonoTime at;
    std::string ref;
    bool failed;
    bool fresh;
  };
  void drop_front() {
    const Entry& e = entries_.front();
    if (e.fresh) {
      auto it = fresh_refs_.find(e.ref);
      if (--it->second == 0) {
        fresh_refs_.erase(it);
        --distinct_fresh_;
      }
    }
    failures_ -= e.failed ? 1 : 0;
    entries_.pop_front();
  }
  std::deque<Entry> entries_;
  StringMap<std::uint32_t> fresh_refs_;
  std::size_t distinct_fresh_ = 0;
  std::uint32_t failures_ = 0;
};

// Names a service was seen with (executables, units or uids), the least
// recently seen forgotten past the cap.
class Seen {
 public:
  bool has(std::string_view name) const {
    return std::any_of(names_.begin(), names_.end(), [&](const auto& n) { return n.first == name; });
  }
  void add(std::string_view name, MonoTime now, std::size_t cap) {
    for (auto& n : names_) {
      if (n.first == name) {
        n.second = now;
        return;
      }
    }
    if (cap == 0) return;
    if (names_.size() >= cap) {
      names_.erase(std::min_element(names_.begin(), names_.end(),
                                    [](const auto& a, const auto& b) { return a.second < b.second; }));
    }
    names_.emplace_back(std::string(name), now);
  }

  // Most recently seen first.
  std::vector<std::string> by_recency() const {
    auto sorted = names_;
    std::sort(sorted.begin(), sorted.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
    std::vector<std::string> out;
    for (auto& n : sorted) out.push_back(std::move(n.first));
    return out;
  }

 private:
  std::vector<std::pair<std::string, MonoTime>> names_;
};

struct RefSeen {
  std::uint64_t count = 0;
  MonoTime last{};
};

// One subject: a service (with its baseline), or a caller that is no
// service (windows only), keyed "uid:<n>".
struct Subject {
  bool service = false;
  // The baseline: what the service was served.
  std::optional<WallTime> first_served;
  std::uint64_t served = 0;
  StringMap<RefSeen> refs;
  Seen exes, units, uids;
  std::array<std::uint64_t, 24> hours{};  // served per hour of the day (UTC)
  std::uint32_t peak_minute = 0;          // most requests in one minute that was not a burst
  // The short windows.
  std::deque<std::pair<MonoTime, std::string>> novel;  // references asked while new to it (novelty window)
  std::deque<MonoTime> odd;                            // requests at unusual hours (odd-hours window)
  MonoTime minute_start{};
  std::uint32_t minute_count = 0;
  std::uint32_t previous_minute = 0;  // the count of the minute before, when it was the one just before
  std::uint32_t ordinary_in_minute = 0;  // of this minute's requests, those served unflagged
  bool burst_in_minute = false;          // a request of this minute came in a burst
  Window window;
  std::list<const std::string*>::iterator lru;
};

int hour_of(WallTime t) {
  const auto hours = std::chrono::duration_cast<std::chrono::hours>(t.time_since_epoch()).count();
  return static_cast<int>(((hours % 24) + 24) % 24);
}

std::string uid_name(std::int64_t uid) { return std::to_string(uid); }

// Every subject, most recently seen first, and the recent revocations.
struct Store {
  std::map<std::string, Subject, std::less<>> subjects;
  std::list<const std::string*> lru;  // front: most recently seen
  StringMap<MonoTime> revoked;

  Subject* find(std::string_view key) {
    auto it = subjects.find(key);
    return it == subjects.end() ? nullptr : &it->second;
  }
  // A service is found by its name as it is (no key built for it).
  Subject* find_for(const Request& r);
  Subject& get_for(const Request& r, const Options& o);
  Subject& get(std::string_view key, bool service, const Options& o) {
    auto it = subjects.find(key);
    if (it != subjects.end()) {
      lru.splice(lru.begin(), lru, it->second.lru);
      return it->second;
    }
    while (!subjects.empty() && subjects.size() >= std::max<std::size_t>(o.max_services, 1)) {
      subjects.erase(subjects.find(*lru.back()));
      lru.pop_back();
    }
    it = subjects.emplace(std::string(key), Subject{}).first;
    it->second.service = service;
    lru.push_front(&it->first);
    it->second.lru = lru.begin();
    return it->second;
  }
  // A subject read back from the file, older than every one so far.
  Subject& add_oldest(const std::string& key) {
    auto it = subjects.emplace(key, Subject{}).first;
    lru.push_back(&it->first);
    it->second.lru = std::prev(lru.end());
    return it->second;
  }
  void trim(std::size_t max) {
    while (!subjects.empty() && subjects.size() > max) {
      subjects.erase(subjects.find(*lru.back()));
      lru.pop_back();
    }
  }
};

// The key of a caller that is no service ("uid:1001").
std::string subject_key(const Request& r) {
  return r.uid ? "uid:" + std::to_string(*r.uid) : std::string("uid:unknown");
}

Subject* Store::find_for(const Request& r) {
  return r.service.empty() ? find(subject_key(r)) : find(r.service);
}

Subject& Store::get_for(const Request& r, const Options& o) {
  if (!r.service.empty()) {
    if (auto it = subjects.find(r.service); it != subjects.end()) {
      lru.splice(lru.begin(), lru, it->second.lru);
      return it->second;
    }
    return get(r.service, true, o);
  }
  return get(subject_key(r), false, o);
}

}  // namespace

std::string_view factor_name(Factor f) noexcept { return name_of(kFactorNames, f); }
std::string_view band_name(Band b) noexcept { return name_of(kBandNames, b); }
std::string_view level_name(Band b) noexcept { return name_of(kLevelNames, b); }

bool is_soft(Factor f) noexcept {
  switch (f) {
    case Factor::first_access:
    case Factor::new_references:
    case Factor::new_executable:
    case Factor::new_unit:
    case Factor::new_uid:
    case Factor::unusual_hour:
    case Factor::unusual_hour_activity:
    case Factor::burst:
      return true;
    default:
      return false;
  }
}

Band band_of(int score) noexcept {
  if (score >= 70) return Band::deny;
  if (score >= 50) return Band::step_up;
  if (score >= 30) return Band::monitor;
  return Band::allow;
}

struct Engine::State : Store {};

namespace {

bool learning(const Subject* s, WallTime now, const Options& o) {
  if (o.learning_requests == 0 && o.learning_period <= Duration::zero()) return false;  // learning is off
  if (s == nullptr || !s->service || !s->first_served) return true;
  return s->served < o.learning_requests || now - *s->first_served < o.learning_period;
}

double burst_limit(const Subject& s, const Options& o) {
  return std::max<double>(o.burst_min, o.burst_factor * s.peak_minute);
}

// The subject's minute moves on. Its peak learns from the requests served
// unflagged in a minute with no burst — not from what abuse sent, even under
// the limit. (A burst split over two minutes is still one: the count is over
// the last sixty seconds, see last_minute.) Once the service has learnt, its
// peak grows by at most half in a minute: a burst that began late in a
// minute, too few in it to be one, does not lift the bar above itself.
void roll_minute(Subject& s, MonoTime now, bool learning) {
  if (now - s.minute_start < kMinute) return;
  if (!s.burst_in_minute) {
    const std::uint32_t cap = learning ? s.ordinary_in_minute : s.peak_minute + s.peak_minute / 2 + 1;
    s.peak_minute = std::max(s.peak_minute, std::min(s.ordinary_in_minute, cap));
  }
  s.previous_minute = now - s.minute_start < 2 * kMinute ? s.minute_count : 0;
  s.minute_start = now - (now - s.minute_start) % kMinute;
  s.minute_count = 0;
  s.ordinary_in_minute = 0;
  s.burst_in_minute = false;
}

// Requests in the last sixty seconds, estimated from this minute's count and
// the share of the minute before that is still within them.
double last_minute(const Subject& s, MonoTime now) {
  const Duration into = now - s.minute_start;
  if (into >= 2 * kMinute) return 0;
  if (into >= kMinute) return s.minute_count * (1.0 - std::chrono::duration<double>(into - kMinute) / kMinute);
  return s.minute_count + s.previous_minute * (1.0 - std::chrono::duration<double>(into) / kMinute);
}

// Whether `at` falls in an hour of the day holding under unusual_hour_share
// of what the service was served.
bool unusual_hour(const Subject& s, WallTime at, const Options& o) {
  std::uint64_t total = 0;
  for (std::uint64_t h : s.hours) total += h;
  const auto here = static_cast<double>(s.hours[static_cast<std::size_t>(hour_of(at))]);
  return total > 0 && here < o.unusual_hour_share * static_cast<double>(total);
}

// Distinct references in `novel` other than `ref`.
std::size_t other_novel(const Subject& s, std::string_view ref) {
  std::vector<std::string_view> seen;
  for (const auto& [at, r] : s.novel) {
    if (r != ref && std::find(seen.begin(), seen.end(), r) == seen.end()) seen.push_back(r);
  }
  return seen.size();
}

void expire_windows(Subject& s, MonoTime now, const Options& o) {
  s.window.expire(now, o.enumeration_window);
  while (!s.novel.empty() && (now - s.novel.front().first > o.novelty_window || s.novel.size() > 64)) s.novel.pop_front();
  while (!s.odd.empty() && (now - s.odd.front() > o.odd_hours_window || s.odd.size() > 64)) s.odd.pop_front();
}


}  // namespace

Engine::Engine(Options options, const Clock& clock)
    : options_(std::move(options)), clock_(clock), state_(std::make_unique<State>()) {}

Engine::~Engine() = default;

void Engine::set_options(Options o) { options_ = std::move(o); }

Assessment Engine::assess(const Request& r) {
  const MonoTime now = r.at != MonoTime{} ? r.at : clock_.now();
  const WallTime wall = r.wall_at != WallTime{} ? r.wall_at : clock_.wall_now();
  const Options& o = options_;
  Subject* s = state_->find_for(r);
  if (s != nullptr) expire_windows(*s, now, o);
  // Whether the subject's baseline has this reference (one look-up).
  const bool ref_known = s != nullptr && s->service && s->refs.find(r.ref) != s->refs.end();

  Assessment a;
  a.at = now;
  a.wall_at = wall;
  a.learning = !r.service.empty() && learning(s, wall, o);
  auto fire = [&](Factor f) {
    const int w = std::clamp(o.weights[static_cast<std::size_t>(f)], 0, 100);
    a.fired.push_back(Fired{f, is_soft(f) && a.learning ? 0 : w});
  };

  if (r.identity_partial) fire(Factor::identity_partial);
  if (r.service_mismatch) fire(Factor::service_mismatch);
  if (r.purpose_not_allowed) fire(Factor::purpose_not_allowed);
  // The baseline's factors: only for a service (a caller that is none has
  // no history to differ from).
  if (!r.service.empty()) {
    const bool known = s != nullptr && s->served > 0;
    const bool fresh = !known || !ref_known;
    if (fresh) fire(Factor::first_access);
    if (fresh && known && other_novel(*s, r.ref) + 1 >= o.novelty_refs) fire(Factor::new_references);
    if (!r.exe.empty() && (!known || !s->exes.has(r.exe))) fire(Factor::new_executable);
    if (!r.unit.empty() && (!known || !s->units.has(r.unit))) fire(Factor::new_unit);
    if (r.uid && (!known || !s->uids.has(uid_name(*r.uid)))) fire(Factor::new_uid);
    if (known && !a.learning && wall - *s->first_served >= o.hours_learning_period && unusual_hour(*s, wall, o)) {
      fire(Factor::unusual_hour);
      if (s->odd.size() + 1 >= o.odd_hours_requests) fire(Factor::unusual_hour_activity);
    }
    if (s != nullptr) {
      if (last_minute(*s, now) + 1 > burst_limit(*s, o)) fire(Factor::burst);
    }
  }
  if (s != nullptr) {
    // Many references new to the caller (all are, to a caller that is no
    // service; a learning service's are not judged) or many failures.
    bool many = s->window.failures() >= o.enumeration_failures;
    if (!a.learning) {
      const bool fresh = !ref_known;
      const std::size_t distinct = s->window.distinct_fresh() + (fresh && !s->window.holds_fresh(r.ref) ? 1 : 0);
      many = many || (fresh && distinct >= o.enumeration_refs);
    }
    if (many) fire(Factor::enumeration);
  }
  if (auto it = state_->revoked.find(r.ref); it != state_->revoked.end() && now - it->second <= o.revoked_within) {
    fire(Factor::recently_revoked);
  }

  int score = 0;
  for (const Fired& f : a.fired) score += f.weight;
  a.score = std::min(score, 100);
  a.band = band_of(a.score);
  return a;
}

void Engine::record(const Request& r, Outcome outcome) { record_at(r, outcome, clock_.now(), clock_.wall_now()); }

void Engine::record(const Request& r, Outcome outcome, const Assessment& a) { record_at(r, outcome, a.at, a.wall_at); }

void Engine::record_at(const Request& r, Outcome outcome, MonoTime now, WallTime wall) {
  const Options& o = options_;
  Subject& s = state_->get_for(r, o);
  // While a service learns, every minute is ordinary: its busiest minute is
  // learnt from its first one (a service busy from its start would
  // otherwise be a "burst" forever, its peak never learnt).
  const bool learning_now = s.service && learning(&s, wall, o);
  roll_minute(s, now, learning_now);
  if (!learning_now && last_minute(s, now) + 1 > burst_limit(s, o)) s.burst_in_minute = true;
  ++s.minute_count;
  if (outcome == Outcome::served) ++s.ordinary_in_minute;
  expire_windows(s, now, o);
  auto ref = s.service ? s.refs.find(r.ref) : s.refs.end();
  const bool fresh = ref == s.refs.end();  // new to it (everything is, to a caller that is no service)
  s.window.add(now, r.ref, outcome == Outcome::not_found || outcome == Outcome::forbidden, fresh);
  if (!s.service) return;
  if (fresh && s.served > 0) s.novel.emplace_back(now, std::string(r.ref));
  if (s.served > 0 && unusual_hour(s, wall, o)) s.odd.push_back(now);
  if (outcome != Outcome::served && outcome != Outcome::monitored) return;

  // Served: when it is active is learnt.
  if (!s.first_served) s.first_served = wall;
  ++s.served;
  s.hours[static_cast<std::size_t>(hour_of(wall))] += 1;
  // Served unflagged: what it reads and who it runs as, too.
  if (outcome != Outcome::served) return;
  if (ref == s.refs.end()) {
    if (o.max_refs_per_service == 0) return;
    if (s.refs.size() >= o.max_refs_per_service) {
      s.refs.erase(std::min_element(s.refs.begin(), s.refs.end(),
                                    [](const auto& x, const auto& y) { return x.second.last < y.second.last; }));
    }
    ref = s.refs.emplace(std::string(r.ref), RefSeen{}).first;
  }
  ++ref->second.count;
  ref->second.last = now;
  if (!r.exe.empty()) s.exes.add(r.exe, now, o.max_callers_per_service);
  if (!r.unit.empty()) s.units.add(r.unit, now, o.max_callers_per_service);
  if (r.uid) s.uids.add(uid_name(*r.uid), now, o.max_callers_per_service);
}

Insight Engine::insight(std::string_view service, std::size_t limit) const {
  Insight out;
  auto it = state_->subjects.find(service);
  if (service.empty() || it == state_->subjects.end() || !it->second.service) return out;
  const Subject& s = it->second;
  out.known = true;
  out.learning = learning(&s, clock_.wall_now(), options_);
  out.first_served = s.first_served;
  out.served = s.served;
  out.peak_minute = s.peak_minute;
  out.hours = s.hours;
  std::vector<const std::pair<const std::string, RefSeen>*> refs;
  for (const auto& e : s.refs) refs.push_back(&e);
  const std::size_t n = std::min(limit, refs.size());
  std::partial_sort(refs.begin(), refs.begin() + static_cast<std::ptrdiff_t>(n), refs.end(), [](auto* x, auto* y) {
    return x->second.count != y->second.count ? x->second.count > y->second.count : x->first < y->first;
  });
  for (std::size_t i = 0; i < n; ++i) out.refs.emplace_back(refs[i]->first, refs[i]->second.count);
  out.exes = s.exes.by_recency();
  out.units = s.units.by_recency();
  out.uids = s.uids.by_recency();
  return out;
}

bool purpose_allowed(const Options& o, std::string_view category, std::string_view purpose) {
  if (purpose.empty() || category.empty()) return true;
  for (const auto& [name, purposes] : o.category_purposes) {
    if (name == category) return std::find(purposes.begin(), purposes.end(), purpose) != purposes.end();
  }
  return true;
}

void Engine::revoked(std::string_view ref) {
  const MonoTime now = clock_.now();
  auto& m = state_->revoked;
  if (auto it = m.find(ref); it != m.end()) {
    it->second = now;
    return;
  }
  if (options_.max_revoked == 0) return;
  if (m.size() >= options_.max_revoked) {
    m.erase(std::min_element(m.begin(), m.end(), [](const auto& x, const auto& y) { return x.second < y.second; }));
  }
  m.emplace(std::string(ref), now);
}

}  // namespace chitty::risk

namespace chitty::risk {
namespace {

std::uint64_t wall_ms(WallTime t) {
  const auto ms = std::chrono::floor<std::chrono::milliseconds>(t.time_since_epoch()).count();
  return ms < 0 ? 0 : static_cast<std::uint64_t>(ms);
}

// Reads a baselines file into `st` (empty on entry). Recency is the order
// written: `now` less one nanosecond per place.
class Reader {
 public:
  Reader(Store& st, MonoTime now, const Options& o) : st_(st), now_(now), o_(o) {}

  Result<void> read(std::string_view text) {
    return read_records(text, kHeader, "baselines file", [this](const RecordLine& line) -> Result<void> {
      if (line.type() == "service") return service(line);
      if (svc_ == nullptr) return tl::unexpected(line.error("a record before any service record"));
      if (line.type() == "hours") return hours(line);
      if (line.type() == "ref") return ref(line);
      if (line.type() == "exe" || line.type() == "unit" || line.type() == "uid") return caller(line);
      return tl::unexpected(line.error("unknown record type"));
    });
  }

 private:
  MonoTime next_place() { return now_ - Duration(++place_); }

  Result<void> service(const RecordLine& line) {
    if (line.size() != 5) {
      return tl::unexpected(line.error("a service record has 4 fields: name first-served served peak-minute"));
    }
    auto name = line.text(1);
    if (!name) return tl::unexpected(name.error());
    if (st_.find(*name) != nullptr) return tl::unexpected(line.error("a second record of the same service"));
    auto first = line.number(2, kMaxMillis);
    if (!first) return tl::unexpected(first.error());
    auto served = line.number(3, kMaxCount);
    if (!served) return tl::unexpected(served.error());
    auto peak = line.number(4, std::numeric_limits<std::uint32_t>::max());
    if (!peak) return tl::unexpected(peak.error());
    if ((*first == 0) != (*served == 0)) {
      return tl::unexpected(line.error("a service served nothing has no first-served time, and only that one"));
    }
    // Written most recently seen first: each goes to the back.
    Subject& s = st_.add_oldest(*name);
    s.service = true;
    if (*first != 0) s.first_served = WallTime(std::chrono::milliseconds(static_cast<std::int64_t>(*first)));
    s.served = *served;
    s.peak_minute = static_cast<std::uint32_t>(*peak);
    svc_ = &s;
    hours_seen_ = false;
    return {};
  }

  Result<void> hours(const RecordLine& line) {
    if (hours_seen_) return tl::unexpected(line.error("a second hours record for the service"));
    if (line.size() != 25) return tl::unexpected(line.error("an hours record has 24 fields, one per hour"));
    std::uint64_t total = 0;
    for (std::size_t h = 0; h < 24; ++h) {
      auto n = line.number(h + 1, kMaxCount);
      if (!n) return tl::unexpected(n.error());
      svc_->hours[h] = *n;
      total += *n;
    }
    if (total > svc_->served) return tl::unexpected(line.error("more requests by hour than the service was served"));
    hours_seen_ = true;
    return {};
  }

  Result<void> ref(const RecordLine& line) {
    if (line.size() != 3) return tl::unexpected(line.error("a ref record has 2 fields: reference count"));
    auto name = line.text(1);
    if (!name) return tl::unexpected(name.error());
    auto count = line.number(2, svc_->served);
    if (!count) return tl::unexpected(count.error());
    if (*count == 0) return tl::unexpected(line.field_error(2, "a zero count"));
    if (svc_->refs.find(*name) != svc_->refs.end()) return tl::unexpected(line.error("a second record of the same ref"));
    if (svc_->refs.size() < o_.max_refs_per_service) svc_->refs.emplace(std::move(*name), RefSeen{*count, next_place()});
    return {};
  }

  Result<void> caller(const RecordLine& line) {
    if (line.size() != 2) return tl::unexpected(line.error("an exe, unit or uid record has 1 field"));
    Seen& seen = line.type() == "exe" ? svc_->exes : line.type() == "unit" ? svc_->units : svc_->uids;
    std::string name;
    if (line.type() == "uid") {
      auto uid = line.signed_number(1);
      if (!uid) return tl::unexpected(uid.error());
      name = uid_name(*uid);
    } else {
      auto text = line.text(1);
      if (!text) return tl::unexpected(text.error());
      name = std::move(*text);
    }
    if (seen.has(name)) return tl::unexpected(line.error("a second record of the same name"));
    seen.add(name, next_place(), o_.max_callers_per_service);
    return {};
  }

  Store& st_;
  MonoTime now_;
  const Options& o_;
  Subject* svc_ = nullptr;
  bool hours_seen_ = false;
  std::int64_t place_ = 0;
};

}  // namespace

std::string Engine::serialize() const {
  std::string out(kHeader);
  out += '\n';
  for (const std::string* key : state_->lru) {
    const Subject& s = state_->subjects.find(*key)->second;
    if (!s.service) continue;
    RecordWriter(out, "service")
        .text(*key)
        .number(s.first_served ? std::max<std::uint64_t>(wall_ms(*s.first_served), 1) : 0)
        .number(s.served)
        .number(s.peak_minute);
    {
      RecordWriter r(out, "hours");
      for (std::uint64_t h : s.hours) r.number(h);
    }
    std::vector<std::pair<const std::string*, const RefSeen*>> refs;
    for (const auto& [ref, seen] : s.refs) refs.emplace_back(&ref, &seen);
    std::sort(refs.begin(), refs.end(), [](const auto& a, const auto& b) { return a.second->last > b.second->last; });
    for (const auto& [ref, seen] : refs) RecordWriter(out, "ref").text(*ref).number(seen->count);
    for (const std::string& e : s.exes.by_recency()) RecordWriter(out, "exe").text(e);
    for (const std::string& u : s.units.by_recency()) RecordWriter(out, "unit").text(u);
    for (const std::string& u : s.uids.by_recency()) RecordWriter(out, "uid").text(u);
  }
  out += "end\n";
  return out;
}

Result<void> Engine::parse(std::string_view text) {
  auto fresh = std::make_unique<State>();
  Reader reader(*fresh, clock_.now(), options_);
  if (auto ok = reader.read(text); !ok) return ok;
  fresh->trim(std::max<std::size_t>(options_.max_services, 1));
  state_ = std::move(fresh);
  return {};
}

}  // namespace chitty::risk
