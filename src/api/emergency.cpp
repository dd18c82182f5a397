// POST /api/onepassword/emergency-revoke and .../clear: possession of the
// emergency token is the authority (SPEC §2). A revocation is made durable
// before it is acknowledged; it then blocks every source, the environment
// included, and answers the fetches in flight for it at once.
#include <memory>

#include "answer.hpp"
#include "chitty/api/credentials.hpp"
#include "chitty/api/requests.hpp"
#include "chitty/base/time_format.hpp"
#include "chitty/json/writer.hpp"
#include "chitty/log/log.hpp"

namespace chitty::api {
namespace {

using http::ErrorCode;

std::string who(const identity::Identity& c) {
  std::string out = c.uid.is_known() ? "uid " + std::to_string(c.uid.value()) : "uid unknown";
  if (c.pid.is_known()) out += " pid " + std::to_string(c.pid.value());
  if (c.exe.is_known()) out += " exe " + c.exe.value();
  return out;
}

// The token check: present, configured, equal (constant time). The header
// bytes live in the request's wiped buffers and are never copied.
std::optional<std::string> token_problem(const CredentialsContext& ctx, const server::Call& call) {
  if (ctx.emergency_token == nullptr) {
    return "emergency revocation is not configured ([emergency] token_file)";
  }
  auto header = call.request().header("X-Emergency-Token");
  if (!header || header->empty()) return "the X-Emergency-Token header is required";
  if (!ctx.emergency_token->equals(std::span<const char>(header->data(), header->size()))) {
    return "wrong emergency token";
  }
  return std::nullopt;
}

// The revocation a request describes, with its keys; a 404 for a type or
// service that does not exist.
tl::expected<policy::Revocation, BadRequest> revocation_of(const CredentialsContext& ctx, const RevokeRequest& req,
                                                            const identity::Identity& caller, WallTime now) {
  policy::Revocation r;
  r.kind = req.kind;
  r.reason = req.reason;
  r.at = now;
  r.by = who(caller);
  switch (req.kind) {
    case policy::Revocation::Kind::ref:
      r.keys = ctx.broker->keys_of(*req.ref);
      r.shown = req.ref->display();
      break;
    case policy::Revocation::Kind::type:
      if (!ctx.broker->catalog().by_type(req.target)) {
        return tl::unexpected(BadRequest{"unknown credential type \"" + req.target + "\"", ErrorCode::not_found});
      }
      r.keys = {req.target};
      r.shown = req.target;
      break;
    case policy::Revocation::Kind::service:
      if (ctx.broker->policy().service_named(req.target) == nullptr) {
        return tl::unexpected(BadRequest{"no [[service]] is named \"" + req.target + "\"", ErrorCode::not_found});
      }
      r.keys = {req.target};
      r.shown = req.target;
      break;
    case policy::Revocation::Kind::all: r.shown = "all"; break;
  }
  return r;
}

void write_revocation(json::Writer& w, const policy::Revocation& r) {
  w.begin_object();
  w.key("kind").string(policy::revocation_kind_name(r.kind));
  w.key("target").string(r.shown);
  w.key("reason").string(r.reason);
  w.key("at").string(format_rfc3339_ms(r.at));
  w.end_object();
}

void handle(CredentialsContext& ctx, server::Call call, bool clear) {
  Route route = route_of(ctx, clear ? "/api/onepassword/emergency-revoke/clear" : "/api/onepassword/emergency-revoke");
  identity::Identity caller = call.caller();
  audit::Event ev = ctx.broker->refused_event(caller, call.request_id(), clear ? "revoke-clear" : "revoke");
  ev.kind = audit::Kind::revoke;
  // Guessing is bounded per uid: while a uid's failed attempts have emptied
  // its bucket, its tokens are not even checked. Other uids (the operator)
  // are unaffected, and a service's own rate limit never stands in the way
  // of an emergency.
  std::string uid = caller.uid.is_known() ? std::to_string(caller.uid.value()) : "unknown";
  const std::string bucket = "\x01emergency-failures:" + uid;
  static const Rate kFailures{10, std::chrono::hours(1)};
  if (ctx.broker->level(bucket, kFailures) < 1.0) {
    if (auto limited = ctx.broker->take_token(bucket, kFailures, "failed emergency-token attempts from uid " + uid)) {
      return refuse(ctx, call, route, std::move(ev), std::move(*limited));
    }
  }
  if (auto problem = token_problem(ctx, call)) {
    ctx.broker->take_token(bucket, kFailures, "failed emergency-token attempts from uid " + uid);
    log::warn("api", "emergency route refused", {{"request_id", call.request_id()}, {"reason", *problem}});
    return refuse(ctx, call, route, std::move(ev), ErrorCode::unauthenticated, *problem);
  }
  auto req = read_revoke(call.request().body());
  if (!req) return refuse(ctx, call, route, std::move(ev), req.error().code, req.error().message);
  WallTime now = ctx.clock->wall_now();
  auto rv = revocation_of(ctx, *req, caller, now);
  if (!rv) {
    // Clearing something that no longer exists in the config is allowed.
    if (!clear) return refuse(ctx, call, route, std::move(ev), rv.error().code, rv.error().message);
    rv = policy::Revocation{req->kind, {req->target}, req->target, req->reason, now, who(caller)};
  }
  ev.ref = rv->kind == policy::Revocation::Kind::ref ? rv->keys.front() : "";
  ev.reason = std::string(policy::revocation_kind_name(rv->kind)) + " " + rv->shown +
              (rv->reason.empty() ? "" : ": " + rv->reason);

  std::string body;
  json::Writer w(body);
  if (!clear) {
    // Durable first: a crash or restart after the 200 must not lift it. If
    // it cannot be saved it is still put in force (blocking more is the safe
    // side) and the client is told it will not survive a restart.
    policy::Revocations next = ctx.broker->revocations();
    next.add(*rv);
    auto saved = ctx.persist_revocations ? ctx.persist_revocations(next) : Result<void>{};
    ctx.broker->revoke(*rv);
    if (ctx.metrics != nullptr) ctx.metrics->revocation("revoke");
    log::warn("api", "emergency revocation in force",
              {{"request_id", call.request_id()}, {"kind", policy::revocation_kind_name(rv->kind)},
               {"target", rv->shown}, {"by", rv->by}});
    ev.decision = audit::Decision::allow;
    if (!saved) {
      log::error("api", "emergency revocation could not be saved", {{"reason", saved.error().message}});
      return refuse(ctx, call, route, std::move(ev), ErrorCode::storage_unavailable,
                    "the revocation is in force but could not be saved, so it would not survive a restart: " +
                        saved.error().message);
    }
    w.begin_object();
    w.key("success").boolean(true);
    w.key("revocation");
    write_revocation(w, *rv);
    w.key("revocations").uinteger(ctx.broker->revocations().list().size());
    w.key("metadata").begin_object();
    w.key("request_id").string(call.request_id());
    w.end_object();
    w.end_object();
    return answer(ctx, call, route, std::move(ev), http::Response::json(200, std::move(body)));
  }
  // Clearing: saved first too, and only then lifted — if it cannot be
  // saved, the revocation stays in force.
  policy::Revocations next = ctx.broker->revocations();
  std::size_t lifted = next.clear(*rv);
  if (lifted > 0 && ctx.persist_revocations) {
    if (auto saved = ctx.persist_revocations(next); !saved) {
      log::error("api", "clearing a revocation could not be saved; it stays in force", {{"reason", saved.error().message}});
      return refuse(ctx, call, route, std::move(ev), ErrorCode::storage_unavailable,
                    "the revocation stays in force: clearing it could not be saved: " + saved.error().message);
    }
  }
  ctx.broker->clear_revocation(*rv);
  if (ctx.metrics != nullptr && lifted > 0) ctx.metrics->revocation("clear");
  log::warn("api", "emergency revocation cleared",
            {{"request_id", call.request_id()}, {"kind", policy::revocation_kind_name(rv->kind)},
             {"target", rv->shown}, {"cleared", lifted}, {"by", rv->by}});
  ev.decision = audit::Decision::allow;
  w.begin_object();
  w.key("success").boolean(true);
  w.key("cleared").uinteger(lifted);
  w.key("revocations").begin_array();
  for (const auto& r : ctx.broker->revocations().list()) write_revocation(w, r);
  w.end_array();
  w.key("metadata").begin_object();
  w.key("request_id").string(call.request_id());
  w.end_object();
  w.end_object();
  answer(ctx, call, route, std::move(ev), http::Response::json(200, std::move(body)));
}

}  // namespace

void register_emergency_routes(server::Router& router, CredentialsContext& ctx) {
  router.add(http::Method::post, "/api/onepassword/emergency-revoke",
             [&ctx](server::Call call) { handle(ctx, std::move(call), false); });
  router.add(http::Method::post, "/api/onepassword/emergency-revoke/clear",
             [&ctx](server::Call call) { handle(ctx, std::move(call), true); });
}

}  // namespace chitty::api
