#include "chitty/broker/broker.hpp"

#include <algorithm>
#include <utility>

#include "chitty/base/enum_names.hpp"
#include "chitty/base/units.hpp"
#include "chitty/log/log.hpp"

namespace chitty::broker {

namespace {

constexpr std::array<std::string_view, 3> kCacheStateNames{"hit", "stale", "miss"};
constexpr std::array<std::string_view, 3> kCacheHeaders{"HIT", "STALE", "MISS"};
static_assert(names_every(kCacheStateNames, CacheState::miss) && names_every(kCacheHeaders, CacheState::miss));

}  // namespace

namespace {

constexpr std::array<std::string_view, 8> kAheadNames{"fetched", "fresh",  "in_flight",   "not_allowed",
                                                      "revoked", "failed", "no_upstream", "unaudited"};
static_assert(names_every(kAheadNames, Ahead::unaudited));

}  // namespace

std::string_view ahead_name(Ahead a) noexcept { return name_of(kAheadNames, a); }

std::string_view cache_state_name(CacheState s) noexcept { return name_of(kCacheStateNames, s); }

std::string_view cache_header(CacheState s) noexcept { return name_of(kCacheHeaders, s); }

namespace {

Refusal refusal(http::ErrorCode code, std::string message) { return Refusal{code, std::move(message), std::nullopt}; }

// What a client is told when a source answers with `e`.
http::ErrorCode refusal_code(upstream::FetchError e) noexcept {
  switch (e) {
    case upstream::FetchError::not_found: return http::ErrorCode::not_found;
    case upstream::FetchError::denied: return http::ErrorCode::forbidden;
    case upstream::FetchError::no_memory: return http::ErrorCode::server_busy;
    case upstream::FetchError::unauthorized:
    case upstream::FetchError::rejected:
    case upstream::FetchError::unavailable: return http::ErrorCode::upstream_unavailable;
  }
  return http::ErrorCode::upstream_unavailable;
}

void fill_caller(audit::Event& e, const identity::Identity& caller) {
  if (caller.uid.is_known()) e.uid = caller.uid.value();
  if (caller.pid.is_known()) e.pid = caller.pid.value();
  if (caller.exe.is_known()) e.exe = caller.exe.value();
  if (caller.unit.is_known()) e.unit = caller.unit.value();
  if (caller.container.is_known()) e.container = caller.container.value();
}

}  // namespace

struct Broker::Request {
  identity::Identity caller;
  Ask ask;
  std::string request_id;
  Done done;
  MonoTime started;
  Answer answer;
  std::shared_ptr<const policy::Policy> policy;  // keeps `service` valid across a reload
  const policy::Service* service = nullptr;
  std::shared_ptr<const catalog::Entry> entry;
  catalog::Reference ref;
  std::string key;
  std::optional<upstream::Resolution> resolution;  // `ref`'s other forms, when a primary established them
  bool resolve_tried = false;
  // Risk (when the broker has an engine): what the engine was told (its
  // views point into this request), the assessment, and how far it went.
  std::string risk_ref;  // the reference as the service named it (canonical), or "type:NAME"
  risk::Request risk_request;
  std::optional<risk::Assessment> assessment;
  bool risk_admitted = false;  // the band was enforced
  bool stepped_up = false;     // served in the step-up band on the service's step-up token
  bool risk_learnt = false;    // the engine was told the outcome
};

Broker::Broker(cache::Cache& cache, Sources sources, policy::Rules& rules, policy::Gate& gate, const Clock& clock)
    : cache_(cache), sources_(std::move(sources)), clock_(clock), rules_(rules), gate_(gate) {
  rules_.on_catalog_change([this] {
    if (revocations_.any_secret()) resolve_pending(nullptr, true);
  });
}

Broker::~Broker() { rules_.on_catalog_change(nullptr); }

audit::Event Broker::refused_event(const identity::Identity& caller, const std::string& request_id,
                                   std::string action) const {
  audit::Event e;
  e.at = clock_.wall_now();
  e.request_id = request_id;
  e.action = std::move(action);
  fill_caller(e, caller);
  if (const policy::Service* s = rules_.service_of(caller)) e.service = s->name;
  e.mode = cache::mode_name(cache_.mode());
  return e;
}

namespace {

// "risk score 85 (critical): enumeration +75, new_uid +10"
std::string describe_risk(const risk::Assessment& a) {
  std::string out = "risk score " + std::to_string(a.score) + " (" + std::string(risk::level_name(a.band)) + ")";
  const char* sep = ": ";
  for (const risk::Fired& f : a.fired) {
    if (f.weight == 0) continue;
    out += sep + std::string(risk::factor_name(f.factor)) + " +" + std::to_string(f.weight);
    sep = ", ";
  }
  return out;
}

}  // namespace

void Broker::score(const RequestPtr& r) {
  if (risk_ == nullptr) return;
  const identity::Identity& c = r->caller;
  risk::Request& q = r->risk_request;
  q.service = r->service != nullptr ? std::string_view(r->service->name) : std::string_view();
  q.ref = r->risk_ref;
  if (c.uid.is_known()) q.uid = c.uid.value();
  if (c.exe.is_known()) q.exe = c.exe.value();
  if (c.unit.is_known()) q.unit = c.unit.value();
  // A unit named by systemd's credential helper has no process yet: its
  // unit is all there is to establish. An executable the agent may not read
  // (another user's, without CAP_SYS_PTRACE) says nothing about the caller.
  q.identity_partial = c.origin == identity::Origin::load_credential
                           ? !c.unit.is_known()
                           : !(c.exe.is_known() || c.exe_withheld) || !c.unit.is_known() || !c.container.is_known();
  q.service_mismatch =
      r->ask.claimed_service && (r->service == nullptr || *r->ask.claimed_service != r->service->name);
  q.purpose_not_allowed =
      r->entry != nullptr && !risk::purpose_allowed(risk_->options(), r->entry->category, r->ask.purpose);
  q.at = r->started;  // the clock was read when the request came (retrieve())
  q.wall_at = r->answer.event.at;
  r->assessment = risk_->assess(q);
  const risk::Assessment& a = *r->assessment;
  audit::Risk& ev = r->answer.event.risk.emplace();
  ev.score = a.score;
  ev.level = risk::level_name(a.band);
  ev.decision = risk::band_name(a.band);
  ev.factors.reserve(a.fired.size());
  for (const risk::Fired& f : a.fired) ev.factors.emplace_back(risk::factor_name(f.factor), f.weight);
}

bool Broker::admit_risk(const RequestPtr& r) {
  if (!r->assessment || r->risk_admitted) return true;
  r->risk_admitted = true;
  const risk::Assessment& a = *r->assessment;
  const std::string& service = r->service->name;
  switch (a.band) {
    case risk::Band::allow:
    case risk::Band::monitor:
      return true;
    case risk::Band::step_up:
      switch (r->ask.step_up) {
        case StepUp::valid:
          r->stepped_up = true;
          r->answer.event.risk->step_up = true;
          return true;
        case StepUp::absent:
          refuse(r, http::ErrorCode::step_up_required,
                 describe_risk(a) + ": repeat the request with service \"" + service +
                     "\"'s step-up token in X-Chitty-Step-Up");
          return false;
        case StepUp::wrong:
          refuse(r, http::ErrorCode::step_up_required,
                 describe_risk(a) + ": X-Chitty-Step-Up does not carry service \"" + service +
                     "\"'s step-up token (or the service has none: step_up_token_file)");
          return false;
        case StepUp::unavailable:
          refuse(r, http::ErrorCode::server_busy, "no locked memory to check the step-up token right now; retry shortly");
          return false;
      }
      return false;
    case risk::Band::deny:
      refuse(r, http::ErrorCode::risk_denied, describe_risk(a) + ": refused");
      return false;
  }
  return false;
}

void Broker::learn_outcome(const RequestPtr& r, const std::optional<http::ErrorCode>& refused) {
  if (!r->assessment || r->risk_learnt || risk_ == nullptr) return;
  r->risk_learnt = true;
  risk::Outcome o = risk::Outcome::refused;
  if (!refused) {
    o = r->assessment->band == risk::Band::allow && !r->stepped_up ? risk::Outcome::served : risk::Outcome::monitored;
  } else if (*refused == http::ErrorCode::not_found) {
    o = risk::Outcome::not_found;
  } else if (*refused == http::ErrorCode::forbidden || *refused == http::ErrorCode::context_mismatch) {
    o = risk::Outcome::forbidden;
  }
  risk_->record(r->risk_request, o, *r->assessment);
}

void Broker::note_revoked(const policy::Revocation& rv) {
  if (risk_ == nullptr) return;
  for (const auto& f : rv.forms) risk_->revoked(f);
  for (const auto& t : rv.types) {
    risk_->revoked("type:" + t);
    if (auto e = rules_.catalog().by_type(t)) risk_->revoked(e->key);
  }
}

void Broker::refuse(const RequestPtr& r, http::ErrorCode code, std::string message,
                    std::optional<Duration> retry_after) {
  learn_outcome(r, code);
  // Every request scored in the deny band is alerted, whatever refused it
  // first (a claimed service that is not the caller's is refused
  // context_mismatch before its band is looked at).
  if (r->assessment && r->assessment->band == risk::Band::deny && alert_listener_) {
    alert_listener_(RiskAlert{r->request_id, r->service != nullptr ? r->service->name : std::string(),
                              r->answer.event.uid, r->risk_ref, std::string(http::error_code_name(code)),
                              *r->assessment});
  }
  audit::Event& ev = r->answer.event;
  ev.mode = cache::mode_name(cache_.mode());
  ev.latency_us = std::chrono::duration_cast<std::chrono::microseconds>(clock_.now() - r->started).count();
  r->answer.outcome = tl::unexpected(Refusal{code, std::move(message), retry_after});
  Done done = std::move(r->done);
  done(std::move(r->answer));
}

std::vector<std::string> Broker::forms_of(const catalog::Reference& ref,
                                          const upstream::Resolution* resolution) const {
  std::vector<std::string> forms{ref.canonical()};
  auto add = [&](std::string f) {
    if (std::find(forms.begin(), forms.end(), f) == forms.end()) forms.push_back(std::move(f));
  };
  add(catalog::match_form(key_for(ref)));
  if (resolution != nullptr) {
    add(catalog::match_form(resolution->key));
    add(resolution->names.canonical());
  }
  return forms;
}

const policy::Revocation* Broker::revocation_for(std::string_view service, const catalog::Entry* entry,
                                                 const catalog::Reference& ref) const {
  if (revocations_.empty()) return nullptr;
  return revocations_.blocking(service, entry, forms_of(ref, nullptr));
}

// The forms are computed *now*: a request resolved since it was decided
// (deliver() runs after the fetch) is matched by its resolved key too.
const policy::Revocation* Broker::revoked_for(const RequestPtr& r) const {
  if (revocations_.empty()) return nullptr;
  std::string_view service = r->service != nullptr ? std::string_view(r->service->name) : std::string_view();
  auto forms = forms_of(r->ref, r->resolution ? &*r->resolution : nullptr);
  if (!r->key.empty()) {
    std::string k = catalog::match_form(r->key);
    if (std::find(forms.begin(), forms.end(), k) == forms.end()) forms.push_back(std::move(k));
  }
  return revocations_.blocking(service, r->entry.get(), forms);
}

void Broker::retrieve(identity::Identity caller, Ask ask, const std::string& request_id, Done done) {
  auto r = std::make_shared<Request>();
  r->request_id = request_id;
  r->done = std::move(done);
  r->started = clock_.now();
  r->policy = rules_.policy_ptr();
  audit::Event& e = r->answer.event;
  e.at = clock_.wall_now();
  e.request_id = request_id;
  e.action = ask.action;
  fill_caller(e, caller);
  e.mode = cache::mode_name(cache_.mode());
  r->caller = std::move(caller);
  r->answer.event.credential_type = ask.credential_type;
  r->ask = std::move(ask);
  decide(r);
}

void Broker::decide(const RequestPtr& r) {
  audit::Event& ev = r->answer.event;
  const Ask& ask = r->ask;
  const policy::Service* service = r->policy->service_for(r->caller);
  r->service = service;
  if (service != nullptr) ev.service = service->name;
  // What is asked for: a catalog type, or a reference (in the catalog or not).
  std::string canonical;
  if (r->ask.ref) {
    r->ref = std::move(*r->ask.ref);
    canonical = r->ref.canonical();
    r->entry = rules_.catalog().by_key(canonical);
  } else {
    r->entry = rules_.catalog().by_type(ask.credential_type);
    if (!r->entry) {
      r->risk_ref = "type:" + ask.credential_type;
      score(r);
      return refuse(r, http::ErrorCode::not_found, "unknown credential type \"" + ask.credential_type + "\"");
    }
    r->ref = r->entry->ref;
    canonical = r->entry->key;
  }
  r->risk_ref = canonical;
  score(r);
  r->key = key_for_canonical(std::move(canonical));
  ev.ref = r->key;
  if (r->entry && ev.credential_type.empty()) ev.credential_type = r->entry->type;

  // Who asks. A caller no service matches gets nothing (the API has charged
  // the bucket such callers share before it asked: api::admit).
  if (service == nullptr) {
    std::string who = r->caller.uid.is_known() ? "uid " + std::to_string(r->caller.uid.value()) : "a caller of unknown uid";
    return refuse(r, http::ErrorCode::forbidden, "no [[service]] matches this caller (" + who + ")");
  }
  if (ask.claimed_service && *ask.claimed_service != service->name) {
    return refuse(r, http::ErrorCode::context_mismatch,
                  "context.service \"" + *ask.claimed_service + "\" is not the calling service \"" + service->name +
                      "\"");
  }
  if (ask.rate_limited) {
    if (auto limited = gate_.take(r->caller)) {
      return refuse(r, http::ErrorCode::rate_limited, std::move(limited->message), limited->retry_after);
    }
  }
  if (!service->purposes.empty()) {
    if (ask.purpose.empty()) {
      std::string list;
      for (const auto& p : service->purposes) list += (list.empty() ? "" : ", ") + p;
      return refuse(r, http::ErrorCode::bad_request,
                    "service \"" + service->name + "\" must state a purpose (context.purpose, or ?purpose=): one of " +
                        list);
    }
    if (!policy::Policy::purpose_allowed(*service, ask.purpose)) {
      return refuse(r, http::ErrorCode::forbidden,
                    "purpose \"" + ask.purpose + "\" is not allowed for service \"" + service->name + "\"");
    }
  }
  if (const policy::Revocation* rv = revocations_.blocking_service(service->name)) {
    return refuse(r, http::ErrorCode::revoked,
                  rv->kind == policy::Revocation::Kind::all
                      ? "every credential is under emergency revocation"
                      : "service \"" + service->name + "\"'s access is under emergency revocation");
  }
  if (policy::Policy::allows(*service, r->entry.get(), r->ref)) return after_policy(r);

  // Not allowed as written: a rule may be written on the other form (names
  // vs IDs) of the same secret, or the catalog may know it by the other
  // form (type rules): ask a primary to resolve it.
  upstream::Provider* speller = resolver();
  std::string denied = "service \"" + service->name + "\" may not read " + r->ref.display();
  if (service->rules.empty() || speller == nullptr) return refuse(r, http::ErrorCode::forbidden, denied);
  speller->resolve(upstream::FetchRequest{r->entry, r->ref, false},
                   [this, r, denied](upstream::Provider::Resolved resolved) {
                     if (!resolved) return refuse(r, http::ErrorCode::forbidden, denied);
                     r->resolution = std::move(*resolved);
                     const upstream::Resolution& res = *r->resolution;
                     // The other form may be the catalog's: its type rules apply.
                     if (!r->entry) r->entry = rules_.catalog().by_key(res.names.canonical());
                     if (!r->entry) r->entry = rules_.catalog().by_key(res.ids.canonical());
                     for (const catalog::Reference* s : {&res.ids, &res.names}) {
                       if (policy::Policy::allows(*r->service, r->entry.get(), *s)) {
                         r->key = key_for(r->ref);
                         r->answer.event.ref = r->key;
                         return after_policy(r);
                       }
                     }
                     // Not found and not allowed look the same: no oracle for what exists.
                     refuse(r, http::ErrorCode::forbidden, denied);
                   });
}

void Broker::after_policy(const RequestPtr& r) {
  // While a secret is revoked, a spelling of this request the agent has not
  // resolved yet may be that secret: resolve it first (the primary keeps
  // resolutions, so this costs a request only for a new spelling), so that a
  // revoked secret is not even fetched.
  if (!r->resolution && !r->resolve_tried && revocations_.any_secret() && key_for(r->ref) == r->ref.canonical()) {
    if (upstream::Provider* p = resolver()) {
      r->resolve_tried = true;
      p->resolve(upstream::FetchRequest{r->entry, r->ref, false}, [this, r](upstream::Provider::Resolved res) {
        if (res) r->resolution = std::move(*res);
        after_policy(r);
      });
      return;
    }
  }
  if (const policy::Revocation* rv = revoked_for(r)) {
    return refuse(r, http::ErrorCode::revoked, r->ref.display() + " is under emergency revocation" +
                                                   (rv->reason.empty() ? std::string() : ": " + rv->reason));
  }
  // The score's band, before any value is unsealed.
  if (!admit_risk(r)) return;
  if (!r->ask.refresh) {
    auto served = cache_.get(r->key);
    if (served) return deliver(r, from_cache(std::move(*served)));
    if (served.error() == cache::Miss::no_memory) {
      return refuse(r, http::ErrorCode::server_busy, "no locked memory to serve the value right now; retry shortly");
    }
  }
  // A fetch: joined if one for this key is already running.
  bool first = flights_.join(r->key, [this, r](const Outcome& o) { deliver(r, o); });
  if (first) {
    auto f = std::make_shared<Fetch>();
    f->key = r->key;
    f->request = upstream::FetchRequest{r->entry, r->ref, r->ask.refresh};
    start_fetch(std::move(f));
  }
}

void Broker::deliver(const RequestPtr& r, const Outcome& o) {
  // A revocation that arrived while this request waited wins; so does one
  // that matches the IDs the fetch resolved the reference to.
  if (!o.refusal) {
    if (const policy::Revocation* rv = revoked_for(r)) {
      return refuse(r, http::ErrorCode::revoked, r->ref.display() + " is under emergency revocation" +
                                                     (rv->reason.empty() ? std::string() : ": " + rv->reason));
    }
  }
  learn_outcome(r, o.refusal ? std::optional<http::ErrorCode>(o.refusal->code) : std::nullopt);
  Answer& a = r->answer;
  // The key the fetch resolved the reference to: the audit event names the
  // secret as every later spelling of it will be recorded.
  a.event.ref = key_for(r->ref);
  a.event.mode = cache::mode_name(cache_.mode());
  a.event.latency_us = std::chrono::duration_cast<std::chrono::microseconds>(clock_.now() - r->started).count();
  if (o.refusal) {
    a.outcome = tl::unexpected(*o.refusal);
  } else {
    a.event.cache = cache_state_name(o.cache);
    a.event.source = o.source;
    a.outcome = Granted{o.value, r->ref.display(), o.source, o.cache, cache_.mode(), o.fetched_at, o.expires_at, o.age};
    if (read_listener_ && r->service != nullptr) {
      read_listener_(Read{r->service->name, r->ref.canonical(), a.event.ref,
                          r->caller.pid.is_known() ? static_cast<std::int64_t>(r->caller.pid.value()) : 0, o.cache,
                          o.fetched_at, o.expires_at});
    }
  }
  Done done = std::move(r->done);
  done(std::move(a));
}

void Broker::fetch_ahead(std::string_view service, std::string_view ref, MonoTime needed_at,
                         const std::function<bool(const std::string& key)>& audit, std::function<void(Ahead)> done) {
  if (sources_.primaries.empty()) return done(Ahead::no_upstream);
  auto policy = rules_.policy_ptr();
  const policy::Service* svc = policy->service_named(service);
  auto parsed = catalog::reference_from_key(ref);
  if (svc == nullptr || !parsed) return done(Ahead::not_allowed);
  const catalog::Reference& reference = *parsed;
  auto entry = rules_.catalog().by_key(reference.canonical());
  if (revocations_.blocking_service(svc->name) != nullptr || revocation_for(svc->name, entry.get(), reference) != nullptr) {
    return done(Ahead::revoked);
  }
  // The rule that let the service read it: on this spelling, or on the
  // resolved IDs the upstream gave for it.
  std::string key = key_for(reference);
  bool allowed = policy::Policy::allows(*svc, entry.get(), reference);
  if (!allowed && key != reference.canonical()) {
    auto ids = catalog::reference_from_key(key);
    allowed = ids && policy::Policy::allows(*svc, entry.get(), *ids);
  }
  if (!allowed) return done(Ahead::not_allowed);
  if (auto held = cache_.held(key); held && held->fresh_until() > needed_at) return done(Ahead::fresh);
  if (fetching_.count(key) != 0) return done(Ahead::in_flight);
  if (!audit(key)) return done(Ahead::unaudited);
  bool first = flights_.join(key, [done = std::move(done)](const Outcome& o) {
    done(o.refusal || o.cache != CacheState::miss ? Ahead::failed : Ahead::fetched);
  });
  if (!first) return;
  auto f = std::make_shared<Fetch>();
  f->key = key;
  f->request = upstream::FetchRequest{std::move(entry), reference, false};
  start_fetch(std::move(f));
}

upstream::Provider* Broker::resolver() const {
  for (upstream::Provider* p : sources_.primaries) {
    if (p->resolves() && p->available()) return p;
  }
  return nullptr;
}

void Broker::learn(policy::Revocation& rv, const catalog::Reference& ref, const upstream::Resolution* resolution) const {
  for (auto& f : forms_of(ref, resolution)) rv.add_form(std::move(f));
  std::string key = resolution != nullptr ? resolution->key : key_for(ref);
  if (key != ref.canonical() && rv.key.empty()) rv.key = key;
  if (!rv.key.empty()) {
    rv.add_form(catalog::match_form(rv.key));
    // The spellings clients have used for it.
    for (const upstream::Provider* p : sources_.primaries) {
      for (auto& a : p->aliases(rv.key)) rv.add_form(std::move(a));
    }
  }
  // The catalog entries that name it: a request by type, or a fallback for
  // it, is blocked even when no upstream can tell the spellings apart.
  for (const auto& e : rules_.catalog().entries()) {
    if (rv.known_as(e->key) || rv.known_as(catalog::match_form(key_for(e->ref)))) {
      rv.add_type(e->type);
      rv.add_form(e->key);
      rv.add_form(catalog::match_form(key_for(e->ref)));
    }
  }
}

// One describe() in progress: the revocation being completed, its
// reference, and the catalog checks still out.
struct Broker::Describing {
  policy::Revocation rv;
  catalog::Reference ref;
  std::function<void(policy::Revocation)> done;
  std::size_t pending = 0;
};

void Broker::describe(policy::Revocation rv, std::function<void(policy::Revocation)> done) {
  std::optional<catalog::Reference> ref;
  if (rv.kind == policy::Revocation::Kind::ref) {
    ref = rv.ref;
  } else if (rv.kind == policy::Revocation::Kind::type) {
    rv.add_type(rv.target);
    rv.add_checked(rv.target);
    if (auto e = rules_.catalog().by_type(rv.target)) ref = e->ref;
  }
  if (!ref) {
    // Nothing to resolve: a service, everything, or a type the catalog no
    // longer has (its name still blocks requests by type).
    rv.resolved = true;
    return done(std::move(rv));
  }
  learn(rv, *ref, nullptr);
  if (sources_.primaries.empty()) {
    // Without an upstream the canonical form is the only key there is, and
    // every catalog entry is compared by it (learn() has).
    rv.resolved = true;
    for (const auto& e : rules_.catalog().entries()) rv.add_checked(e->type);
    return done(std::move(rv));
  }
  upstream::Provider* p = resolver();
  if (p == nullptr) return done(std::move(rv));  // resolved when the upstream is back
  auto d = std::make_shared<Describing>();
  d->rv = std::move(rv);
  d->ref = *ref;
  d->done = std::move(done);
  if (d->rv.resolved) return check_catalog(std::move(d));
  p->resolve(upstream::FetchRequest{nullptr, d->ref, false}, [this, d](upstream::Provider::Resolved res) {
    if (res) {
      learn(d->rv, d->ref, &*res);
      d->rv.key = res->key;
      d->rv.resolved = true;
    } else {
      // Unknown, ambiguous or unreachable now: tried again later.
      d->rv.retry_at = clock_.now() + kRetryResolution;
    }
    check_catalog(d);
  });
}

void Broker::check_catalog(std::shared_ptr<Describing> d) {
  policy::Revocation& rv = d->rv;
  upstream::Provider* p = resolver();
  std::vector<std::shared_ptr<const catalog::Entry>> ask;
  if (rv.resolved) {
    for (const auto& e : rules_.catalog().entries()) {
      if (rv.checked(e->type)) continue;
      if (rv.known_as(e->key)) {
        rv.add_type(e->type);
        rv.add_checked(e->type);
        continue;
      }
      std::string key = key_for(e->ref);
      if (key != e->key) {
        // Resolved already: the same secret or another.
        if (rv.known_as(catalog::match_form(key))) rv.add_type(e->type);
        rv.add_checked(e->type);
      } else if (p != nullptr) {
        ask.push_back(e);
      }
    }
  }
  if (ask.empty()) {
    auto done = std::move(d->done);
    return done(std::move(d->rv));
  }
  d->pending = ask.size();
  for (const auto& e : ask) {
    p->resolve(upstream::FetchRequest{e, e->ref, false}, [d, e](upstream::Provider::Resolved res) {
      policy::Revocation& r = d->rv;
      if (res) {
        if (r.known_as(catalog::match_form(res->key))) {
          r.add_type(e->type);
          r.add_form(e->key);
        }
        r.add_checked(e->type);
      } else if (res.error() == upstream::FetchError::not_found || res.error() == upstream::FetchError::denied) {
        // It names nothing the upstream would give: not the revoked secret.
        r.add_checked(e->type);
      }
      if (--d->pending == 0) {
        auto done = std::move(d->done);
        done(std::move(d->rv));
      }
    });
  }
}

bool Broker::incomplete(const policy::Revocation& rv) const {
  if (rv.kind != policy::Revocation::Kind::ref && rv.kind != policy::Revocation::Kind::type) return false;
  if (!rv.resolved) return true;
  if (sources_.primaries.empty()) return false;
  for (const auto& e : rules_.catalog().entries()) {
    if (!rv.checked(e->type)) return true;
  }
  return false;
}

const policy::Revocation* Broker::unchecked_for(const catalog::Entry* entry) const {
  if (entry == nullptr || sources_.primaries.empty()) return nullptr;
  for (const auto& rv : revocations_.list()) {
    if (rv.kind != policy::Revocation::Kind::ref && rv.kind != policy::Revocation::Kind::type) continue;
    if (!rv.checked(entry->type)) return &rv;
  }
  return nullptr;
}

void Broker::revoke_known(policy::Revocation rv) {
  if (rv.kind == policy::Revocation::Kind::ref && rv.ref) {
    learn(rv, *rv.ref, nullptr);
  } else if (rv.kind == policy::Revocation::Kind::type) {
    rv.add_type(rv.target);
    if (auto e = rules_.catalog().by_type(rv.target)) learn(rv, e->ref, nullptr);
  }
  revoke(rv);
}

void Broker::resolve_pending(std::function<void()> then, bool force) {
  MonoTime now = clock_.now();
  std::vector<policy::Revocation> due;
  if (resolver() != nullptr) {
    for (policy::Revocation& rv : revocations_.list()) {
      if (!incomplete(rv) || rv.in_flight) continue;
      if (!force && rv.retry_at > now) continue;
      rv.in_flight = true;  // one attempt at a time
      due.push_back(rv);
    }
  }
  if (then) resolve_waiters_.push_back(std::move(then));
  describing_ += due.size();
  for (auto& rv : due) {
    describe(std::move(rv), [this](policy::Revocation described) {
      // Merged into the one in force (unless it was cleared meanwhile).
      policy::Revocation* in_force = nullptr;
      for (policy::Revocation& x : revocations_.list()) {
        if (x.kind == described.kind && x.target == described.target) in_force = &x;
      }
      if (in_force != nullptr) {
        in_force->in_flight = false;
        in_force->retry_at = described.retry_at;
        std::size_t forms = in_force->forms.size(), types = in_force->types.size();
        std::size_t checked = in_force->checked_types.size();
        bool was_resolved = in_force->resolved;
        revocations_.add(described);
        if (in_force->forms.size() != forms || in_force->types.size() != types ||
            in_force->checked_types.size() != checked || in_force->resolved != was_resolved) {
          if (!was_resolved && in_force->resolved) {
            log::info("broker", "emergency revocation resolved: every spelling of the secret is blocked",
                      {{"target", described.target}, {"forms", in_force->forms.size()}});
          }
          note_revoked(*in_force);
          enforce(*in_force);
          if (revocations_listener_) revocations_listener_();
        }
      }
      --describing_;
      release_waiters();
    });
  }
  release_waiters();
}

void Broker::release_waiters() {
  if (describing_ != 0 || resolve_waiters_.empty()) return;
  auto waiters = std::move(resolve_waiters_);
  resolve_waiters_.clear();
  for (auto& w : waiters) w();
}

void Broker::revoke(const policy::Revocation& rv) {
  revocations_.add(rv);
  note_revoked(rv);
  enforce(rv);
}

void Broker::enforce(const policy::Revocation& rv) {
  // Wipe what is cached for it.
  switch (rv.kind) {
    case policy::Revocation::Kind::all: cache_.clear(); break;
    case policy::Revocation::Kind::service: break;  // the cache is shared: access is blocked per request
    case policy::Revocation::Kind::type:
    case policy::Revocation::Kind::ref:
      // Cache keys are resolved keys or canonical forms (already match forms).
      if (!rv.key.empty()) cache_.invalidate(rv.key);
      for (const auto& f : rv.forms) cache_.invalidate(f);
      for (const auto& t : rv.types) {
        if (auto e = rules_.catalog().by_type(t)) {
          cache_.invalidate(e->key);
          cache_.invalidate(key_for(e->ref));
        }
      }
      break;
  }
  // Answer the fetches in flight for it now; their results are dropped.
  std::vector<std::shared_ptr<Fetch>> hit;
  for (auto& [key, f] : fetching_) {
    if (rv.kind == policy::Revocation::Kind::service) continue;
    auto forms = forms_of(f->request.ref, nullptr);
    forms.push_back(catalog::match_form(f->key));
    if (policy::blocks(rv, "", f->request.entry.get(), forms)) hit.push_back(f);
  }
  for (auto& f : hit) {
    f->dropped = true;
    fetching_.erase(f->key);
    Outcome o;
    o.refusal = refusal(http::ErrorCode::revoked, f->request.ref.display() + " is under emergency revocation");
    flights_.complete(f->key, o);
  }
}

std::size_t Broker::clear_revocation(const policy::Revocation& r) {
  std::size_t cleared = revocations_.clear(r);
  if (cleared > 0) note_revoked(r);
  return cleared;
}

std::string Broker::key_for(const catalog::Reference& ref) const { return key_for_canonical(ref.canonical()); }

std::string Broker::key_for_canonical(std::string canonical) const {
  for (const upstream::Provider* p : sources_.primaries) {
    if (auto k = p->resolved_key(canonical)) return *k;
  }
  return canonical;
}

void Broker::update_mode() {
  cache::Mode next = cache::Mode::normal;
  if (!sources_.primaries.empty()) {
    next = cache::Mode::fallback;
    for (const upstream::Provider* p : sources_.primaries) {
      if (p->available()) next = cache::Mode::normal;
    }
  }
  if (next == cache_.mode()) return;
  MonoTime now = clock_.now();
  if (next == cache::Mode::fallback) {
    fallback_since_ = now;
  } else {
    fallback_total_ += now - fallback_since_;
  }
  if (next == cache::Mode::fallback) {
    log::warn("broker", "upstream unavailable: fallback mode (cached values served up to the fallback window)",
              {{"fallback_window", format_duration(cache_.options().fallback_window)}});
  } else {
    log::info("broker", "upstream available again: normal mode");
  }
  cache_.set_mode(next);
  if (mode_listener_) mode_listener_(next);
  // The upstream is back: what it could not resolve before is tried now.
  if (next == cache::Mode::normal && revocations_.any_secret()) resolve_pending(nullptr, true);
}

Duration Broker::ttl_for(const catalog::Entry* entry) const {
  return cache_.ttl_for(entry != nullptr ? entry->category : std::string());
}

Broker::Outcome Broker::from_cache(cache::Served served) {
  Outcome o;
  o.source = std::move(served.source);
  o.cache = served.freshness == cache::Freshness::fresh ? CacheState::hit : CacheState::stale;
  o.fetched_at = served.fetched_at;
  o.expires_at = served.expires_at;
  o.age = served.age;
  o.value = std::make_shared<const secure::SecureBuffer>(std::move(served.value));
  return o;
}

Broker::Outcome Broker::stored(const std::string& key, const catalog::Entry* entry, secure::SecureBuffer value,
                               std::string_view source, bool cache_it) {
  Outcome o;
  o.source = std::string(source);
  o.cache = CacheState::miss;
  o.fetched_at = clock_.wall_now();
  o.expires_at = o.fetched_at + ttl_for(entry);
  if (cache_it) {
    auto r = cache_.put(key, value.bytes(), cache::Meta{o.source, entry != nullptr ? entry->category : ""});
    static log::Throttle throttle(20, std::chrono::seconds(10));
    if (!r && throttle.allow(clock_.now())) {
      log::warn("broker", "value served but not cached",
                {{"ref", key}, {"reason", r.error().message}, {"suppressed", throttle.suppressed()}});
    }
  }
  o.value = std::make_shared<const secure::SecureBuffer>(std::move(value));
  return o;
}

Duration Broker::fallback_time() const noexcept {
  Duration total = fallback_total_;
  if (cache_.mode() == cache::Mode::fallback) total += clock_.now() - fallback_since_;
  return total;
}

void Broker::start_fetch(std::shared_ptr<Fetch> f) {
  ++fetches_;
  fetching_[f->key] = f;
  try_primary(std::move(f), 0);
}

void Broker::complete(const std::shared_ptr<Fetch>& f, const Outcome& o) {
  if (f->dropped) return;  // revoked meanwhile: its waiters were answered
  auto it = fetching_.find(f->key);
  if (it != fetching_.end() && it->second == f) fetching_.erase(it);
  flights_.complete(f->key, o);
}

void Broker::try_primary(std::shared_ptr<Fetch> f, std::size_t next) {
  for (; next < sources_.primaries.size(); ++next) {
    upstream::Provider* p = sources_.primaries[next];
    if (!p->holds(f->request.entry.get())) continue;
    p->fetch(f->request, [this, f, next](upstream::FetchResult r) { on_primary(f, next, std::move(r)); });
    return;
  }
  after_primaries(std::move(f));
}

void Broker::on_primary(std::shared_ptr<Fetch> f, std::size_t index, upstream::FetchResult r) {
  upstream::Provider* p = sources_.primaries[index];
  update_mode();
  if (f->dropped) return;  // revoked while in flight: the value is not kept
  if (r) {
    if (revocations_.any_unresolved() && resolver() != nullptr) {
      // A revocation made while no upstream could resolve it may name this
      // secret by another spelling: resolve those first (the upstream has
      // just answered), then decide whether this value may be kept.
      auto value = std::make_shared<secure::SecureBuffer>(std::move(*r));
      resolve_pending([this, f, index, value] { primary_value(f, index, std::move(*value)); }, true);
      return;
    }
    primary_value(f, index, std::move(*r));
    return;
  }
  const upstream::FetchFailure& failure = r.error();
  if (failure.kind == upstream::FetchError::unavailable) {
    // Only an outage lets the next server, then the fallbacks, stand in.
    f->reasons.push_back(failure.message);
    return try_primary(std::move(f), index + 1);
  }
  if (failure.kind == upstream::FetchError::not_found || failure.kind == upstream::FetchError::denied) {
    // The secret is gone, or out of reach: no cached copy may outlive it.
    cache_.invalidate(f->key);
    if (auto k = p->resolved_key(f->request.ref.canonical())) cache_.invalidate(*k);
  }
  // Every other answer is final: a 401 is an alert, not an outage — no other
  // source may stand in for a secret the upstream will not vouch for.
  Outcome o;
  o.refusal = refusal(refusal_code(failure.kind), failure.message);
  complete(f, o);
}

void Broker::primary_value(const std::shared_ptr<Fetch>& f, std::size_t index, secure::SecureBuffer value) {
  if (f->dropped) return;  // revoked while it waited
  upstream::Provider* p = sources_.primaries[index];
  const catalog::Entry* entry = f->request.entry.get();
  // Stored under the resolved IDs, which later lookups of any spelling of
  // this reference use too; the waiters of this flight are answered here.
  std::string key = p->resolved_key(f->request.ref.canonical()).value_or(f->key);
  bool keep = revocation_for("", entry, f->request.ref) == nullptr;
  Outcome o = stored(key, entry, std::move(value), p->source(), keep);
  if (key != f->key) cache_.invalidate(f->key);  // an entry under the name form would shadow nothing but memory
  complete(f, o);
}

void Broker::after_primaries(std::shared_ptr<Fetch> f) {
  if (sources_.primaries.empty() || f->reasons.empty()) {
    try_fallbacks(std::move(f), 0);
    return;
  }
  // Every upstream is unavailable: a cached value within its window bridges.
  auto stale = cache_.get_stale(f->key);
  if (stale) return complete(f, from_cache(std::move(*stale)));
  std::string upstream_reasons;
  for (const auto& r : f->reasons) upstream_reasons += (upstream_reasons.empty() ? "" : "; ") + r;
  f->reasons = {"the upstream is unavailable (" + upstream_reasons + ") and no cached value is within the " +
                format_duration(cache_.options().fallback_window) + " fallback window"};
  try_fallbacks(std::move(f), 0);
}

void Broker::try_fallbacks(std::shared_ptr<Fetch> f, std::size_t next) {
  const catalog::Entry* entry = f->request.entry.get();
  if (const policy::Revocation* rv = unchecked_for(entry)) {
    // A secret is revoked and the upstream has not yet said whether this
    // catalog entry is that secret by another spelling: fail closed.
    bool holds = false;
    for (std::size_t i = next; i < sources_.fallbacks.size(); ++i) holds = holds || sources_.fallbacks[i]->holds(entry);
    if (holds) {
      Outcome o;
      o.refusal = refusal(http::ErrorCode::upstream_unavailable,
                          "the fallbacks for \"" + entry->type + "\" are withheld: an emergency revocation (" +
                              rv->target +
                              ") cannot yet be told apart from this secret, and the upstream must say (" +
                              (f->reasons.empty() ? std::string("it has not") : f->reasons.back()) + ")");
      return complete(f, o);
    }
  }
  for (; next < sources_.fallbacks.size(); ++next) {
    upstream::Provider* p = sources_.fallbacks[next];
    if (!p->holds(entry)) continue;
    p->fetch(f->request, [this, f, next, p](upstream::FetchResult r) mutable {
      if (f->dropped) return;
      if (r) {
        // With an upstream, a fallback value bridges the outage only: it is
        // not cached, so the upstream's value wins as soon as it is back.
        bool cache_it = sources_.primaries.empty() && revocation_for("", f->request.entry.get(), f->request.ref) == nullptr;
        complete(f, stored(f->key, f->request.entry.get(), std::move(*r), p->source(), cache_it));
        return;
      }
      if (r.error().kind == upstream::FetchError::no_memory) {
        Outcome o;
        o.refusal = refusal(refusal_code(r.error().kind), r.error().message);
        return complete(f, o);
      }
      f->reasons.push_back(r.error().message);
      try_fallbacks(std::move(f), next + 1);
    });
    return;
  }
  // Nothing could provide it.
  Outcome o;
  if (f->reasons.empty()) {
    o.refusal = refusal(http::ErrorCode::not_found,
                        "no source holds this secret: no upstream is configured and the catalog names no "
                        "environment variable or systemd credential for it");
  } else {
    std::string message;
    for (const auto& r : f->reasons) message += (message.empty() ? "" : "; ") + r;
    o.refusal = refusal(http::ErrorCode::upstream_unavailable, message);
  }
  complete(f, o);
}

}  // namespace chitty::broker
