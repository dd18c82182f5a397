#include "chitty/predict/prefetcher.hpp"

#include <algorithm>

#include "chitty/base/random.hpp"
#include "chitty/log/log.hpp"

namespace chitty::predict {
namespace {

constexpr Duration kMinute = std::chrono::minutes(1);

std::size_t index(Kind k) noexcept { return static_cast<std::size_t>(k); }
// A value read mostly right after another reference (its brought share,
// Model::brought_share) is fetched by that reference's reads.
constexpr double kBroughtShare = 0.7;
// An unread value is refreshed only for a reference whose rate is known
// from this many intervals ...
constexpr std::size_t kRateIntervals = 3;
// ... and only until the silence since its last read is this many mean
// intervals: reads at the learnt rate leave so long a silence less than
// once in a hundred times (e^-4.6), so the reads have most likely stopped.
constexpr double kSilenceMeans = 4.6;

}  // namespace

Prefetcher::Prefetcher(Model& model, broker::Broker& broker, audit::Recorder& audit, const Clock& clock,
                       PrefetchOptions options)
    : model_(model), broker_(broker), audit_(audit), clock_(clock), options_(options), jitter_(random_unit) {
  minute_start_ = clock_.now();
  fetches_at_minute_[0] = broker_.fetches_started();
  minutes_seen_ = 1;
}

Prefetcher::~Prefetcher() = default;

MonoTime Prefetcher::mono_of(WallTime t) const { return clock_.now() - (clock_.wall_now() - t); }

std::uint64_t Prefetcher::upstream_reads_last_hour() const noexcept {
  std::uint64_t oldest = minutes_seen_ <= fetches_at_minute_.size()
                             ? fetches_at_minute_[0]
                             : fetches_at_minute_[minutes_seen_ % fetches_at_minute_.size()];
  return broker_.fetches_started() - oldest;
}

std::optional<MonoTime> Prefetcher::on_read(const broker::Read& r) {
  if (!options_.enabled) return std::nullopt;
  std::optional<MonoTime> scheduled;
  if (r.cache != broker::CacheState::miss) {
    if (auto it = issued_.find(r.ref); it != issued_.end()) {
      ++counts_[index(it->second.kind)].used;
      issued_.erase(it);
    }
  }
  // A value served fresh (the miss that fetched it included) is due for a
  // refresh before it expires; whether it is refreshed then is decided then
  // (worth_refreshing()). Not while the upstream is unavailable: a stale
  // value is what bridges the outage. `reads` counts the reads after the
  // fetch.
  if (r.cache == broker::CacheState::hit || r.cache == broker::CacheState::miss) {
    Refresh& rf = refreshes_[r.key];
    if (rf.value_fetched != r.fetched_at || rf.ref.empty()) {
      const MonoTime fetched = mono_of(r.fetched_at);
      const Duration ttl = r.expires_at - r.fetched_at;
      const double share = std::clamp(options_.refresh_at - options_.refresh_jitter * jitter_(), 0.0, 1.0);
      rf = Refresh{r.service, r.ref, r.fetched_at,
                   fetched + std::chrono::duration_cast<Duration>(ttl * share), fetched + ttl, 0};
      scheduled = rf.at;
    }
    if (r.cache == broker::CacheState::hit) ++rf.reads;
  }
  const MonoTime now = clock_.now();
  for (const Prediction& p : model_.observe(r.service, r.ref, r.pid)) {
    const Duration within = p.kind == Kind::startup ? model_.options().startup_window : model_.options().coaccess_window;
    ahead(p.kind, r.service, p.ref, now + within);
  }
  return scheduled;
}

void Prefetcher::tick() {
  const MonoTime now = clock_.now();
  if (now - minute_start_ >= kMinute) {
    minute_start_ = now;
    minute_count_ = 0;
    minute_per_service_.clear();
    fetches_at_minute_[minutes_seen_ % fetches_at_minute_.size()] = broker_.fetches_started();
    ++minutes_seen_;
    flush_audit();
  }
  if (!options_.enabled) return;

  std::vector<Refresh> due;
  for (auto it = refreshes_.begin(); it != refreshes_.end();) {
    if (it->second.at > now) {
      ++it;
      continue;
    }
    if (it->second.fresh_until > now) due.push_back(std::move(it->second));
    it = refreshes_.erase(it);
  }
  for (const Refresh& rf : due) {
    // A periodic reference is fetched just before its next read instead:
    // refreshing it on every TTL would fetch it more often than it is read.
    if (model_.next_periodic_read(rf.ref)) continue;
    if (!worth_refreshing(rf)) continue;
    ahead(Kind::refresh, rf.service, rf.ref, rf.fresh_until + std::chrono::milliseconds(1),
          rf.fresh_until - mono_of(rf.value_fetched));
  }

  for (const Prediction& p : model_.due(options_.periodic_lead)) {
    MonoTime& asked = periodic_asked_[{p.service, p.ref}];
    if (asked == p.due) continue;
    asked = p.due;
    ahead(Kind::periodic, p.service, p.ref, p.due + options_.periodic_lead);
  }
  for (auto it = periodic_asked_.begin(); it != periodic_asked_.end();) {
    it = it->second + kMinute < now ? periodic_asked_.erase(it) : std::next(it);
  }

  for (auto it = issued_.begin(); it != issued_.end();) {
    if (now < it->second.expires) {
      ++it;
      continue;
    }
    ++counts_[index(it->second.kind)].wasted;
    it = issued_.erase(it);
  }
}

bool Prefetcher::worth_refreshing(const Refresh& rf) const {
  const MonoTime now = clock_.now();
  const bool brought = model_.brought_share(rf.service, rf.ref) >= kBroughtShare;
  const auto rhythm = model_.rhythm(rf.service, rf.ref);
  // Brought by another reference's read, and not being read right now (its
  // episode is over): that read fetches it again when it is wanted —
  // a refresh now would most often be fetched again or expire first.
  if (brought && rhythm && now - rhythm->last_read >= model_.options().coaccess_window) return false;
  // Read twice or more since its fetch: being read.
  if (rf.reads >= 2) return true;
  if (brought) return false;
  const Duration ttl = rf.fresh_until - mono_of(rf.value_fetched);
  // Read once in a TTL: refreshed only when the service reads it about that
  // often or more (otherwise the refresh most likely expires unread).
  if (rf.reads == 1) {
    const auto typical = model_.typical_interval(rf.service, rf.ref);
    return typical && *typical <= ttl;
  }
  // Not read since its fetch: a reference read at random at a learnt rate
  // of one episode a TTL or more is kept fresh — the chance that a read
  // comes within the next TTL does not fall because none came in the last
  // one — until so long a silence that its reads have most likely stopped.
  if (!rhythm || rhythm->intervals < kRateIntervals || rhythm->mean > ttl) return false;
  return now - rhythm->last_read <= std::chrono::duration_cast<Duration>(rhythm->mean * kSilenceMeans);
}

MonoTime Prefetcher::next_tick() const {
  MonoTime next = minute_start_ + kMinute;
  if (!options_.enabled) return next;
  for (const auto& [key, rf] : refreshes_) next = std::min(next, rf.at);
  // Every periodic read still expected (none is further off than the
  // longest period), less those already fetched ahead of.
  for (const Prediction& p : model_.due(model_.options().period_max)) {
    auto asked = periodic_asked_.find({p.service, p.ref});
    if (asked == periodic_asked_.end() || asked->second != p.due) next = std::min(next, p.due - options_.periodic_lead);
  }
  return next;
}

void Prefetcher::warm() {
  if (!options_.enabled) return;
  const MonoTime needed = clock_.now() + model_.options().startup_window;
  for (const std::string& service : model_.services()) {
    for (const std::string& ref : model_.startup_set(service)) ahead(Kind::startup, service, ref, needed);
  }
}

bool Prefetcher::within_budget(const std::string& service) {
  if (minute_count_ >= options_.max_per_minute) return false;
  if (minute_per_service_[service] >= options_.max_per_service_per_minute) return false;
  return upstream_reads_last_hour() < options_.upstream_reads_per_hour;
}

void Prefetcher::ahead(Kind kind, const std::string& service, const std::string& ref, MonoTime needed_at,
                       std::optional<Duration> ttl) {
  Counts& counts = counts_[index(kind)];
  if (!within_budget(service)) {
    ++counts.skipped;
    return;
  }
  // The budget is taken before the broker is asked (a fetch may complete
  // before fetch_ahead returns) and given back when nothing was fetched.
  ++minute_count_;
  ++minute_per_service_[service];
  std::weak_ptr<bool> alive = alive_;
  auto key = std::make_shared<std::string>();  // the cache key, told to the audit hook
  auto audit = [this, kind, &service, key](const std::string& k) {
    *key = k;
    return record(kind, service, k);
  };
  broker_.fetch_ahead(service, ref, needed_at, audit, [this, alive, kind, service, ref, key, ttl](broker::Ahead a) {
    if (alive.expired()) return;
    Counts& c = counts_[index(kind)];
    switch (a) {
      case broker::Ahead::fetched:
        ++c.issued;
        // A value the cache did not keep cannot be read: wasted at the next
        // tick. One fetched ahead before and replaced unread was wasted.
        if (auto before = issued_.find(ref); before != issued_.end()) ++counts_[index(before->second.kind)].wasted;
        issued_[ref] = Issued{kind, broker_.fresh_until(*key).value_or(clock_.now())};
        // A refreshed value is itself refreshed, read or not, while a read
        // of it is still expected (worth_refreshing()).
        if (ttl) {
          if (auto until = broker_.fresh_until(*key)) {
            const MonoTime fetched = *until - *ttl;
            const double share =
                std::clamp(options_.refresh_at - options_.refresh_jitter * jitter_(), 0.0, 1.0);
            refreshes_[*key] = Refresh{service, ref, clock_.wall_now() - (clock_.now() - fetched),
                                       fetched + std::chrono::duration_cast<Duration>(*ttl * share), *until, 0};
          }
        }
        return;
      case broker::Ahead::failed:
        ++c.issued;
        ++c.failed;
        return;
      case broker::Ahead::unaudited:
        ++c.skipped;
        [[fallthrough]];
      case broker::Ahead::fresh:
      case broker::Ahead::in_flight:
      case broker::Ahead::not_allowed:
      case broker::Ahead::revoked:
      case broker::Ahead::no_upstream:
        if (minute_count_ > 0) --minute_count_;
        if (auto it = minute_per_service_.find(service); it != minute_per_service_.end() && it->second > 0) {
          --it->second;
        }
        return;
    }
  });
}

bool Prefetcher::record(Kind kind, const std::string& service, const std::string& ref) {
  const WallTime at = clock_.wall_now();
  if (audit_this_minute_ < options_.audit_events_per_minute) {
    audit::Event e;
    e.kind = audit::Kind::prefetch;
    e.at = at;
    e.action = std::string(kind_name(kind));
    e.service = service;
    e.ref = ref;
    e.decision = audit::Decision::allow;
    e.mode = cache::mode_name(broker_.mode());
    if (auto ok = audit_.record(e); !ok) {
      static log::Throttle throttle(5, std::chrono::seconds(60));
      if (throttle.allow(clock_.now())) {
        log::error("predict", "prefetch event not recorded: not fetched", {{"reason", ok.error().message}});
      }
      return false;
    }
    ++audit_this_minute_;
    return true;
  }
  std::optional<audit::Event>& agg = aggregates_[index(kind)];
  if (!agg) {
    agg.emplace();
    agg->kind = audit::Kind::prefetch;
    agg->action = std::string(kind_name(kind));
    agg->decision = audit::Decision::allow;
    agg->service = service;
    agg->count = 0;
    agg->first_at = at;
    agg->reason = "prefetches beyond " + std::to_string(options_.audit_events_per_minute) +
                  " in a minute, counted into one event";
  }
  ++agg->count;
  agg->last_at = at;
  if (agg->service != service) agg->service.clear();
  if (agg->refs.size() < audit::kAggregateRefs && std::find(agg->refs.begin(), agg->refs.end(), ref) == agg->refs.end()) {
    agg->refs.push_back(ref);
  }
  return true;
}

void Prefetcher::flush_audit() {
  audit_this_minute_ = 0;
  for (std::optional<audit::Event>& agg : aggregates_) {
    if (!agg) continue;
    agg->at = clock_.wall_now();
    agg->mode = cache::mode_name(broker_.mode());
    if (auto ok = audit_.record(*agg); !ok) {
      log::error("predict", "aggregate prefetch event not recorded", {{"count", agg->count}, {"reason", ok.error().message}});
    }
    agg.reset();
  }
}

}  // namespace chitty::predict
