#include "chitty/api/credentials.hpp"

#include <memory>
#include <optional>
#include <string>

#include "answer.hpp"
#include "chitty/api/requests.hpp"
#include "chitty/base/text.hpp"
#include "chitty/base/time_format.hpp"
#include "chitty/catalog/reference.hpp"
#include "chitty/json/secret.hpp"
#include "chitty/json/writer.hpp"
#include "chitty/log/log.hpp"

namespace chitty::api {

using http::ErrorCode;

// ---------------------------------------------------------------------------
// Answering (shared with emergency.cpp and admin.cpp through answer.hpp)

Route route_of(const CredentialsContext& ctx, const server::Call& call) {
  return Route{call.route(), ctx.clock != nullptr ? ctx.clock->now() : MonoTime{}};
}

namespace {

void count(CredentialsContext& ctx, const Route& route, std::string_view decision, int status, std::string_view code) {
  if (ctx.metrics == nullptr || ctx.clock == nullptr) return;
  ctx.metrics->observe(route.pattern, decision, status, code, ctx.clock->now() - route.started);
}

void count_risk(CredentialsContext& ctx, const audit::Event& e) {
  if (ctx.metrics != nullptr && e.risk) ctx.metrics->risk(e.risk->score, e.risk->decision);
}

// The audit trail did not take a decision's event: the request is refused
// (503 audit_unavailable), and the failure logged at a bounded rate.
void refuse_unaudited(CredentialsContext& ctx, server::Call& call, const Route& route, const Error& why,
                      std::string_view message) {
  static log::Throttle throttle(20, std::chrono::seconds(10));
  if (throttle.allow(ctx.clock != nullptr ? ctx.clock->now() : MonoTime{})) {
    log::error("api", "audit event not recorded: refusing the request",
               {{"request_id", call.request_id()}, {"reason", why.message}, {"suppressed", throttle.suppressed()}});
  }
  count(ctx, route, "deny", 503, "audit_unavailable");
  call.fail(ErrorCode::audit_unavailable, message);
}

}  // namespace

bool mcp_channel(const server::Call& call) {
  auto channel = call.request().header("X-Chitty-Channel");
  return channel && iequals(*channel, "mcp");
}

Delivery delivery_for(const CredentialsContext& ctx, const server::Call& call) {
  if (!mcp_channel(call)) return Delivery::plain;
  const policy::Service* s = ctx.rules->service_of(call.caller());
  return s != nullptr && s->mcp_release ? Delivery::released_over_mcp : Delivery::withheld;
}

void answer(CredentialsContext& ctx, server::Call& call, const Route& route, audit::Event event,
            http::Response response) {
  if (event.channel.empty() && mcp_channel(call)) event.channel = "mcp";
  if (auto r = ctx.audit->record(event); !r) {
    return refuse_unaudited(ctx, call, route, r.error(), "the decision could not be audited, so it is not carried out");
  }
  count(ctx, route, audit::decision_name(event.decision), response.status, event.code);
  count_risk(ctx, event);
  call.respond(std::move(response));
}

bool admit(CredentialsContext& ctx, server::Call& call, const Route& route, std::string_view action) {
  const identity::Identity& caller = call.caller();
  if (ctx.rules->service_of(caller) != nullptr) return true;
  if (auto limited = ctx.gate->take(caller)) {
    refuse(ctx, call, route, ctx.broker->refused_event(caller, call.request_id(), std::string(action)),
           ErrorCode::rate_limited, std::move(limited->message), limited->retry_after);
    return false;
  }
  return true;
}

void refuse(CredentialsContext& ctx, server::Call& call, const Route& route, audit::Event event, ErrorCode code,
            std::string message, std::optional<Duration> retry_after) {
  // A refusal for the request's sake is a deny; one the agent could not
  // help (upstream, memory, storage: 5xx) an error.
  event.decision = http::error_status(code) >= 500 ? audit::Decision::error : audit::Decision::deny;
  event.code = std::string(http::error_code_name(code));
  event.reason = message;
  http::Response r = event.risk ? http::Response::json(http::error_status(code), json::object_text([&](json::Writer& w) {
                                    w.key("success").boolean(false);
                                    http::write_error(w, code, message);
                                    write_metadata(w, call.request_id(), &*event.risk);
                                  }))
                                : http::error_response(code, message, call.request_id());
  if (retry_after) {
    auto secs = std::chrono::ceil<std::chrono::seconds>(*retry_after).count();
    r.headers.emplace_back("Retry-After", std::to_string(std::max<std::int64_t>(secs, 1)));
  }
  answer(ctx, call, route, std::move(event), std::move(r));
}

void refuse(CredentialsContext& ctx, server::Call& call, const Route& route, audit::Event event,
            broker::Refusal refusal) {
  refuse(ctx, call, route, std::move(event), refusal.code, std::move(refusal.message), refusal.retry_after);
}

void write_metadata(json::Writer& w, std::string_view request_id, const audit::Risk* risk) {
  w.key("metadata").begin_object();
  w.key("request_id").string(request_id);
  if (risk != nullptr) write_risk(w, *risk);
  w.end_object();
}

void write_risk(json::Writer& w, const audit::Risk& r) {
  w.key("risk_score").integer(r.score);
  w.key("risk_level").string(r.level);
  w.key("decision").string(r.decision);
  if (r.step_up) w.key("step_up").boolean(true);
  w.key("risk_factors").begin_array();
  for (const auto& [factor, weight] : r.factors) {
    w.begin_object();
    w.key("factor").string(factor);
    w.key("weight").integer(weight);
    w.end_object();
  }
  w.end_array();
}

namespace {

// ---------------------------------------------------------------------------
// Credential bodies

void credential_headers(http::Response& r, const broker::Granted& g) {
  r.headers.emplace_back("X-Cache", std::string(broker::cache_header(g.cache)));
  r.headers.emplace_back("Age", std::to_string(std::chrono::duration_cast<std::chrono::seconds>(g.age).count()));
  r.headers.emplace_back("X-Chitty-Mode", std::string(cache::mode_name(g.mode)));
}

// A credential object in pieces: `head` + value + mask + `members` + `tail`.
// Everything but the value and its mask is public and built with the writer.
// Withheld (the MCP channel of a service without mcp_release): no value,
// `"value":null,"withheld":true,"masked_value":"` + mask + members + tail.
struct CredentialParts {
  std::string head;     // {["index":N,]"success":true,"credential":{"value":"
  std::string members;  // ","masked_value":"  ...  ",  then "ref":…,"expires_at":"…"}
  std::string tail;     // ,"metadata":{…}}
  json::Encoding encoding = json::Encoding::text;
  bool withheld = false;
  std::size_t size = 0;
};

CredentialParts credential_parts(const broker::Granted& g, std::string_view request_id, std::optional<std::size_t> index,
                                 const audit::Risk* risk, Delivery delivery) {
  CredentialParts p;
  const bool withhold = delivery == Delivery::withheld;
  p.withheld = withhold;
  auto value = g.value->bytes();
  p.encoding = json::encoding_for(value);
  std::string rest = json::object_text([&](json::Writer& w) {
    if (p.encoding == json::Encoding::base64) w.key("encoding").string("base64");
    if (delivery == Delivery::released_over_mcp) w.key("released_over_mcp").boolean(true);
    w.key("ref").string(g.ref);
    w.key("source").string(g.source);
    w.key("fetched_at").string(format_rfc3339_ms(g.fetched_at));
    w.key("expires_at").string(format_rfc3339_ms(g.expires_at));
    w.key("metadata").begin_object();
    if (risk != nullptr) {
      write_risk(w, *risk);
    } else {
      w.key("decision").string("allow");
    }
    w.key("cache").string(broker::cache_state_name(g.cache));
    w.key("mode").string(cache::mode_name(g.mode));
    w.key("request_id").string(request_id);
    w.end_object();
  });
  // rest = {"ref":…,…,"metadata":{…}}: the credential's members run up to
  // ,"metadata", which closes the credential object first.
  std::size_t meta = rest.find(",\"metadata\":");
  p.head = index ? "{\"index\":" + std::to_string(*index) + ",\"success\":true,\"credential\":{"
                 : "{\"success\":true,\"credential\":{";
  p.head += withhold ? "\"value\":null,\"withheld\":true" : "\"value\":\"";
  p.members = withhold ? ",\"masked_value\":\"" : "\",\"masked_value\":\"";
  p.members.append("\0", 1);  // splits the mask position from the members (never written)
  p.members += "\"," + rest.substr(1, meta - 1) + "}";
  p.tail = rest.substr(meta);
  p.size = p.head.size() + (withhold ? 0 : json::encoded_size(value, p.encoding)) + (p.members.size() - 1) +
           json::masked_size(value, p.encoding) + p.tail.size();
  return p;
}

bool append_credential(secure::SecureBuffer& out, const broker::Granted& g, const CredentialParts& p) {
  auto value = g.value->bytes();
  std::size_t split = p.members.find('\0');
  std::string_view before_mask(p.members.data(), split);
  std::string_view after_mask(p.members.data() + split + 1, p.members.size() - split - 1);
  return out.append(p.head) && (p.withheld || json::append_encoded(out, value, p.encoding)) &&
         out.append(before_mask) &&
         json::append_masked(out, value, p.encoding) && out.append(after_mask) && out.append(p.tail);
}

}  // namespace

secure::SecureBuffer credential_body(secure::Arena& arena, const broker::Granted& g, std::string_view request_id,
                                     const audit::Risk* risk, Delivery delivery) {
  CredentialParts p = credential_parts(g, request_id, std::nullopt, risk, delivery);
  secure::SecureBuffer out = secure::SecureBuffer::allocate(arena, p.size);
  if (!out) return out;
  if (!append_credential(out, g, p)) return {};
  return out;
}

namespace {

using BodyBuilder = http::Response (*)(CredentialsContext&, const broker::Granted&, const std::string&,
                                       const audit::Risk*, Delivery delivery);

// The body of GET /v1/secret: the value itself.
// (The risk fields go nowhere: the body is the value alone.)
http::Response raw_value(CredentialsContext& ctx, const broker::Granted& g, const std::string&, const audit::Risk*,
                         Delivery) {
  http::Response r;
  auto bytes = g.value->bytes();
  secure::SecureBuffer body = secure::SecureBuffer::allocate(*ctx.arena, bytes.empty() ? 1 : bytes.size());
  if (!body) return r;
  if (!body.append({bytes.data(), bytes.size()})) return r;
  r.content_type = json::encoding_for(bytes) == json::Encoding::text ? "text/plain; charset=utf-8"
                                                                      : "application/octet-stream";
  r.body = std::make_unique<SecretPayload>(std::move(body));
  return r;
}

http::Response json_value(CredentialsContext& ctx, const broker::Granted& g, const std::string& request_id,
                          const audit::Risk* risk, Delivery delivery) {
  http::Response r;
  secure::SecureBuffer body = credential_body(*ctx.arena, g, request_id, risk, delivery);
  if (!body) return r;
  r.content_type = "application/json";
  r.body = std::make_unique<SecretPayload>(std::move(body));
  return r;
}

// What the request's X-Chitty-Step-Up header says, compared in constant
// time with the calling service's step-up token where it lies (the request's
// buffers are wiped when it is done; the token is never copied).
broker::StepUp step_up_of(const CredentialsContext& ctx, const server::Call& call) {
  auto header = call.request().header("X-Chitty-Step-Up");
  if (!header) return broker::StepUp::absent;
  const policy::Service* s = ctx.rules->service_of(call.caller());
  const upstream::Token* token = s != nullptr && ctx.step_up_token ? ctx.step_up_token(s->name) : nullptr;
  if (token == nullptr || header->empty()) return broker::StepUp::wrong;
  switch (token->compare(std::span<const char>(header->data(), header->size()))) {
    case secure::Comparison::equal: return broker::StepUp::valid;
    case secure::Comparison::different: return broker::StepUp::wrong;
    case secure::Comparison::unavailable: break;
  }
  return broker::StepUp::unavailable;
}

// One credential through the broker, answered with `build`.
void serve(CredentialsContext& ctx, server::Call call, const Route& route, Parsed<broker::Ask> ask,
           BodyBuilder build) {
  call.will_hold_secret();
  identity::Identity caller = call.caller();
  if (!ask) {
    audit::Event ev = ctx.broker->refused_event(caller, call.request_id(), "retrieve");
    return refuse(ctx, call, route, std::move(ev), ask.error().code, ask.error().message);
  }
  ask->step_up = step_up_of(ctx, call);
  auto held = std::make_shared<server::Call>(std::move(call));
  ctx.broker->retrieve(std::move(caller), std::move(*ask), held->request_id(), [&ctx, held, route, build](broker::Answer a) {
    server::Call& c = *held;
    if (!a.outcome) return refuse(ctx, c, route, std::move(a.event), std::move(a.outcome.error()));
    const broker::Granted& g = *a.outcome;
    const Delivery delivery = delivery_for(ctx, c);
    const bool withhold = delivery == Delivery::withheld;
    if (withhold && build == &raw_value) {
      return refuse(ctx, c, route, std::move(a.event), ErrorCode::forbidden,
                    "the value itself is not released over MCP for this service (mcp_release = false); the JSON routes "
                    "answer with its masked form");
    }
    http::Response r = build(ctx, g, c.request_id(), a.event.risk ? &*a.event.risk : nullptr, delivery);
    if (!r.body) {
      return refuse(ctx, c, route, std::move(a.event), ErrorCode::server_busy,
                    "no locked memory for the response right now; retry shortly");
    }
    r.status = 200;
    credential_headers(r, g);
    a.event.decision = audit::Decision::allow;
    a.event.withheld = withhold;
    answer(ctx, c, route, std::move(a.event), std::move(r));
  });
}

// ---------------------------------------------------------------------------
// systemd's LoadCredential= (docs/systemd.md)

// The credential ID names a catalog type; the unit is the caller. The value
// goes through the same pipeline as GET /v1/secret and is written raw.
void load_credential(CredentialsContext& ctx, server::Call call, server::CredentialAsk what) {
  Route route = route_of(ctx, call);
  if (!what.refusal.empty()) {
    call.will_hold_secret();
    audit::Event ev = ctx.broker->refused_event(call.caller(), call.request_id(), "load_credential");
    ev.credential_type = what.id;
    return refuse(ctx, call, route, std::move(ev), ErrorCode::forbidden,
                  what.refusal + " (asked for " + what.unit + "'s credential " + what.id + ")");
  }
  if (!admit(ctx, call, route, "load_credential")) return;
  broker::Ask ask;
  ask.credential_type = std::move(what.id);
  ask.action = "load_credential";
  // The purpose a LoadCredential= request states: a service (or a risk
  // category) that lists purposes must list this one.
  ask.purpose = "load_credential";
  serve(ctx, std::move(call), route, Parsed<broker::Ask>(std::move(ask)), &raw_value);
}

// ---------------------------------------------------------------------------
// batch-retrieve

struct BatchState {
  explicit BatchState(server::Call c) : call(std::move(c)) {}
  server::Call call;
  Route route;
  std::vector<std::optional<broker::Answer>> answers;
  std::vector<std::optional<BadRequest>> malformed;
  std::size_t pending = 0;
};

std::string error_object(std::size_t index, ErrorCode code, std::string_view message,
                         const audit::Risk* risk = nullptr) {
  return json::object_text([&](json::Writer& w) {
    w.key("index").uinteger(index);
    w.key("success").boolean(false);
    http::write_error(w, code, message);
    if (risk != nullptr) {
      w.key("metadata").begin_object();
      write_risk(w, *risk);
      w.end_object();
    }
  });
}

void finish_batch(CredentialsContext& ctx, const std::shared_ptr<BatchState>& st) {
  server::Call& call = st->call;
  const std::size_t n = st->answers.size();
  // Every item's decision is recorded first; if one cannot be, no item is
  // answered (fail closed).
  std::vector<audit::Event> events;
  std::vector<std::string> errors(n);  // the JSON of failed items
  std::vector<CredentialParts> parts(n);
  const Delivery delivery = delivery_for(ctx, call);
  const bool withhold = delivery == Delivery::withheld;
  const bool mcp = mcp_channel(call);
  std::size_t total = 2 + std::string_view(R"({"success":,"results":[]})").size() + 5;
  bool all_ok = true;
  for (std::size_t i = 0; i < n; ++i) {
    if (st->malformed[i]) {
      audit::Event ev = ctx.broker->refused_event(call.caller(), call.request_id() + "#" + std::to_string(i),
                                                  "batch-retrieve");
      ev.decision = audit::Decision::deny;
      ev.code = std::string(http::error_code_name(st->malformed[i]->code));
      ev.reason = st->malformed[i]->message;
      events.push_back(std::move(ev));
      errors[i] = error_object(i, st->malformed[i]->code, st->malformed[i]->message);
      all_ok = false;
    } else {
      broker::Answer& a = *st->answers[i];
      if (a.outcome) {
        parts[i] = credential_parts(*a.outcome, call.request_id() + "#" + std::to_string(i), i,
                                    a.event.risk ? &*a.event.risk : nullptr, delivery);
        a.event.decision = audit::Decision::allow;
        a.event.withheld = withhold;
      } else {
        a.event.decision = http::error_status(a.outcome.error().code) >= 500 ? audit::Decision::error
                                                                             : audit::Decision::deny;
        a.event.code = std::string(http::error_code_name(a.outcome.error().code));
        a.event.reason = a.outcome.error().message;
        errors[i] = error_object(i, a.outcome.error().code, a.outcome.error().message,
                                 a.event.risk ? &*a.event.risk : nullptr);
        all_ok = false;
      }
      events.push_back(a.event);
    }
    total += (errors[i].empty() ? parts[i].size : errors[i].size()) + 1;
  }
  // The answer must fit one locked block: the largest values give way.
  while (total > secure::Arena::kMaxBlock - 64) {
    std::size_t largest = n;
    for (std::size_t i = 0; i < n; ++i) {
      if (errors[i].empty() && (largest == n || parts[i].size > parts[largest].size)) largest = i;
    }
    if (largest == n) break;
    total -= parts[largest].size;
    errors[largest] = error_object(largest, ErrorCode::too_large,
                                   "the batch answer would exceed 64 KiB; ask for this credential on its own");
    total += errors[largest].size();
    events[largest].decision = audit::Decision::deny;
    events[largest].code = "too_large";
    events[largest].reason = "the batch answer would exceed 64 KiB";
    all_ok = false;
  }
  for (auto& ev : events) {
    if (mcp) ev.channel = "mcp";
    if (auto r = ctx.audit->record(ev); !r) {
      return refuse_unaudited(ctx, call, st->route, r.error(),
                              "the decisions could not be audited, so none is carried out");
    }
  }
  for (const auto& ev : events) count_risk(ctx, ev);
  secure::SecureBuffer body = secure::SecureBuffer::allocate(*ctx.arena, total);
  bool ok = static_cast<bool>(body);
  ok = ok && body.append(all_ok ? R"({"success":true,"results":[)" : R"({"success":false,"results":[)");
  for (std::size_t i = 0; i < n && ok; ++i) {
    if (i > 0) ok = body.push_back(',');
    if (!errors[i].empty()) {
      ok = ok && body.append(errors[i]);
    } else {
      ok = ok && append_credential(body, *st->answers[i]->outcome, parts[i]);
    }
  }
  ok = ok && body.append("]}");
  if (!ok) {
    count(ctx, st->route, "deny", 503, "server_busy");
    return call.fail(ErrorCode::server_busy, "no locked memory for the response right now; retry shortly");
  }
  http::Response r;
  r.status = 200;
  r.content_type = "application/json";
  r.body = std::make_unique<SecretPayload>(std::move(body));
  count(ctx, st->route, all_ok ? "allow" : "deny", 200, "");
  call.respond(std::move(r));
}

void batch(CredentialsContext& ctx, server::Call call) {
  Route route = route_of(ctx, call);
  call.will_hold_secret();
  identity::Identity caller = call.caller();
  auto parsed = read_batch(call.request().body());
  if (!parsed) {
    audit::Event ev = ctx.broker->refused_event(caller, call.request_id(), "batch-retrieve");
    return refuse(ctx, call, route, std::move(ev), parsed.error().code, parsed.error().message);
  }
  auto st = std::make_shared<BatchState>(std::move(call));
  st->route = route;
  const std::size_t n = parsed->items.size();
  st->answers.resize(n);
  st->malformed.resize(n);
  std::string request_id = st->call.request_id();
  const broker::StepUp step_up = step_up_of(ctx, st->call);
  for (std::size_t i = 0; i < n; ++i) {
    if (!parsed->items[i]) {
      st->malformed[i] = parsed->items[i].error();
    } else {
      ++st->pending;
    }
  }
  if (st->pending == 0) return finish_batch(ctx, st);  // every item malformed
  // Items go out in order; each takes one rate-limit token. Answers that
  // come at once (cache hits, refusals) count like later ones; the last one
  // finishes the batch.
  for (std::size_t i = 0; i < n; ++i) {
    if (!parsed->items[i]) continue;
    parsed->items[i]->step_up = step_up;
    ctx.broker->retrieve(caller, std::move(*parsed->items[i]), request_id + "#" + std::to_string(i),
                         [&ctx, st, i](broker::Answer a) {
                           st->answers[i] = std::move(a);
                           if (--st->pending == 0) finish_batch(ctx, st);
                         });
  }
}

// ---------------------------------------------------------------------------
// service-token, integration-key

void by_target(CredentialsContext& ctx, server::Call call, std::string_view category, const std::string& vault,
               std::string_view field) {
  Route route = route_of(ctx, call);
  std::string target(call.param(category == "service" ? "target" : "integration"));
  auto options = read_get_options(call.request().query());
  Parsed<broker::Ask> ask = [&]() -> Parsed<broker::Ask> {
    if (!options) return tl::unexpected(options.error());
    broker::Ask a;
    a.action = std::string(category == "service" ? "service-token" : "integration-key");
    a.purpose = options->purpose;
    a.refresh = options->refresh;
    if (target.empty() || target.find('/') != std::string::npos || target.size() > 256) {
      return tl::unexpected(BadRequest{"invalid " + std::string(category) + " name \"" + target.substr(0, 64) +
                                       "\": 1 to 256 bytes, no '/'"});
    }
    if (auto e = ctx.rules->catalog().by_target(category, target)) {
      a.credential_type = e->type;
      return a;
    }
    auto ref = catalog::parse_reference("op://" + vault + "/" + target + "/" + std::string(field));
    if (!ref) return tl::unexpected(BadRequest{"invalid " + std::string(category) + " name: " + ref.error().message});
    a.ref = std::move(*ref);
    return a;
  }();
  serve(ctx, std::move(call), route, std::move(ask), &json_value);
}

// ---------------------------------------------------------------------------
// validate

void validate(CredentialsContext& ctx, server::Call call) {
  Route route = route_of(ctx, call);
  identity::Identity caller = call.caller();
  auto ask = read_validate(call.request().body());
  if (!ask) {
    audit::Event ev = ctx.broker->refused_event(caller, call.request_id(), "validate");
    return refuse(ctx, call, route, std::move(ev), ask.error().code, ask.error().message);
  }
  ask->step_up = step_up_of(ctx, call);
  auto held = std::make_shared<server::Call>(std::move(call));
  ctx.broker->retrieve(std::move(caller), std::move(*ask), held->request_id(), [&ctx, held, route](broker::Answer a) {
    server::Call& c = *held;
    std::string status;
    std::optional<WallTime> expires;
    std::string ref = a.event.ref;
    if (a.outcome) {
      status = a.outcome->cache == broker::CacheState::stale ? "expired" : "active";
      expires = a.outcome->expires_at;
      ref = a.outcome->ref;
    } else {
      switch (a.outcome.error().code) {
        case ErrorCode::revoked: status = "revoked"; break;
        case ErrorCode::not_found:
        case ErrorCode::upstream_unavailable: status = "unknown"; break;
        default:
          // Not the caller's to know (forbidden, context, rate limit) or not now.
          return refuse(ctx, c, route, std::move(a.event), std::move(a.outcome.error()));
      }
      a.event.reason = a.outcome.error().message;
    }
    // The value (if one was fetched) is dropped here, unsent.
    std::string body = json::object_text([&](json::Writer& w) {
      w.key("valid").boolean(status == "active");
      w.key("status").string(status);
      w.key("expires_at");
      if (expires) {
        w.string(format_rfc3339_ms(*expires));
      } else {
        w.null();
      }
      write_metadata(w, c.request_id(), a.event.risk ? &*a.event.risk : nullptr);
    });
    a.event.decision = audit::Decision::allow;
    a.event.code.clear();
    a.event.cache.clear();  // nothing was served
    answer(ctx, c, route, std::move(a.event), http::Response::json(200, std::move(body)));
  });
}

}  // namespace

server::CredentialHandler load_credential_handler(CredentialsContext& ctx) {
  return [&ctx](server::Call call, server::CredentialAsk what) { load_credential(ctx, std::move(call), std::move(what)); };
}

void register_credential_routes(server::Router& router, CredentialsContext& ctx) {
  // Every route is admitted first (callers without a service share a bucket).
  auto gated = [&ctx](std::string_view action, auto handler) {
    return [&ctx, action, handler](server::Call call) {
      if (!admit(ctx, call, route_of(ctx, call), action)) return;
      handler(std::move(call));
    };
  };
  router.add(http::Method::post, "/api/onepassword/retrieve", gated("retrieve", [&ctx](server::Call call) {
               auto ask = read_retrieve(call.request().body());
               Route route = route_of(ctx, call);
               serve(ctx, std::move(call), route, std::move(ask), &json_value);
             }));
  router.add(http::Method::get, "/v1/secret", gated("retrieve", [&ctx](server::Call call) {
               auto ask = read_secret_query(call.request().query());
               Route route = route_of(ctx, call);
               serve(ctx, std::move(call), route, std::move(ask), &raw_value);
             }));
  router.add(http::Method::post, "/api/credentials/provision", gated("provision", [&ctx](server::Call call) {
               auto ask = read_provision(call.request().body());
               Route route = route_of(ctx, call);
               serve(ctx, std::move(call), route, std::move(ask), &json_value);
             }));
  router.add(http::Method::post, "/api/onepassword/batch-retrieve",
             gated("batch-retrieve", [&ctx](server::Call call) { batch(ctx, std::move(call)); }));
  router.add(http::Method::get, "/api/onepassword/service-token/{target}",
             gated("service-token", [&ctx](server::Call call) {
               by_target(ctx, std::move(call), "service", ctx.services_vault, "service_token");
             }));
  router.add(http::Method::get, "/api/onepassword/integration-key/{integration}",
             gated("integration-key", [&ctx](server::Call call) {
               by_target(ctx, std::move(call), "integration", ctx.integrations_vault, "api_key");
             }));
  router.add(http::Method::post, "/api/credentials/validate",
             gated("validate", [&ctx](server::Call call) { validate(ctx, std::move(call)); }));
}

}  // namespace chitty::api
