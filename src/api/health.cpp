#include "chitty/api/health.hpp"

#include <unistd.h>

#include "chitty/base/time_format.hpp"
#include "chitty/json/writer.hpp"
#include "chitty_version.h"

namespace chitty::api {

namespace {

template <typename T, typename Emit>
void fact(json::Writer& w, std::string_view key, const identity::Fact<T>& f, Emit emit) {
  w.key(key);
  if (f.is_known()) {
    emit(f.value());
  } else {
    w.null();
  }
}

void string_fact(json::Writer& w, std::string_view key, const identity::Fact<std::string>& f) {
  fact(w, key, f, [&](const std::string& v) {
    if (v.empty()) {
      w.null();  // established: there is none
    } else {
      w.string(v);
    }
  });
}

}  // namespace

void write_identity(json::Writer& w, const identity::Identity& id) {
  w.begin_object();
  fact(w, "uid", id.uid, [&](uid_t v) { w.uinteger(v); });
  fact(w, "gid", id.gid, [&](gid_t v) { w.uinteger(v); });
  fact(w, "pid", id.pid, [&](pid_t v) { w.integer(v); });
  fact(w, "namespace_pid", id.namespace_pid, [&](pid_t v) { w.integer(v); });
  fact(w, "nested_pid_namespace", id.nested_pid_namespace, [&](bool v) { w.boolean(v); });
  string_fact(w, "exe", id.exe);
  string_fact(w, "cgroup", id.cgroup);
  string_fact(w, "unit", id.unit);
  string_fact(w, "user_unit", id.user_unit);
  string_fact(w, "container", id.container);
  string_fact(w, "container_runtime", id.container_runtime);
  w.key("pidfd").string(identity::pidfd_source_name(id.pidfd_source));
  w.key("kernel").begin_object();
  w.key("uid").uinteger(id.raw_uid);
  w.key("gid").uinteger(id.raw_gid);
  w.key("pid").integer(id.raw_pid);
  w.end_object();
  w.key("unknown").begin_object();
  auto reason = [&](std::string_view key, const auto& f) {
    if (!f.is_known()) w.key(key).string(f.reason());
  };
  reason("uid", id.uid);
  reason("gid", id.gid);
  reason("pid", id.pid);
  reason("namespace_pid", id.namespace_pid);
  reason("nested_pid_namespace", id.nested_pid_namespace);
  reason("exe", id.exe);
  reason("cgroup", id.cgroup);
  reason("unit", id.unit);
  reason("user_unit", id.user_unit);
  reason("container", id.container);
  reason("container_runtime", id.container_runtime);
  w.end_object();
  w.end_object();
}

std::string health_body(const HealthContext& ctx, const identity::Identity* caller) {
  std::string body;
  body.reserve(256);
  json::Writer w(body);
  MonoTime now = ctx.clock->now();
  w.begin_object();
  bool fallback = ctx.cache != nullptr && ctx.cache->mode() == cache::Mode::fallback;
  bool upstream_trouble = false;
  for (const auto* c : ctx.connect) {
    auto h = c->status().health;
    upstream_trouble = upstream_trouble || h == upstream::ConnectStatus::Health::unreachable ||
                       h == upstream::ConnectStatus::Health::unauthorized ||
                       h == upstream::ConnectStatus::Health::rate_limited;
  }
  // Degraded, not unhealthy: the agent still serves what it can (cached
  // values within the window, fallbacks), and a health check must not kill
  // it while it bridges an outage.
  // The audit backlog growing (the sink failing, the spool in its reserve)
  // is worth a look too; a full spool means nothing can be served.
  bool audit_trouble = false, audit_full = false;
  if (ctx.recorder != nullptr) {
    auto r = ctx.recorder->room();
    audit_full = r == audit::Spool::Room::full;
    audit_trouble = r != audit::Spool::Room::normal;
  }
  if (ctx.shipper != nullptr && ctx.shipper->status().consecutive_failures > 0) audit_trouble = true;
  w.key("status").string(audit_full ? "unhealthy" : fallback || upstream_trouble || audit_trouble ? "degraded" : "healthy");
  if (ctx.cache != nullptr) w.key("mode").string(cache::mode_name(ctx.cache->mode()));
  w.key("version").string(CHITTY_VERSION);
  w.key("uptime_seconds").integer(std::chrono::duration_cast<std::chrono::seconds>(now - ctx.started).count());
  w.key("started_at").string(ctx.started_at.empty() ? format_rfc3339_ms(ctx.started_wall) : ctx.started_at);
  static const pid_t pid = getpid();
  w.key("pid").integer(pid);
  if (ctx.cache != nullptr && ctx.fallback_window.count() > 0) {
    w.key("fallback_window_seconds").integer(std::chrono::duration_cast<std::chrono::seconds>(ctx.fallback_window).count());
  }
  if (!ctx.connect.empty()) {
    w.key("upstream").begin_object();
    for (const auto* c : ctx.connect) {
      const upstream::ConnectStatus& st = c->status();
      w.key(c->options().name == "primary" ? "onepassword_connect" : "onepassword_connect_" + c->options().name);
      w.begin_object();
      w.key("status").string(upstream::connect_health_name(st.health));
      w.key("url").string(c->options().url);
      w.key("circuit").string(upstream::breaker_state_name(st.breaker));
      w.key("last_success");
      if (st.last_success) w.string(format_rfc3339_ms(*st.last_success)); else w.null();
      w.key("last_failure");
      if (st.last_failure) w.string(format_rfc3339_ms(*st.last_failure)); else w.null();
      w.key("unavailable_since");
      if (st.unavailable_since) w.string(format_rfc3339_ms(*st.unavailable_since)); else w.null();
      w.key("last_error");
      if (st.last_error.empty()) w.null(); else w.string(st.last_error);
      w.key("latency_ms").number(std::chrono::duration<double, std::milli>(st.last_latency).count());
      w.key("server_version");
      if (st.server_version.empty()) w.null(); else w.string(st.server_version);
      w.key("dependencies").begin_object();
      for (const auto& [service, state] : st.dependencies) w.key(service).string(state);
      w.end_object();
      w.key("requests").uinteger(st.requests);
      w.key("failures").uinteger(st.failures);
      w.key("resolutions").uinteger(st.resolutions);
      w.end_object();
    }
    w.end_object();
  }
  if (ctx.spool != nullptr) {
    w.key("audit").begin_object();
    const char* room = "normal";
    if (ctx.recorder != nullptr) {
      auto r = ctx.recorder->room();
      room = r == audit::Spool::Room::full ? "full" : r == audit::Spool::Room::reserve ? "reserve" : "normal";
    }
    w.key("spool").string(room);
    w.key("last_seq").uinteger(ctx.spool->last_seq());
    w.key("backlog").uinteger(ctx.spool->backlog());
    w.key("spool_bytes").uinteger(ctx.spool->bytes());
    w.key("max_spool_bytes").uinteger(ctx.spool->options().max_bytes);
    w.key("segments").uinteger(ctx.spool->segments());
    if (ctx.recorder != nullptr) {
      audit::Head h = ctx.recorder->head();
      w.key("head").string(std::to_string(h.seq) + ":" + h.mac);
      w.key("refused").uinteger(ctx.recorder->refused());
      w.key("aggregated").uinteger(ctx.recorder->aggregated());
    }
    w.key("sink");
    if (ctx.shipper == nullptr) {
      w.null();
    } else {
      const audit::ShipperStatus& st = ctx.shipper->status();
      w.begin_object();
      auto oldest = ctx.shipper->oldest_unshipped();
      w.key("oldest_unshipped_age_seconds");
      if (oldest) {
        w.number(std::chrono::duration<double>(ctx.clock->wall_now() - *oldest).count());
      } else {
        w.null();
      }
      w.key("last_success");
      if (st.last_success) w.string(format_rfc3339_ms(*st.last_success)); else w.null();
      w.key("last_error");
      if (st.last_error.empty()) w.null(); else w.string(st.last_error);
      w.key("errors").uinteger(st.errors);
      w.key("shipped_events").uinteger(st.events);
      w.end_object();
    }
    w.end_object();
  }
  if (ctx.server != nullptr) {
    const server::ServerStats& s = ctx.server->stats();
    w.key("server").begin_object();
    w.key("connections").uinteger(s.connections);
    w.key("accepted").uinteger(s.accepted);
    w.key("requests").uinteger(s.requests);
    w.key("refused_connections").uinteger(s.rejected_busy + s.rejected_per_uid);
    w.key("protocol_errors").uinteger(s.protocol_errors);
    w.key("timeouts").uinteger(s.timeouts);
    w.end_object();
  }
  if (ctx.cache != nullptr) {
    cache::Cache::Stats c = ctx.cache->stats();
    w.key("cache").begin_object();
    w.key("entries").uinteger(c.entries);
    w.key("max_entries").uinteger(ctx.cache->options().max_entries);
    w.key("sealed_bytes").uinteger(c.locked_bytes);
    w.key("max_sealed_bytes").uinteger(c.max_locked_bytes);
    w.key("hits").uinteger(c.hits);
    w.key("stale_hits").uinteger(c.stale_hits);
    w.key("misses").uinteger(c.misses);
    w.key("evictions").uinteger(c.evictions);
    if (ctx.broker != nullptr) {
      w.key("fetches").uinteger(ctx.broker->fetches_started());
      w.key("fetches_in_flight").uinteger(ctx.broker->fetches_in_flight());
    }
    w.end_object();
  }
  if (ctx.arena != nullptr) {
    w.key("memory").begin_object();
    w.key("backing").string(secure::backing_name(ctx.arena->backing()));
    w.key("locked_bytes_used").uinteger(ctx.arena->used());
    // What can be allocated, not what is nominally free: every available
    // byte belongs to some block the arena can hand out now, and the
    // largest single block says whether a large answer fits.
    w.key("locked_bytes_available").uinteger(ctx.arena->available());
    w.key("largest_allocatable_block").uinteger(ctx.arena->largest_block());
    w.key("free_spans").uinteger(ctx.arena->free_spans());
    if (ctx.sealer != nullptr) w.key("cipher").string(secure::cipher_name(ctx.sealer->cipher()));
    w.end_object();
  }
  if (caller != nullptr) {
    w.key("caller");
    write_identity(w, *caller);
  }
  w.end_object();
  return body;
}

void register_health_routes(server::Router& router, HealthContext& ctx) {
  ctx.started_at = format_rfc3339_ms(ctx.started_wall);
  auto handler = [&ctx](server::Call call) {
    identity::Identity caller = call.caller();  // re-checked against the pinned process
    // 503 only when nothing can be served: a full audit spool refuses every
    // request. An upstream outage is bridged: still 200, "degraded".
    bool full = ctx.recorder != nullptr && ctx.recorder->room() == audit::Spool::Room::full;
    call.respond(http::Response::json(full ? 503 : 200, health_body(ctx, &caller)));
  };
  router.add(http::Method::get, "/health", handler);
  router.add(http::Method::get, "/api/onepassword/health", handler);
  router.add(http::Method::get, "/api/credentials/health", handler);
}

}  // namespace chitty::api
