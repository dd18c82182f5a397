// GET /health (and its SPEC aliases /api/onepassword/health and
// /api/credentials/health): whether the agent can serve ("healthy", or
// "degraded" while it bridges an upstream outage in fallback mode), its
// version, uptime, connection figures, cache entries, locked memory (what
// can be allocated now, and the largest block) and mode.
#pragma once

#include <string>
#include <vector>

#include "chitty/base/clock.hpp"
#include "chitty/broker/broker.hpp"
#include "chitty/cache/cache.hpp"
#include "chitty/secure/arena.hpp"
#include "chitty/secure/sealer.hpp"
#include "chitty/identity/identity.hpp"
#include "chitty/json/writer.hpp"
#include "chitty/server/server.hpp"
#include "chitty/audit/shipper.hpp"
#include "chitty/audit/spool.hpp"
#include "chitty/audit/spool_recorder.hpp"
#include "chitty/upstream/connect_provider.hpp"

namespace chitty::api {

struct HealthContext {
  const Clock* clock = nullptr;
  MonoTime started{};
  WallTime started_wall{};
  const server::Server* server = nullptr;  // connection figures; may be null
  const cache::Cache* cache = nullptr;     // cache figures and mode; may be null
  const secure::Arena* arena = nullptr;    // locked memory; may be null
  const secure::Sealer* sealer = nullptr;
  const broker::Broker* broker = nullptr;
  std::vector<const upstream::ConnectProvider*> connect;  // primary, then backup; empty without Connect
  Duration fallback_window{};
  const audit::Spool* spool = nullptr;           // the audit spool; null when audit is in memory
  const audit::Shipper* shipper = nullptr;       // null without a sink
  const audit::SpoolRecorder* recorder = nullptr;
  std::string started_at;                  // formatted once by register_health_routes
};

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
