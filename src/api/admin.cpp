// The admin routes (SPEC §4): GET /api/onepassword/insights/{service} and
// GET /api/credentials/audit, for callers whose [[service]] says admin.
// They read the audit trail; they never show a value.
#include <algorithm>
#include <map>
#include <set>

#include "answer.hpp"
#include "chitty/api/credentials.hpp"
#include "chitty/api/requests.hpp"
#include "chitty/base/time_format.hpp"
#include "chitty/json/writer.hpp"

namespace chitty::api {

bool admin_or_refuse(CredentialsContext& ctx, server::Call& call, const Route& route, audit::Event& ev) {
  identity::Identity caller = call.caller();
  if (auto limited = ctx.gate->take(caller)) {
    refuse(ctx, call, route, ev, http::ErrorCode::rate_limited, std::move(limited->message), limited->retry_after);
    return false;
  }
  const policy::Service* s = ctx.rules->service_of(caller);
  if (s == nullptr || !s->admin) {
    refuse(ctx, call, route, ev, http::ErrorCode::forbidden,
           s == nullptr ? "admin routes need a [[service]] with admin = true; no service matches this caller"
                        : "service \"" + s->name + "\" is not an admin service");
    return false;
  }
  return true;
}

namespace {

using http::ErrorCode;

// Reads the audit trail off the loop (the spool can be hundreds of MiB):
// the events are read, filtered and rendered into the answer's body on the
// thread pool by `render`; the answer goes out on the loop. One read at a
// time: another is asked to retry shortly.
void read_audit(CredentialsContext& ctx, server::Call call, const Route& route, audit::Event ev, audit::Query query,
                audit::Recorder::Render render) {
  if (ctx.audit_scan_running) {
    return refuse(ctx, call, route, std::move(ev), ErrorCode::server_busy,
                  "another audit read is running; retry shortly", std::chrono::seconds(1));
  }
  ctx.audit_scan_running = true;
  auto held = std::make_shared<server::Call>(std::move(call));
  auto shared_ev = std::make_shared<audit::Event>(std::move(ev));
  try {
    ctx.audit->render_async(query, std::move(render), [&ctx, held, route, shared_ev](std::string body) {
      ctx.audit_scan_running = false;
      shared_ev->decision = audit::Decision::allow;
      answer(ctx, *held, route, std::move(*shared_ev), http::Response::json(200, std::move(body)));
    });
  } catch (...) {
    ctx.audit_scan_running = false;  // (a recorder in memory renders here and may throw)
    throw;
  }
}

// The body of GET /api/credentials/audit (pure: runs on the thread pool).
std::string audit_body(const std::vector<audit::Event>& events, const std::string& request_id) {
  std::string body;
  json::Writer w(body);
  w.begin_object();
  w.key("events").begin_array();
  for (const auto& e : events) {
    w.begin_object();
    audit::write_event_fields(w, e);
    w.end_object();
  }
  w.end_array();
  w.key("count").uinteger(events.size());
  http::write_metadata(w, request_id);
  w.end_object();
  return body;
}

// What prediction has learnt of a service, taken on the loop thread (the
// body is written on the pool): due times as wall-clock times.
struct Prediction {
  predict::Insights insights;
  MonoTime now{};
  WallTime wall{};
};

std::string insights_body(const std::vector<audit::Event>& events, const std::string& service,
                          const std::string& request_id, const std::optional<Prediction>& prediction,
                          const std::optional<risk::Insight>& baseline);

void audit_route(CredentialsContext& ctx, server::Call call) {
  Route route = route_of(ctx, call);
  audit::Event ev = ctx.broker->refused_event(call.caller(), call.request_id(), "audit-read");
  if (!admin_or_refuse(ctx, call, route, ev)) return;
  auto q = read_audit_query(call.request().query());
  if (!q) return refuse(ctx, call, route, std::move(ev), q.error().code, q.error().message);
  std::string id = call.request_id();
  read_audit(ctx, std::move(call), route, std::move(ev), audit::Query{q->service, q->since, q->limit},
             [id](const std::vector<audit::Event>& events) { return audit_body(events, id); });
}

void insights_route(CredentialsContext& ctx, server::Call call) {
  Route route = route_of(ctx, call);
  audit::Event ev = ctx.broker->refused_event(call.caller(), call.request_id(), "insights");
  if (!admin_or_refuse(ctx, call, route, ev)) return;
  std::string service(call.param("service"));
  if (ctx.rules->policy().service_named(service) == nullptr) {
    return refuse(ctx, call, route, std::move(ev), ErrorCode::not_found, "no [[service]] is named \"" + service + "\"");
  }
  std::string id = call.request_id();
  std::optional<Prediction> prediction;
  if (ctx.prediction != nullptr && ctx.clock != nullptr) {
    prediction = Prediction{ctx.prediction->insights(service), ctx.clock->now(), ctx.clock->wall_now()};
  }
  std::optional<risk::Insight> baseline;
  if (ctx.risk != nullptr) baseline = ctx.risk->insight(service);
  read_audit(ctx, std::move(call), route, std::move(ev), audit::Query{service, std::nullopt, 100000},
             [service, id, prediction, baseline](const std::vector<audit::Event>& events) {
               return insights_body(events, service, id, prediction, baseline);
             });
}

// The body of GET /api/onepassword/insights/{service} (pure: runs on the
// thread pool).
// `key`: an array of one object per item, its members written by `members`.
template <typename Items, typename Members>
void objects(json::Writer& w, std::string_view key, const Items& items, Members members) {
  w.key(key).begin_array();
  for (const auto& item : items) {
    w.begin_object();
    members(item);
    w.end_object();
  }
  w.end_array();
}

// "prediction": the start-up set, the strongest co-access pairs, the
// periods learnt and what is expected next (docs/prediction.md).
void write_prediction(json::Writer& w, const Prediction& p) {
  const predict::Insights& in = p.insights;
  w.key("prediction").begin_object();
  w.key("startups_seen").uinteger(in.startups_seen);
  w.key("startup_set").begin_array();
  for (const auto& ref : in.startup_set) w.string(ref);
  w.end_array();
  objects(w, "co_access", in.top_pairs, [&w](const predict::Insights::Pair& pair) {
    w.key("after").string(pair.from).key("then").string(pair.to);
    w.key("probability").number(pair.probability).key("count").uinteger(pair.count);
  });
  objects(w, "periods", in.periods, [&w](const predict::Insights::Period& period) {
    w.key("ref").string(period.ref);
    w.key("period_seconds").number(std::chrono::duration<double>(period.period).count());
    w.key("next_due").string(format_rfc3339_ms(period.next_due));
  });
  objects(w, "predicted_next", in.next, [&w, &p](const predict::Prediction& next) {
    w.key("ref").string(next.ref).key("kind").string(predict::kind_name(next.kind));
    w.key("due").string(format_rfc3339_ms(p.wall + (next.due - p.now))).key("confidence").number(next.confidence);
  });
  w.end_object();
}

// How many anomalies insights list.
constexpr std::size_t kAnomalies = 20;

// "risk": the baseline the engine learnt for the service, and — from the
// audit events in the window — how its requests scored and its most recent
// anomalies (requests scored outside the allow band) with their factors.
void write_risk_insights(json::Writer& w, const std::vector<audit::Event>& events, const risk::Insight& b) {
  std::array<std::uint64_t, 4> bands{};
  std::array<std::uint64_t, 10> tens{};
  std::uint64_t scored = 0, sum = 0;
  std::vector<const audit::Event*> anomalies;
  for (const auto& e : events) {
    if (!e.risk) continue;
    ++scored;
    sum += static_cast<std::uint64_t>(std::clamp(e.risk->score, 0, 100));
    ++tens[static_cast<std::size_t>(std::clamp(e.risk->score, 0, 99) / 10)];
    for (std::size_t i = 0; i < bands.size(); ++i) {
      if (risk::band_name(static_cast<risk::Band>(i)) == e.risk->decision) ++bands[i];
    }
    if (e.risk->decision != "allow") anomalies.push_back(&e);
  }
  if (anomalies.size() > kAnomalies) anomalies.erase(anomalies.begin(), anomalies.end() - kAnomalies);

  w.key("risk").begin_object();
  w.key("baseline").begin_object();
  w.key("known").boolean(b.known);
  w.key("learning").boolean(b.learning);
  w.key("first_served");
  if (b.first_served) w.string(format_rfc3339_ms(*b.first_served)); else w.null();
  w.key("served").uinteger(b.served);
  w.key("peak_requests_per_minute").uinteger(b.peak_minute);
  w.key("hours_utc").begin_array();
  for (auto n : b.hours) w.uinteger(n);
  w.end_array();
  objects(w, "usual_refs", b.refs, [&w](const std::pair<std::string, std::uint64_t>& r) {
    w.key("ref").string(r.first).key("served").uinteger(r.second);
  });
  for (auto [key, list] : {std::pair{"executables", &b.exes}, {"units", &b.units}, {"uids", &b.uids}}) {
    w.key(key).begin_array();
    for (const auto& x : *list) w.string(x);
    w.end_array();
  }
  w.end_object();
  w.key("scores").begin_object();
  w.key("scored").uinteger(scored);
  w.key("mean");
  if (scored > 0) w.number(static_cast<double>(sum) / static_cast<double>(scored)); else w.null();
  w.key("by_decision").begin_object();
  for (std::size_t i = 0; i < bands.size(); ++i) w.key(risk::band_name(static_cast<risk::Band>(i))).uinteger(bands[i]);
  w.end_object();
  w.key("histogram").begin_array();  // 0-9, 10-19, ..., 90-100
  for (auto n : tens) w.uinteger(n);
  w.end_array();
  w.end_object();
  objects(w, "anomalies", anomalies, [&w](const audit::Event* e) {
    w.key("at").string(format_rfc3339_ms(e->at)).key("request_id").string(e->request_id);
    w.key("ref").string(e->ref).key("score").integer(e->risk->score).key("decision").string(e->risk->decision);
    w.key("outcome").string(e->code.empty() ? std::string("served") : e->code);
    objects(w, "factors", e->risk->factors, [&w](const std::pair<std::string, int>& f) {
      w.key("factor").string(f.first).key("weight").integer(f.second);
    });
  });
  w.end_object();
}

std::string insights_body(const std::vector<audit::Event>& events, const std::string& service,
                          const std::string& request_id, const std::optional<Prediction>& prediction,
                          const std::optional<risk::Insight>& baseline) {
  std::uint64_t allowed = 0, denied = 0, hits = 0, stale = 0, misses = 0;
  std::map<std::string, std::uint64_t> by_ref, by_code, by_action;
  std::optional<WallTime> first, last;
  for (const auto& e : events) {
    if (e.action == "insights" || e.action == "audit-read") continue;
    (e.decision == audit::Decision::allow ? allowed : denied)++;
    if (e.cache == "hit") ++hits;
    if (e.cache == "stale") ++stale;
    if (e.cache == "miss") ++misses;
    if (!e.ref.empty()) ++by_ref[e.ref];
    if (!e.code.empty()) ++by_code[e.code];
    ++by_action[e.action];
    if (!first) first = e.at;
    last = e.at;
  }
  std::vector<std::pair<std::string, std::uint64_t>> top(by_ref.begin(), by_ref.end());
  std::sort(top.begin(), top.end(), [](const auto& a, const auto& b) { return a.second > b.second; });
  if (top.size() > 10) top.resize(10);
  std::string body;
  json::Writer w(body);
  w.begin_object();
  w.key("service").string(service);
  w.key("window").begin_object();
  w.key("events").uinteger(allowed + denied);
  w.key("first");
  if (first) w.string(format_rfc3339_ms(*first)); else w.null();
  w.key("last");
  if (last) w.string(format_rfc3339_ms(*last)); else w.null();
  w.end_object();
  w.key("requests").begin_object();
  w.key("total").uinteger(allowed + denied);
  w.key("allowed").uinteger(allowed);
  w.key("denied").uinteger(denied);
  w.key("by_action").begin_object();
  for (const auto& [a, n] : by_action) w.key(a).uinteger(n);
  w.end_object();
  w.key("denied_by_reason").begin_object();
  for (const auto& [c, n] : by_code) w.key(c).uinteger(n);
  w.end_object();
  w.end_object();
  w.key("distinct_refs").uinteger(by_ref.size());
  objects(w, "top_refs", top, [&w](const std::pair<std::string, std::uint64_t>& r) {
    w.key("ref").string(r.first).key("requests").uinteger(r.second);
  });
  w.key("cache").begin_object();
  w.key("hits").uinteger(hits);
  w.key("stale").uinteger(stale);
  w.key("misses").uinteger(misses);
  w.key("hit_rate");
  if (hits + stale + misses > 0) {
    w.number(static_cast<double>(hits + stale) / static_cast<double>(hits + stale + misses));
  } else {
    w.null();
  }
  w.end_object();
  if (prediction) write_prediction(w, *prediction);
  if (baseline) write_risk_insights(w, events, *baseline);
  http::write_metadata(w, request_id);
  w.end_object();
  return body;
}

}  // namespace

void register_admin_routes(server::Router& router, CredentialsContext& ctx) {
  router.add(http::Method::get, "/api/credentials/audit", [&ctx](server::Call call) { audit_route(ctx, std::move(call)); });
  router.add(http::Method::get, "/api/onepassword/insights/{service}",
             [&ctx](server::Call call) { insights_route(ctx, std::move(call)); });
}

void register_metrics_route(server::Router& router, CredentialsContext& ctx, const Observed& sources) {
  router.add(http::Method::get, "/metrics", [&ctx, &sources](server::Call call) {
    Route route = route_of(ctx, call);
    http::Response r = http::Response::text(200, ctx.metrics != nullptr ? ctx.metrics->render(sources) : "");
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    if (ctx.metrics != nullptr && ctx.clock != nullptr) {
      ctx.metrics->observe(route.pattern, "none", 200, "", ctx.clock->now() - route.started);
    }
    call.respond(std::move(r));
  });
}

}  // namespace chitty::api
