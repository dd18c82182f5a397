// GET /health (and its SPEC aliases /api/onepassword/health and
// /api/credentials/health): whether the agent can serve ("healthy", or
// "degraded" while it bridges an upstream outage in fallback mode), its
// version, uptime, connection figures, cache entries, locked memory (what
// can be allocated now, and the largest block) and mode.
#pragma once

#include <string>
#include <vector>

#include "chitty/api/observed.hpp"
#include "chitty/identity/identity.hpp"
#include "chitty/json/writer.hpp"
#include "chitty/server/server.hpp"

namespace chitty::api {

// /health reads what the agent observes (observed.hpp).
using HealthContext = Observed;

// The /health body for the current moment; `caller` is the identity of the
// client asking, shown under "caller" so an operator sees what the agent sees.
std::string health_body(const HealthContext& ctx, const identity::Identity* caller = nullptr);

// An identity as JSON: established facts as values ("none" as null), unknown
// facts as null with their reason under "unknown", and what SO_PEERCRED said
// under "kernel".
void write_identity(json::Writer& w, const identity::Identity& id);

// Registers the health routes. `ctx` must outlive the router.
void register_health_routes(server::Router& router, HealthContext& ctx);

}  // namespace chitty::api
