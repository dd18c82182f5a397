// POST /api/onepassword/emergency-revoke and .../clear: possession of the
// emergency token is the authority (SPEC §2). A revocation is made durable
// before it is acknowledged; it then blocks every source, the environment
// included, and answers the fetches in flight for it at once.
// POST .../unlock: an admin service clears the failed-attempt lockouts.
#include <deque>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>

#include "answer.hpp"
#include "chitty/api/credentials.hpp"
#include "chitty/api/requests.hpp"
#include "chitty/base/time_format.hpp"
#include "chitty/json/writer.hpp"
#include "chitty/log/log.hpp"

namespace chitty::api {

namespace {

using http::ErrorCode;

// Failed emergency-token attempts, bounded twice over a sliding hour: per
// caller process, so that no process — whatever its uid — spends more than
// its own share, and per uid, which bounds how fast one uid guesses by
// starting fresh processes. While either is spent, the caller's token is not
// even checked. An admin service clears both (POST .../unlock).
class FailureLog {
 public:
  static constexpr std::size_t kPerProcess = 10;
  static constexpr std::size_t kPerUid = 60;
  static constexpr Duration kWindow = std::chrono::hours(1);

  struct Caller {
    std::string uid;      // "uid 1000" ("uid unknown": every caller whose uid the agent cannot see)
    std::string process;  // "uid 1000 pid 4242" ("... pid unknown" for a process it cannot pin)
  };
  static Caller of(const identity::Identity& c) {
    Caller k;
    k.uid = c.uid.is_known() ? "uid " + std::to_string(c.uid.value()) : "uid unknown";
    // The pid is a fact only while the pinned process that connected is
    // alive (identity re-checks it through its pidfd); with its start time
    // it names that process and no later one that reuses the pid.
    k.process = k.uid + (c.pid.is_known() ? " pid " + std::to_string(c.pid.value()) + " started " +
                                                std::to_string(c.start_time)
                                          : " pid unknown");
    return k;
  }

  // The refusal while `k` may not try: its process's or its uid's failures
  // fill the window. Retry-After is when the oldest of them leaves it.
  std::optional<broker::Refusal> refusal(const Caller& k, MonoTime now) {
    std::optional<broker::Refusal> out;
    auto check = [&](const std::string& key, std::size_t limit, std::string_view whose) {
      auto it = failures_.find(key);
      if (it == failures_.end()) return;
      forget_old(it->second, now);
      if (it->second.size() < limit) return;
      Duration wait = it->second.front() + kWindow - now;
      // Both spent: the longer wait, and of equal ones the uid's (another
      // process would not help either).
      if (out && out->retry_after && *out->retry_after > wait) return;
      out = broker::Refusal{ErrorCode::rate_limited,
                            std::to_string(limit) + " failed emergency-token attempts in an hour from " +
                                std::string(whose) + " (" + key + "); retry in " +
                                format_duration(std::chrono::ceil<std::chrono::seconds>(wait)) +
                                ", or have an admin service POST /api/onepassword/emergency-revoke/unlock",
                            wait};
    };
    check(k.process, kPerProcess, "this process");
    check(k.uid, kPerUid, "this uid");
    return out;
  }

  void record(const Caller& k, MonoTime now) {
    if (failures_.size() > kSweepAbove) sweep(now);
    failures_[k.process].push_back(now);
    failures_[k.uid].push_back(now);
  }

  // Forgets every failure; how many processes and uids had any.
  std::size_t clear() {
    std::size_t n = failures_.size();
    failures_.clear();
    return n;
  }

 private:
  // Past this many keys the whole log is swept of old failures, so a uid
  // starting process after process cannot grow it without bound (it can add
  // at most kPerUid keys an hour).
  static constexpr std::size_t kSweepAbove = 1024;

  static void forget_old(std::deque<MonoTime>& times, MonoTime now) {
    while (!times.empty() && now - times.front() >= kWindow) times.pop_front();
  }
  void sweep(MonoTime now) {
    for (auto it = failures_.begin(); it != failures_.end();) {
      forget_old(it->second, now);
      it = it->second.empty() ? failures_.erase(it) : std::next(it);
    }
  }

  std::unordered_map<std::string, std::deque<MonoTime>> failures_;
};

std::string who(const identity::Identity& c) {
  std::string out = c.uid.is_known() ? "uid " + std::to_string(c.uid.value()) : "uid unknown";
  if (c.pid.is_known()) out += " pid " + std::to_string(c.pid.value());
  if (c.exe.is_known()) out += " exe " + c.exe.value();
  return out;
}

// The token check: configured, present, equal (constant time). The header
// bytes live in the request's wiped buffers and are never copied.
struct TokenCheck {
  enum class Result { good, bad, unavailable } result;
  std::string problem;  // for bad and unavailable
};
TokenCheck check_token(const CredentialsContext& ctx, const server::Call& call) {
  using R = TokenCheck::Result;
  if (ctx.emergency_token == nullptr) {
    return {R::bad, "emergency revocation is not configured ([emergency] token_file)"};
  }
  auto header = call.request().header("X-Emergency-Token");
  if (!header || header->empty()) return {R::bad, "the X-Emergency-Token header is required"};
  switch (ctx.emergency_token->compare(std::span<const char>(header->data(), header->size()))) {
    case secure::Comparison::equal: return {R::good, ""};
    case secure::Comparison::different: return {R::bad, "wrong emergency token"};
    case secure::Comparison::unavailable: break;
  }
  // Not a wrong token: the agent could not look. The caller is not charged.
  return {R::unavailable, "no locked memory to check the emergency token right now; retry shortly"};
}

// The revocation a request describes; a 404 for a type or service that does
// not exist. What the secret is known by is filled in by Broker::describe().
[[nodiscard]] tl::expected<policy::Revocation, BadRequest> revocation_of(const CredentialsContext& ctx, const RevokeRequest& req,
                                                            const identity::Identity& caller, WallTime now) {
  policy::Revocation r;
  r.kind = req.kind;
  r.reason = req.reason;
  r.at = now;
  r.by = who(caller);
  switch (req.kind) {
    case policy::Revocation::Kind::ref:
      r.ref = *req.ref;
      r.target = req.ref->display();
      break;
    case policy::Revocation::Kind::type:
      if (!ctx.rules->catalog().by_type(req.target)) {
        return tl::unexpected(BadRequest{"unknown credential type \"" + req.target + "\"", ErrorCode::not_found});
      }
      r.target = req.target;
      break;
    case policy::Revocation::Kind::service:
      if (ctx.rules->policy().service_named(req.target) == nullptr) {
        return tl::unexpected(BadRequest{"no [[service]] is named \"" + req.target + "\"", ErrorCode::not_found});
      }
      r.target = req.target;
      break;
    case policy::Revocation::Kind::all: r.target = "all"; break;
  }
  return r;
}

void write_revocation(json::Writer& w, const policy::Revocation& r) {
  w.begin_object();
  w.key("kind").string(policy::revocation_kind_name(r.kind));
  w.key("target").string(r.target);
  if (r.kind == policy::Revocation::Kind::ref || r.kind == policy::Revocation::Kind::type) {
    // Whether every spelling is known (an upstream resolved it), and by how many.
    w.key("resolved").boolean(r.resolved);
    w.key("spellings").uinteger(r.forms.size());
  }
  w.key("reason").string(r.reason);
  w.key("at").string(format_rfc3339_ms(r.at));
  w.end_object();
}

void carry_out_revoke(CredentialsContext& ctx, server::Call& call, const Route& route, audit::Event ev,
                      const policy::Revocation& rv) {
  // Durable first: a crash or restart after the 200 must not lift it. If
  // it cannot be saved it is still put in force (blocking more is the safe
  // side) and the client is told it will not survive a restart.
  policy::Revocations next = ctx.broker->revocations();
  next.add(rv);
  auto saved = ctx.persist_revocations ? ctx.persist_revocations(next) : Result<std::uint64_t>{0};
  if (saved) ev.revocations_generation = *saved;
  ctx.broker->revoke(rv);
  if (ctx.metrics != nullptr) ctx.metrics->revocation("revoke");
  log::warn("api", "emergency revocation in force",
            {{"request_id", call.request_id()}, {"kind", policy::revocation_kind_name(rv.kind)},
             {"target", rv.target}, {"resolved", rv.resolved}, {"spellings", rv.forms.size()}, {"by", rv.by}});
  ev.decision = audit::Decision::allow;
  if (!saved) {
    log::error("api", "emergency revocation could not be saved", {{"reason", saved.error().message}});
    return refuse(ctx, call, route, std::move(ev), ErrorCode::storage_unavailable,
                  "the revocation is in force but could not be saved, so it would not survive a restart: " +
                      saved.error().message);
  }
  // What is in force: this one, merged with any for the same secret.
  const policy::Revocation* shown = &rv;
  for (const auto& x : ctx.broker->revocations().list()) {
    if (x.kind == rv.kind && (x.target == rv.target || (rv.ref && x.known_as(rv.ref->canonical())))) shown = &x;
  }
  std::string body = json::object_text([&](json::Writer& w) {
    w.key("success").boolean(true);
    w.key("revocation");
    write_revocation(w, *shown);
    w.key("revocations").uinteger(ctx.broker->revocations().list().size());
    http::write_metadata(w, call.request_id());
  });
  answer(ctx, call, route, std::move(ev), http::Response::json(200, std::move(body)));
}

// Clearing: saved first too, and only then lifted — if it cannot be saved,
// the revocation stays in force.
void carry_out_clear(CredentialsContext& ctx, server::Call& call, const Route& route, audit::Event ev,
                     const policy::Revocation& rv) {
  policy::Revocations next = ctx.broker->revocations();
  std::size_t lifted = next.clear(rv);
  if (lifted > 0 && ctx.persist_revocations) {
    auto saved = ctx.persist_revocations(next);
    if (!saved) {
      log::error("api", "clearing a revocation could not be saved; it stays in force", {{"reason", saved.error().message}});
      return refuse(ctx, call, route, std::move(ev), ErrorCode::storage_unavailable,
                    "the revocation stays in force: clearing it could not be saved: " + saved.error().message);
    }
    ev.revocations_generation = *saved;
  }
  ctx.broker->clear_revocation(rv);
  if (ctx.metrics != nullptr && lifted > 0) ctx.metrics->revocation("clear");
  log::warn("api", "emergency revocation cleared",
            {{"request_id", call.request_id()}, {"kind", policy::revocation_kind_name(rv.kind)},
             {"target", rv.target}, {"cleared", lifted}, {"by", rv.by}});
  ev.decision = audit::Decision::allow;
  std::string body = json::object_text([&](json::Writer& w) {
    w.key("success").boolean(true);
    w.key("cleared").uinteger(lifted);
    w.key("revocations").begin_array();
    for (const auto& r : ctx.broker->revocations().list()) write_revocation(w, r);
    w.end_array();
    http::write_metadata(w, call.request_id());
  });
  answer(ctx, call, route, std::move(ev), http::Response::json(200, std::move(body)));
}

void handle(CredentialsContext& ctx, FailureLog& failures, server::Call call, bool clear) {
  Route route = route_of(ctx, call);
  identity::Identity caller = call.caller();
  audit::Event ev = ctx.broker->refused_event(caller, call.request_id(), clear ? "revoke-clear" : "revoke");
  ev.kind = audit::Kind::revoke;
  // Guessing is bounded per process and per uid: while either has spent its
  // failures, the caller's token is not even checked. Another process of the
  // same uid keeps its own share (until the uid's cap), other uids are
  // unaffected, and a service's own rate limit never stands in the way of
  // an emergency.
  const FailureLog::Caller who_failed = FailureLog::of(caller);
  if (auto locked = failures.refusal(who_failed, route.started)) {
    return refuse(ctx, call, route, std::move(ev), std::move(*locked));
  }
  TokenCheck token = check_token(ctx, call);
  // (Lines a client can cause are throttled: log::Throttle.)
  static log::Throttle throttle(20, std::chrono::seconds(10));
  if (token.result == TokenCheck::Result::unavailable) {
    if (throttle.allow(route.started)) {
      log::warn("api", "emergency token not checked: no locked memory",
                {{"request_id", call.request_id()}, {"suppressed", throttle.suppressed()}});
    }
    return refuse(ctx, call, route, std::move(ev), ErrorCode::server_busy, token.problem);
  }
  if (token.result == TokenCheck::Result::bad) {
    failures.record(who_failed, route.started);
    if (throttle.allow(route.started)) {
      log::warn("api", "emergency route refused",
                {{"request_id", call.request_id()}, {"reason", token.problem}, {"suppressed", throttle.suppressed()}});
    }
    return refuse(ctx, call, route, std::move(ev), ErrorCode::unauthenticated, token.problem);
  }
  auto req = read_revoke(call.request().body());
  if (!req) return refuse(ctx, call, route, std::move(ev), req.error().code, req.error().message);
  WallTime now = ctx.clock->wall_now();
  auto rv = revocation_of(ctx, *req, caller, now);
  if (!rv) {
    // Clearing something that no longer exists in the config is allowed.
    if (!clear) return refuse(ctx, call, route, std::move(ev), rv.error().code, rv.error().message);
    policy::Revocation gone;
    gone.kind = req->kind;
    gone.target = req->target;
    gone.at = now;
    gone.by = who(caller);
    rv = std::move(gone);
  }
  ev.reason = std::string(policy::revocation_kind_name(rv->kind)) + " " + rv->target +
              (rv->reason.empty() ? "" : ": " + rv->reason);
  // Every spelling of the secret (resolved through the upstream when it can
  // answer) before anything is decided: a revocation given as names must
  // block the IDs, and the other way round; so must a clear.
  // In force at once with the spellings known now: cached copies go, and
  // nothing is served while the upstream is asked for the others.
  if (!clear) ctx.broker->revoke_known(*rv);
  auto held = std::make_shared<server::Call>(std::move(call));
  ctx.broker->describe(std::move(*rv), [&ctx, held, route, ev = std::move(ev), clear](policy::Revocation r) mutable {
    if (r.kind == policy::Revocation::Kind::ref && !r.key.empty()) ev.ref = r.key;
    else if (r.ref) ev.ref = r.ref->canonical();
    if (clear) return carry_out_clear(ctx, *held, route, std::move(ev), r);
    carry_out_revoke(ctx, *held, route, std::move(ev), r);
  });
}

// An admin service clears every failed-attempt lockout: the way back in
// for an operator whose uid another process spent. No emergency token is
// needed or checked; the admin's own rate limit applies.
void unlock(CredentialsContext& ctx, FailureLog& failures, server::Call call) {
  Route route = route_of(ctx, call);
  identity::Identity caller = call.caller();
  audit::Event ev = ctx.broker->refused_event(caller, call.request_id(), "revoke-unlock");
  ev.kind = audit::Kind::revoke;
  if (!admin_or_refuse(ctx, call, route, ev)) return;
  if (!call.request().body().empty()) {
    return refuse(ctx, call, route, std::move(ev), ErrorCode::bad_request, "this route takes no body");
  }
  std::size_t cleared = failures.clear();
  log::warn("api", "emergency-token lockouts cleared", {{"request_id", call.request_id()}, {"cleared", cleared},
                                                          {"by", who(caller)}});
  ev.decision = audit::Decision::allow;
  ev.reason = "emergency-token lockouts cleared (" + std::to_string(cleared) + " processes and uids)";
  std::string body = json::object_text([&](json::Writer& w) {
    w.key("success").boolean(true);
    w.key("cleared").uinteger(cleared);
    http::write_metadata(w, call.request_id());
  });
  answer(ctx, call, route, std::move(ev), http::Response::json(200, std::move(body)));
}

}  // namespace

void register_emergency_routes(server::Router& router, CredentialsContext& ctx) {
  // One log for the three routes, alive as long as they are.
  auto failures = std::make_shared<FailureLog>();
  router.add(http::Method::post, "/api/onepassword/emergency-revoke",
             [&ctx, failures](server::Call call) { handle(ctx, *failures, std::move(call), false); });
  router.add(http::Method::post, "/api/onepassword/emergency-revoke/clear",
             [&ctx, failures](server::Call call) { handle(ctx, *failures, std::move(call), true); });
  router.add(http::Method::post, "/api/onepassword/emergency-revoke/unlock",
             [&ctx, failures](server::Call call) { unlock(ctx, *failures, std::move(call)); });
}

}  // namespace chitty::api
