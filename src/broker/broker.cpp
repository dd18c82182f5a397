#include "chitty/broker/broker.hpp"

#include <utility>

#include "chitty/base/units.hpp"
#include "chitty/log/log.hpp"

namespace chitty::broker {

std::string_view cache_state_name(CacheState s) noexcept {
  switch (s) {
    case CacheState::hit: return "hit";
    case CacheState::stale: return "stale";
    case CacheState::miss: return "miss";
  }
  return "miss";
}

std::string_view cache_header(CacheState s) noexcept {
  switch (s) {
    case CacheState::hit: return "HIT";
    case CacheState::stale: return "STALE";
    case CacheState::miss: return "MISS";
  }
  return "MISS";
}

namespace {

Refusal refusal(http::ErrorCode code, std::string message) { return Refusal{code, std::move(message)}; }

void fill_caller(audit::Event& e, const identity::Identity& caller) {
  if (caller.uid.is_known()) e.uid = caller.uid.value();
  if (caller.pid.is_known()) e.pid = caller.pid.value();
  if (caller.exe.is_known()) e.exe = caller.exe.value();
}

}  // namespace

Broker::Broker(cache::Cache& cache, Sources sources, const Clock& clock)
    : cache_(cache), sources_(std::move(sources)), clock_(clock),
      catalog_(std::make_shared<catalog::Catalog>()), policy_(std::make_shared<policy::Policy>()) {}

audit::Event Broker::refused_event(const identity::Identity& caller, const std::string& request_id,
                                   std::string action) const {
  audit::Event e;
  e.at = clock_.wall_now();
  e.request_id = request_id;
  e.action = std::move(action);
  fill_caller(e, caller);
  if (const policy::Service* s = policy_->service_for(caller)) e.service = s->name;
  e.mode = cache::mode_name(cache_.mode());
  return e;
}

void Broker::retrieve(const identity::Identity& caller, Ask ask, const std::string& request_id, Done done) {
  MonoTime started = clock_.now();
  Answer answer;
  audit::Event& ev = answer.event;
  ev = refused_event(caller, request_id, ask.action);
  ev.credential_type = ask.credential_type;
  auto refuse = [&](http::ErrorCode code, std::string message) {
    ev.mode = cache::mode_name(cache_.mode());
    ev.latency_us = std::chrono::duration_cast<std::chrono::microseconds>(clock_.now() - started).count();
    answer.outcome = tl::unexpected(refusal(code, std::move(message)));
    done(std::move(answer));
  };

  // What is asked for: a catalog type, or a reference (in the catalog or not).
  std::shared_ptr<const catalog::Entry> entry;
  catalog::Reference ref;
  if (ask.ref) {
    ref = std::move(*ask.ref);
    entry = catalog_->by_key(ref.canonical());
  } else {
    entry = catalog_->by_type(ask.credential_type);
    if (!entry) return refuse(http::ErrorCode::not_found, "unknown credential type \"" + ask.credential_type + "\"");
    ref = entry->ref;
  }
  std::string key = key_for(ref);
  ev.ref = key;
  if (entry && ev.credential_type.empty()) ev.credential_type = entry->type;

  // Who asks, and may they.
  const policy::Service* service = policy_->service_for(caller);
  if (service == nullptr) {
    std::string who = caller.uid.is_known() ? "uid " + std::to_string(caller.uid.value()) : "a caller of unknown uid";
    return refuse(http::ErrorCode::forbidden, "no [[service]] is configured for this caller (" + who + ")");
  }
  if (ask.claimed_service && *ask.claimed_service != service->name) {
    return refuse(http::ErrorCode::context_mismatch,
                  "context.service \"" + *ask.claimed_service + "\" is not the calling service \"" + service->name + "\"");
  }
  if (!policy::Policy::allows(*service, entry.get(), ref)) {
    return refuse(http::ErrorCode::forbidden, "service \"" + service->name + "\" may not read " + ref.display());
  }

  // A waiter: finishes this request from a fetch's outcome (or a cache hit).
  std::string display = ref.display();
  auto finish = [this, started, display, done = std::move(done)](Answer a, const Outcome& o) mutable {
    a.event.mode = cache::mode_name(cache_.mode());
    a.event.latency_us = std::chrono::duration_cast<std::chrono::microseconds>(clock_.now() - started).count();
    if (o.refusal) {
      a.outcome = tl::unexpected(*o.refusal);
    } else {
      a.event.cache = cache_state_name(o.cache);
      a.event.source = o.source;
      a.outcome = Granted{o.value, display, o.source, o.cache, cache_.mode(), o.fetched_at, o.expires_at, o.age};
    }
    done(std::move(a));
  };

  if (!ask.refresh) {
    auto served = cache_.get(key);
    if (served) {
      Outcome o;
      o.source = served->source;
      o.cache = served->freshness == cache::Freshness::fresh ? CacheState::hit : CacheState::stale;
      o.fetched_at = served->fetched_at;
      o.expires_at = served->expires_at;
      o.age = served->age;
      o.value = std::make_shared<const secure::SecureBuffer>(std::move(served->value));
      return finish(std::move(answer), o);
    }
    if (served.error() == cache::Miss::no_memory) {
      return refuse(http::ErrorCode::server_busy, "no locked memory to serve the value right now; retry shortly");
    }
  }

  // A fetch: joined if one for this key is already running.
  auto shared_answer = std::make_shared<Answer>(std::move(answer));
  auto shared_finish = std::make_shared<decltype(finish)>(std::move(finish));
  bool first = flights_.join(key, [shared_answer, shared_finish](const Outcome& o) {
    (*shared_finish)(std::move(*shared_answer), o);
  });
  if (first) {
    auto f = std::make_shared<Fetch>();
    f->key = key;
    f->request = upstream::FetchRequest{std::move(entry), std::move(ref), ask.refresh};
    start_fetch(std::move(f));
  }
}

std::string Broker::key_for(const catalog::Reference& ref) const {
  for (const upstream::Provider* p : sources_.primaries) {
    if (auto k = p->resolved_key(ref)) return *k;
  }
  return ref.canonical();
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
  if (next == cache::Mode::fallback) {
    log::warn("broker", "upstream unavailable: fallback mode (cached values served up to the fallback window)",
              {{"fallback_window", format_duration(cache_.options().fallback_window)}});
  } else {
    log::info("broker", "upstream available again: normal mode");
  }
  cache_.set_mode(next);
}

Duration Broker::ttl_for(const catalog::Entry* entry) const {
  return cache_.ttl_for(entry != nullptr ? entry->category : std::string());
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
    if (!r) log::warn("broker", "value served but not cached", {{"ref", key}, {"reason", r.error().message}});
  }
  o.value = std::make_shared<const secure::SecureBuffer>(std::move(value));
  return o;
}

void Broker::start_fetch(std::shared_ptr<Fetch> f) {
  ++fetches_;
  try_primary(std::move(f), 0);
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
  const catalog::Entry* entry = f->request.entry.get();
  if (r) {
    // Stored under the resolved IDs, which later lookups of any spelling of
    // this reference use too; the waiters of this flight are answered here.
    std::string key = p->resolved_key(f->request.ref).value_or(f->key);
    Outcome o = stored(key, entry, std::move(*r), p->source(), true);
    if (key != f->key) cache_.invalidate(f->key);  // an entry under the name form would shadow nothing but memory
    flights_.complete(f->key, o);
    return;
  }
  const upstream::FetchFailure& failure = r.error();
  Outcome o;
  auto forget = [&] {
    cache_.invalidate(f->key);
    if (auto k = p->resolved_key(f->request.ref)) cache_.invalidate(*k);
  };
  switch (failure.kind) {
    case upstream::FetchError::not_found:
      // The secret is gone: no fallback, and no cached copy may outlive it.
      forget();
      o.refusal = refusal(http::ErrorCode::not_found, failure.message);
      flights_.complete(f->key, o);
      return;
    case upstream::FetchError::denied:
      forget();
      o.refusal = refusal(http::ErrorCode::forbidden, failure.message);
      flights_.complete(f->key, o);
      return;
    case upstream::FetchError::unauthorized:
      // The agent's own token was refused: an alert, not an outage — and no
      // other source may stand in for a secret the upstream will not vouch for.
      o.refusal = refusal(http::ErrorCode::upstream_unavailable, failure.message);
      flights_.complete(f->key, o);
      return;
    case upstream::FetchError::rejected:
      o.refusal = refusal(http::ErrorCode::upstream_unavailable, failure.message);
      flights_.complete(f->key, o);
      return;
    case upstream::FetchError::no_memory:
      o.refusal = refusal(http::ErrorCode::server_busy, failure.message);
      flights_.complete(f->key, o);
      return;
    case upstream::FetchError::unavailable:
      break;
  }
  f->reasons.push_back(failure.message);
  try_primary(std::move(f), index + 1);
}

void Broker::after_primaries(std::shared_ptr<Fetch> f) {
  if (sources_.primaries.empty() || f->reasons.empty()) {
    try_fallbacks(std::move(f), 0);
    return;
  }
  // Every upstream is unavailable: a cached value within its window bridges.
  auto stale = cache_.get_stale(f->key);
  if (stale) {
    Outcome o;
    o.source = stale->source;
    o.cache = stale->freshness == cache::Freshness::fresh ? CacheState::hit : CacheState::stale;
    o.fetched_at = stale->fetched_at;
    o.expires_at = stale->expires_at;
    o.age = stale->age;
    o.value = std::make_shared<const secure::SecureBuffer>(std::move(stale->value));
    flights_.complete(f->key, o);
    return;
  }
  std::string upstream_reasons;
  for (const auto& r : f->reasons) upstream_reasons += (upstream_reasons.empty() ? "" : "; ") + r;
  f->reasons = {"the upstream is unavailable (" + upstream_reasons + ") and no cached value is within the " +
                format_duration(cache_.options().fallback_window) + " fallback window"};
  try_fallbacks(std::move(f), 0);
}

void Broker::try_fallbacks(std::shared_ptr<Fetch> f, std::size_t next) {
  const catalog::Entry* entry = f->request.entry.get();
  for (; next < sources_.fallbacks.size(); ++next) {
    upstream::Provider* p = sources_.fallbacks[next];
    if (!p->holds(entry)) continue;
    p->fetch(f->request, [this, f, next, p](upstream::FetchResult r) mutable {
      if (r) {
        // With an upstream, a fallback value bridges the outage only: it is
        // not cached, so the upstream's value wins as soon as it is back.
        bool cache_it = sources_.primaries.empty();
        flights_.complete(f->key, stored(f->key, f->request.entry.get(), std::move(*r), p->source(), cache_it));
        return;
      }
      if (r.error().kind == upstream::FetchError::no_memory) {
        Outcome o;
        o.refusal = refusal(http::ErrorCode::server_busy, r.error().message);
        flights_.complete(f->key, o);
        return;
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
  flights_.complete(f->key, o);
}

}  // namespace chitty::broker
