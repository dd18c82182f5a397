// Answering through the audit trail: every route records its decision
// before the answer leaves (fail closed), and counts it in /metrics.
#pragma once

#include <string>
#include <string_view>

#include "chitty/api/credentials.hpp"
#include "chitty/json/writer.hpp"

namespace chitty::api {

// What a route handler carries along to answer: its route pattern (a metric
// label) and when it started.
struct Route {
  std::string_view pattern;  // the router's (call.route()): valid while the router lives
  MonoTime started{};
};
// The route `call` came in on, starting now.
Route route_of(const CredentialsContext& ctx, const server::Call& call);

// Whether the request came through chittyctl's MCP server (it says
// X-Chitty-Channel: mcp; docs/mcp.md); its events record channel "mcp".
bool mcp_channel(const server::Call& call);
// How a credential answer to `call` carries the value: left out on the MCP
// channel, unless the caller's service has mcp_release = true (then marked
// as released); as it is elsewhere.
Delivery delivery_for(const CredentialsContext& ctx, const server::Call& call);

// Records `event` and sends `response` — or, if the event cannot be
// recorded, refuses with 503 audit_unavailable. Counts the answer.
void answer(CredentialsContext& ctx, server::Call& call, const Route& route, audit::Event event,
            http::Response response);
// Callers that match no [[service]] share one rate limit
// (agent.unknown_caller_rate_limit). It is charged here, first thing, on
// every route that records a decision, before the request's body is read or
// anything else is recorded: a flood of such callers is answered 429 at the
// cost of one counted refusal each (docs/audit.md). True: go on; false: the
// request was refused (and answered).
bool admit(CredentialsContext& ctx, server::Call& call, const Route& route, std::string_view action);

// The admin routes' check (admin.cpp; also the emergency lockout reset):
// takes a token from the caller's bucket, then requires a [[service]] with
// admin = true. False: the refusal was sent (and audited with `ev`).
bool admin_or_refuse(CredentialsContext& ctx, server::Call& call, const Route& route, audit::Event& ev);

// Refuses: `event` gets the decision deny and the code; a rate limit adds
// Retry-After.
void refuse(CredentialsContext& ctx, server::Call& call, const Route& route, audit::Event event, http::ErrorCode code,
            std::string message, std::optional<Duration> retry_after = std::nullopt);
// "metadata": {"request_id", and the risk fields when `risk` is given}.
void write_metadata(json::Writer& w, std::string_view request_id, const audit::Risk* risk);
// The risk fields of an answer's metadata (docs/api.md): risk_score,
// risk_level, decision, risk_factors (and step_up when it served).
void write_risk(json::Writer& w, const audit::Risk& r);
// The same for a broker refusal.
void refuse(CredentialsContext& ctx, server::Call& call, const Route& route, audit::Event event,
            broker::Refusal refusal);

}  // namespace chitty::api
