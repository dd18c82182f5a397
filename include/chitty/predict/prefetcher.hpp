// Acts on the model: fetches ahead of need through the broker, within
// budgets, and refreshes what is being read before it expires
// (docs/prediction.md). Every prefetch is an audit event (kind prefetch);
// past `audit_events_per_minute` in a minute they are counted into one
// event per kind.
//
// Thread: loop thread only. Time comes from the injected clock; the root
// calls tick() at next_tick() (and at least every second).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "chitty/audit/audit.hpp"
#include "chitty/base/clock.hpp"
#include "chitty/broker/broker.hpp"
#include "chitty/predict/model.hpp"

namespace chitty::predict {

struct PrefetchOptions {
  bool enabled = true;
  // Refresh-ahead: a value being read is fetched again at `refresh_at` of
  // its TTL, less up to `refresh_jitter` of it (uniformly, so that agents
  // do not ask the upstream all at once). Not a periodic reference (fetched
  // before its next read instead), nor one another reference's read brings
  // between its episodes; a value read once or not at all since its fetch
  // only when the service reads it often enough (docs/prediction.md).
  double refresh_at = 0.95;
  double refresh_jitter = 0.05;
  // A periodic read's value is fetched this long before the read is due.
  Duration periodic_lead = std::chrono::seconds(5);
  // Budgets: prefetches started per minute, all services and per service;
  // and the upstream's reads per hour (callers' fetches included), past
  // which nothing is fetched ahead.
  std::uint32_t max_per_minute = 600;
  std::uint32_t max_per_service_per_minute = 120;
  std::uint32_t upstream_reads_per_hour = 1000;
  std::uint32_t audit_events_per_minute = 60;
};

class Prefetcher {
 public:
  // What happened to prefetches, by kind (metrics).
  struct Counts {
    std::uint64_t issued = 0;   // fetches started
    std::uint64_t used = 0;     // a later read was served the prefetched value
    std::uint64_t wasted = 0;   // it expired before anybody read it
    std::uint64_t failed = 0;   // the upstream did not give it
    std::uint64_t skipped = 0;  // a budget said no
  };

  Prefetcher(Model& model, broker::Broker& broker, audit::Recorder& audit, const Clock& clock,
             PrefetchOptions options);
  ~Prefetcher();
  Prefetcher(const Prefetcher&) = delete;
  Prefetcher& operator=(const Prefetcher&) = delete;

  // A value the broker served to a caller (wired to Broker::on_read).
  // Returns the refresh point it scheduled, if it scheduled one (the root
  // sets its timer no later than that; nothing else this does is due
  // within the second).
  std::optional<MonoTime> on_read(const broker::Read& read);
  // Refreshes and periodic prefetches that are due; rolls the budgets and
  // the audit window; counts what went unused.
  void tick();
  // Agent start: every known service's start-up set, so that a restarted
  // agent has them before the first request.
  void warm();
  // When tick() next has something to do: the soonest refresh point,
  // periodic prefetch or budget minute (the root's timer is set to it).
  MonoTime next_tick() const;

  void set_options(PrefetchOptions o) { options_ = o; }
  const PrefetchOptions& options() const noexcept { return options_; }
  // For tests: the [0, 1) draw behind the jitter (default: the kernel's).
  void set_jitter_source(std::function<double()> f) { jitter_ = std::move(f); }

  const Counts& counts(Kind k) const noexcept { return counts_[static_cast<std::size_t>(k)]; }
  // Budget state (insights, metrics).
  std::uint64_t upstream_reads_last_hour() const noexcept;

 private:
  struct Refresh {
    std::string service;
    std::string ref;
    WallTime value_fetched{};
    MonoTime at{};           // when to refresh
    MonoTime fresh_until{};  // of the value in hand
    std::uint32_t reads = 0; // of the value in hand
  };
  struct Issued {
    Kind kind;
    MonoTime expires;  // of the value fetched: unread by then, it was wasted
  };

  // `ttl`: of the value a refresh replaces; the new one is scheduled for its
  // own refresh.
  void ahead(Kind kind, const std::string& service, const std::string& ref, MonoTime needed_at,
             std::optional<Duration> ttl = std::nullopt);
  bool within_budget(const std::string& service);
  // At its refresh point (not a periodic reference): whether the value is
  // fetched again — being read, read at a learnt steady rate, and not left
  // to the reference that brings it (docs/prediction.md, "Refresh-ahead").
  bool worth_refreshing(const Refresh& rf) const;
  // Records a prefetch about to start (or counts it into the minute's
  // aggregate); false when the audit trail did not take it.
  bool record(Kind kind, const std::string& service, const std::string& ref);
  void flush_audit();
  MonoTime mono_of(WallTime t) const;

  Model& model_;
  broker::Broker& broker_;
  audit::Recorder& audit_;
  const Clock& clock_;
  PrefetchOptions options_;
  std::function<double()> jitter_;
  std::array<Counts, 4> counts_{};

  std::unordered_map<std::string, Refresh> refreshes_;  // by cache key
  std::unordered_map<std::string, Issued> issued_;      // by reference: prefetched, not yet read
  std::map<std::pair<std::string, std::string>, MonoTime> periodic_asked_;  // (service, ref) -> the due asked for

  // Budgets: the minute's prefetches, overall and per service; the
  // upstream's fetch counter at each of the last 60 minutes.
  MonoTime minute_start_{};
  std::uint32_t minute_count_ = 0;
  std::unordered_map<std::string, std::uint32_t> minute_per_service_;
  std::array<std::uint64_t, 60> fetches_at_minute_{};
  std::size_t minutes_seen_ = 0;

  // Audit: events this minute; beyond the cap, one aggregate per kind.
  std::uint32_t audit_this_minute_ = 0;
  std::array<std::optional<audit::Event>, 4> aggregates_{};

  // Fetches outlive nothing: a completion after the prefetcher is gone is
  // dropped.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace chitty::predict
