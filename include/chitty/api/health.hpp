// GET /health (and its SPEC aliases /api/onepassword/health and
// /api/credentials/health): whether the agent can serve, its version, uptime
// and connection figures.
#pragma once

#include <string>

#include "chitty/base/clock.hpp"
#include "chitty/server/server.hpp"

namespace chitty::api {

struct HealthContext {
  const Clock* clock = nullptr;
  MonoTime started{};
  WallTime started_wall{};
  const server::Server* server = nullptr;  // connection figures; may be null
  std::string started_at;                  // formatted once by register_health_routes
};

// The /health body for the current moment.
std::string health_body(const HealthContext& ctx);

// Registers the health routes. `ctx` must outlive the router.
void register_health_routes(server::Router& router, HealthContext& ctx);

}  // namespace chitty::api
