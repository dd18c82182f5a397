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
  std::string key = ref.canonical();
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
  if (first) start_fetch(key, std::move(entry));
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

void Broker::start_fetch(const std::string& key, std::shared_ptr<const catalog::Entry> entry) {
  ++fetches_;
  if (sources_.primary != nullptr && sources_.primary->holds(entry.get())) {
    upstream::Provider* p = sources_.primary;
    p->fetch(entry, [this, key, entry](upstream::FetchResult r) { on_primary(key, entry, std::move(r)); });
    return;
  }
  try_fallbacks(key, std::move(entry), 0, {});
}

void Broker::on_primary(const std::string& key, std::shared_ptr<const catalog::Entry> entry, upstream::FetchResult r) {
  if (r) {
    if (cache_.mode() == cache::Mode::fallback) log::info("broker", "upstream answers again: back to normal mode");
    cache_.set_mode(cache::Mode::normal);
    flights_.complete(key, stored(key, entry.get(), std::move(*r), sources_.primary->source(), true));
    return;
  }
  const upstream::FetchFailure& f = r.error();
  Outcome o;
  switch (f.kind) {
    case upstream::FetchError::not_found:
      // The secret is gone: no fallback, and no cached copy may outlive it.
      cache_.invalidate(key);
      o.refusal = refusal(http::ErrorCode::not_found, f.message);
      flights_.complete(key, o);
      return;
    case upstream::FetchError::denied:
      cache_.invalidate(key);
      o.refusal = refusal(http::ErrorCode::forbidden, f.message);
      flights_.complete(key, o);
      return;
    case upstream::FetchError::no_memory:
      o.refusal = refusal(http::ErrorCode::server_busy, f.message);
      flights_.complete(key, o);
      return;
    case upstream::FetchError::unavailable:
      break;
  }
  if (cache_.mode() == cache::Mode::normal) {
    log::warn("broker", "upstream unavailable: fallback mode (cached values served up to the fallback window)",
              {{"reason", f.message}});
  }
  cache_.set_mode(cache::Mode::fallback);
  auto stale = cache_.get_stale(key);
  if (stale) {
    o.source = stale->source;
    o.cache = stale->freshness == cache::Freshness::fresh ? CacheState::hit : CacheState::stale;
    o.fetched_at = stale->fetched_at;
    o.expires_at = stale->expires_at;
    o.age = stale->age;
    o.value = std::make_shared<const secure::SecureBuffer>(std::move(stale->value));
    flights_.complete(key, o);
    return;
  }
  std::string why = "the upstream is unavailable (" + f.message + ") and no cached value is within the " +
                    format_duration(cache_.options().fallback_window) + " fallback window";
  try_fallbacks(key, std::move(entry), 0, {why});
}

void Broker::try_fallbacks(const std::string& key, std::shared_ptr<const catalog::Entry> entry, std::size_t next,
                           std::vector<std::string> reasons) {
  for (; next < sources_.fallbacks.size(); ++next) {
    upstream::Provider* p = sources_.fallbacks[next];
    if (!p->holds(entry.get())) continue;
    p->fetch(entry, [this, key, entry, next, reasons, p](upstream::FetchResult r) mutable {
      if (r) {
        // With an upstream, a fallback value bridges the outage only: it is
        // not cached, so the upstream's value wins as soon as it is back.
        bool cache_it = sources_.primary == nullptr;
        flights_.complete(key, stored(key, entry.get(), std::move(*r), p->source(), cache_it));
        return;
      }
      if (r.error().kind == upstream::FetchError::no_memory) {
        Outcome o;
        o.refusal = refusal(http::ErrorCode::server_busy, r.error().message);
        flights_.complete(key, o);
        return;
      }
      reasons.push_back(r.error().message);
      try_fallbacks(key, entry, next + 1, std::move(reasons));
    });
    return;
  }
  // Nothing could provide it.
  Outcome o;
  if (reasons.empty()) {
    o.refusal = refusal(http::ErrorCode::not_found,
                        "no source holds this secret: no upstream is configured and the catalog names no "
                        "environment variable or systemd credential for it");
  } else {
    std::string message;
    for (const auto& r : reasons) message += (message.empty() ? "" : "; ") + r;
    o.refusal = refusal(http::ErrorCode::upstream_unavailable, message);
  }
  flights_.complete(key, o);
}

}  // namespace chitty::broker
