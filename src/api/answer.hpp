// Answering through the audit trail: every route records its decision
// before the answer leaves (fail closed), and counts it in /metrics.
#pragma once

#include <string>
#include <string_view>

#include "chitty/api/credentials.hpp"

namespace chitty::api {

// What a route handler carries along to answer: its route pattern (a metric
// label) and when it started.
struct Route {
  std::string_view pattern;
  MonoTime started{};
};
Route route_of(const CredentialsContext& ctx, std::string_view pattern);

// Records `event` and sends `response` — or, if the event cannot be
// recorded, refuses with 503 audit_unavailable. Counts the answer.
void answer(CredentialsContext& ctx, server::Call& call, const Route& route, audit::Event event,
            http::Response response);
// Refuses: `event` gets the decision deny and the code; a rate limit adds
// Retry-After.
void refuse(CredentialsContext& ctx, server::Call& call, const Route& route, audit::Event event, http::ErrorCode code,
            std::string message, std::optional<Duration> retry_after = std::nullopt);
// The same for a broker refusal.
void refuse(CredentialsContext& ctx, server::Call& call, const Route& route, audit::Event event,
            broker::Refusal refusal);

}  // namespace chitty::api
