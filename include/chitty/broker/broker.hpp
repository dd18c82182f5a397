// The retrieval pipeline, in the order of a decision (STYLE.md): who is
// asking (the attested service) and what for — scored for risk at once,
// before anything else is decided (docs/risk.md) → whether the claimed
// context is theirs → the service's rate limit → the purpose → whether it
// may read this → emergency revocations → the risk band → where the value
// comes from: the cache (HIT, or
// STALE while the upstream is unavailable and the entry is within its
// fallback window), a single-flight fetch (MISS), the env/systemd-credential
// fallbacks — or a refusal. Every answer carries the audit event that
// describes it; the API records it before anything is sent
// (api/credentials.cpp).
//
// Thread: loop thread only.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <tl/expected.hpp>

#include "chitty/audit/audit.hpp"
#include "chitty/base/clock.hpp"
#include "chitty/cache/cache.hpp"
#include "chitty/cache/single_flight.hpp"
#include "chitty/catalog/catalog.hpp"
#include "chitty/catalog/reference.hpp"
#include "chitty/http/errors.hpp"
#include "chitty/identity/identity.hpp"
#include "chitty/policy/policy.hpp"
#include "chitty/policy/gate.hpp"
#include "chitty/policy/revocations.hpp"
#include "chitty/policy/rules.hpp"
#include "chitty/risk/engine.hpp"
#include "chitty/secure/secure_buffer.hpp"
#include "chitty/upstream/provider.hpp"

namespace chitty::broker {

// How often an unresolved revocation is tried again.
inline constexpr Duration kRetryResolution = std::chrono::seconds(30);

// What the X-Chitty-Step-Up header of a request said (the API compares it
// with the calling service's step-up token, in constant time, in place).
enum class StepUp {
  absent,          // no header
  valid,           // the service's step-up token
  wrong,           // another token, or the service has none configured
  unavailable,     // no locked memory to compare right now (neither right nor wrong)
};

// What a client asked for.
struct Ask {
  std::optional<catalog::Reference> ref;  // by reference ...
  std::string credential_type;            // ... or by catalog type
  bool refresh = false;                   // skip the cache (a fetch is forced)
  std::optional<std::string> claimed_service;  // context.service
  std::string purpose;
  std::string environment;
  std::string action = "retrieve";
  bool rate_limited = true;  // takes a token from the service's bucket
  StepUp step_up = StepUp::absent;
};

// A request scored in the deny band, and refused (what the app alerts on).
struct RiskAlert {
  std::string request_id;
  std::string service;  // "" when the caller is no service
  std::int64_t uid = -1;
  std::string ref;      // as the engine saw it (canonical, or "type:NAME")
  std::string code;     // what refused it: "risk_denied", or an earlier refusal ("context_mismatch")
  risk::Assessment assessment;
};

enum class CacheState { hit, stale, miss };  // names: broker.cpp, in this order
std::string_view cache_state_name(CacheState s) noexcept;  // "hit"...
std::string_view cache_header(CacheState s) noexcept;      // "HIT"...

struct Granted {
  std::shared_ptr<const secure::SecureBuffer> value;  // shared by the waiters of one fetch
  std::string ref;  // as the client may see it (display form)
  std::string source;
  CacheState cache = CacheState::miss;
  cache::Mode mode = cache::Mode::normal;
  WallTime fetched_at{};
  WallTime expires_at{};
  Duration age{};
};

struct Refusal {
  http::ErrorCode code;
  std::string message;
  std::optional<Duration> retry_after;  // rate_limited: when a token is back
};

struct Answer {
  tl::expected<Granted, Refusal> outcome;
  audit::Event event;  // decision and code still to be set by whoever records it
};
using Done = std::function<void(Answer)>;

// A value served to a caller: what prediction learns from (never the value).
struct Read {
  std::string service;    // the attested service
  std::string ref;        // the request's reference, canonical(): how the service names it
  std::string key;        // the cache key it was served under
  std::int64_t pid = 0;   // the caller's pid (0: unknown)
  CacheState cache = CacheState::miss;
  WallTime fetched_at{};  // of the value served
  WallTime expires_at{};
};

// What fetch_ahead() did.
enum class Ahead {
  fetched,      // fetched from a primary and cached
  fresh,        // not needed: the cached value stays fresh long enough
  in_flight,    // not needed: a fetch of it is running
  not_allowed,  // the service may not read it (or no such service now)
  revoked,      // under emergency revocation
  failed,       // the upstream did not give it (the cached value, if any, is untouched)
  no_upstream,  // nothing to fetch from (no primaries)
  unaudited,    // the audit trail did not take its event: not fetched
};
std::string_view ahead_name(Ahead a) noexcept;

struct Sources {
  // The upstream proper (1Password Connect: the primary server, then the
  // backup), tried in order; empty when none is configured: the fallbacks
  // are then the only sources, and what they give is cached like an
  // upstream value.
  std::vector<upstream::Provider*> primaries;
  // In order of preference; asked only when every primary is unavailable
  // (never after a 401/403/404) and the catalog entry names a source of
  // their kind.
  std::vector<upstream::Provider*> fallbacks;
};

class Broker {
 public:
  // The catalog and policy are read from `rules` (a new catalog may name a
  // revoked secret by another spelling: its types are checked against the
  // revocations in force, resolve_pending); retrievals take their tokens
  // at `gate`. Both outlive the broker.
  Broker(cache::Cache& cache, Sources sources, policy::Rules& rules, policy::Gate& gate, const Clock& clock);
  ~Broker();
  Broker(const Broker&) = delete;
  Broker& operator=(const Broker&) = delete;

  // The upstream servers, in order (set once at start, before any request).
  void set_primaries(std::vector<upstream::Provider*> primaries) {
    sources_.primaries = std::move(primaries);
    update_mode();
  }

  // Answers `ask` for `caller`: `done` runs exactly once, now (cache hit,
  // refusal) or when a fetch completes.
  void retrieve(identity::Identity caller, Ask ask, const std::string& request_id, Done done);

  // Risk scoring (docs/risk.md): every request is scored by `engine` once
  // the broker knows who asks for what, before any value is unsealed, and
  // the score's band enforced once policy has let it through. Null: no
  // scoring. The engine outlives the broker (or is unset first).
  void set_risk(risk::Engine* engine) { risk_ = engine; }
  risk::Engine* risk() const noexcept { return risk_; }
  // Called for every request scored in the deny band (all are refused).
  void on_risk_alert(std::function<void(const RiskAlert&)> f) { alert_listener_ = std::move(f); }

  // Called for every value served to a caller (prediction learns from it).
  void on_read(std::function<void(const Read&)> f) { read_listener_ = std::move(f); }

  // Fetches `ref` (a canonical() or id_key() form, as a Read names it) from
  // the primaries ahead of a read by `service`, unless the cached value
  // stays fresh past `needed_at`. Only what the service may read under
  // policy now and what no revocation blocks; the value is cached, never
  // served here, and no rate-limit token is taken. Right before the fetch
  // starts, `audit` is called with the cache key: false (its event was not
  // recorded) and nothing is fetched. A caller asking meanwhile joins the
  // fetch. `done` runs exactly once, now or later.
  void fetch_ahead(std::string_view service, std::string_view ref, MonoTime needed_at,
                   const std::function<bool(const std::string& key)>& audit, std::function<void(Ahead)> done);

  // The audit event of a request refused before it reached the broker
  // (malformed body): who asked, what, and why not.
  audit::Event refused_event(const identity::Identity& caller, const std::string& request_id, std::string action) const;

  // Emergency revocation (docs/policy.md, "One secret, one key").
  //
  // Fills in what a ref or type revocation's secret is known by: the
  // spellings known now (the one given, its resolved IDs, the spellings
  // clients used, the catalog entries and types that name it) and — asking
  // a primary that resolves references, when one is available — its
  // all-IDs and all-names forms; then `rv.resolved` is set. Other kinds
  // pass through. `done` runs exactly once, now or later on the loop. A ref
  // revocation names its secret by `rv.ref`; a type revocation by its
  // catalog entry's reference.
  void describe(policy::Revocation rv, std::function<void(policy::Revocation)> done);
  // From now on nothing matching `r` is served from any source; cached
  // copies are wiped, fetches in flight for it are answered `revoked` at
  // once and their results dropped. The caller has persisted it first (and
  // described it).
  void revoke(const policy::Revocation& r);
  // Lifts the revocations `r` describes (same kind and secret, type or
  // service; described like a revocation). Returns how many.
  std::size_t clear_revocation(const policy::Revocation& r);
  void set_revocations(policy::Revocations r) { revocations_ = std::move(r); }
  const policy::Revocations& revocations() const noexcept { return revocations_; }
  // Called when revocations in force learnt more spellings (a primary
  // resolved one made while it was unavailable): the app persists them.
  void on_revocations_changed(std::function<void()> f) { revocations_listener_ = std::move(f); }
  // Puts `rv` in force at once with the spellings known now (before the
  // upstream is asked for the others by describe()): cached copies wiped,
  // fetches in flight dropped. Not persisted: the caller persists what
  // describe() completes.
  void revoke_known(policy::Revocation rv);
  // Describes again the revocations that are not complete — not resolved,
  // or with catalog types not yet checked against them — each at most every
  // `kRetryResolution` unless `force`, then runs `then` (may be null) once
  // every attempt in flight (also ones started earlier) has completed. Runs
  // before a value from a primary is kept or served while any revocation is
  // unresolved (forced: the upstream has just answered), when the upstream
  // comes back, and when the catalog changes.
  void resolve_pending(std::function<void()> then, bool force = false);

  // Forgets a cached value (it is fetched again on next use).
  bool invalidate(const std::string& key) { return cache_.invalidate(key); }
  // Until when the cached value of `key` is fresh; none when none is held.
  std::optional<MonoTime> fresh_until(const std::string& key) const {
    auto held = cache_.held(key);
    return held ? std::optional<MonoTime>(held->fresh_until()) : std::nullopt;
  }

  cache::Mode mode() const noexcept { return cache_.mode(); }
  // Recomputes the mode from the primaries' availability: fallback while
  // none of them is available, normal otherwise (and always without
  // primaries). Logged when it changes. Called after every primary outcome
  // and by whoever watches the primaries (probes, breakers).
  void update_mode();
  // Called after the mode changed (the audit trail records it).
  void on_mode_change(std::function<void(cache::Mode)> f) { mode_listener_ = std::move(f); }
  // Time spent in fallback mode since start (metrics).
  Duration fallback_time() const noexcept;
  // The key `ref` is cached under: the resolved IDs once a primary knows
  // them, else the reference's canonical form.
  std::string key_for(const catalog::Reference& ref) const;
  std::string key_for_canonical(std::string canonical) const;
  std::size_t fetches_in_flight() const noexcept { return flights_.flights(); }
  std::uint64_t fetches_started() const noexcept { return fetches_; }

 private:
  // The result of one fetch, delivered to every request that waited on it.
  struct Outcome {
    std::shared_ptr<const secure::SecureBuffer> value;
    std::optional<Refusal> refusal;
    std::string source;
    CacheState cache = CacheState::miss;
    WallTime fetched_at{};
    WallTime expires_at{};
    Duration age{};
  };
  using Flight = cache::SingleFlight<Outcome>;

  // One request on its way through the pipeline.
  struct Request;
  using RequestPtr = std::shared_ptr<Request>;
  void decide(const RequestPtr& r);
  void after_policy(const RequestPtr& r);
  void refuse(const RequestPtr& r, http::ErrorCode code, std::string message,
              std::optional<Duration> retry_after = std::nullopt);
  // Scores the request (when an engine is set) and puts the score in its event.
  void score(const RequestPtr& r);
  // Enforces the score's band: false when the request was refused.
  bool admit_risk(const RequestPtr& r);
  // Tells the engine how the request was answered (once).
  void learn_outcome(const RequestPtr& r, const std::optional<http::ErrorCode>& refused);
  // Tells the engine that the secret `rv` names was revoked or cleared now.
  void note_revoked(const policy::Revocation& rv);
  void deliver(const RequestPtr& r, const Outcome& o);
  const policy::Revocation* revoked_for(const RequestPtr& r) const;
  // The match forms of `ref`: its canonical form, its resolved key (once
  // known) and, with `resolution`, its all-IDs and all-names forms.
  std::vector<std::string> forms_of(const catalog::Reference& ref, const upstream::Resolution* resolution) const;
  const policy::Revocation* revocation_for(std::string_view service, const catalog::Entry* entry,
                                           const catalog::Reference& ref) const;
  // Adds to `rv` what is known now of the secret `ref` (and `resolution`).
  void learn(policy::Revocation& rv, const catalog::Reference& ref, const upstream::Resolution* resolution) const;
  // The primary asked to resolve references: the first available one that can.
  upstream::Provider* resolver() const;
  // Wipes what is cached for `rv` and answers the fetches in flight for it.
  void enforce(const policy::Revocation& rv);
  // Whether describe() has more to learn for `rv` (unresolved, or a catalog
  // type not checked against it).
  bool incomplete(const policy::Revocation& rv) const;
  // A ref or type revocation whose relation to catalog `entry` is not
  // established: the entry's fallbacks are withheld (null when none).
  const policy::Revocation* unchecked_for(const catalog::Entry* entry) const;
  // Checks every catalog type not yet checked against `rv` (resolved):
  // through the upstream where a resolution is not known; then `done(rv)`.
  struct Describing;
  void check_catalog(std::shared_ptr<Describing> d);
  void release_waiters();

  // One fetch: the flight key, what is fetched, and why earlier sources
  // could not give it.
  struct Fetch {
    std::string key;
    upstream::FetchRequest request;
    std::vector<std::string> reasons;
    bool dropped = false;  // revoked while in flight: the result is discarded
  };
  void start_fetch(std::shared_ptr<Fetch> f);
  void try_primary(std::shared_ptr<Fetch> f, std::size_t next);
  void on_primary(std::shared_ptr<Fetch> f, std::size_t index, upstream::FetchResult r);
  void primary_value(const std::shared_ptr<Fetch>& f, std::size_t index, secure::SecureBuffer value);
  void after_primaries(std::shared_ptr<Fetch> f);
  void try_fallbacks(std::shared_ptr<Fetch> f, std::size_t next);
  void complete(const std::shared_ptr<Fetch>& f, const Outcome& o);
  // A value the cache served, as the outcome of a request or a flight.
  static Outcome from_cache(cache::Served served);
  Outcome stored(const std::string& key, const catalog::Entry* entry, secure::SecureBuffer value,
                 std::string_view source, bool cache_it);
  Duration ttl_for(const catalog::Entry* entry) const;

  cache::Cache& cache_;
  Sources sources_;
  const Clock& clock_;
  policy::Rules& rules_;
  policy::Gate& gate_;
  policy::Revocations revocations_;
  Flight flights_;
  std::unordered_map<std::string, std::shared_ptr<Fetch>> fetching_;  // by flight key
  std::uint64_t fetches_ = 0;
  MonoTime fallback_since_{};
  std::function<void(cache::Mode)> mode_listener_;
  std::function<void()> revocations_listener_;
  std::function<void(const Read&)> read_listener_;
  std::function<void(const RiskAlert&)> alert_listener_;
  risk::Engine* risk_ = nullptr;
  std::size_t describing_ = 0;  // resolve_pending() attempts in flight
  std::vector<std::function<void()>> resolve_waiters_;
  Duration fallback_total_{};
};

}  // namespace chitty::broker
