// What /health and /metrics read: the agent's parts, observed and never
// changed through here. The composition root fills one of these (members
// are null where a part does not exist: no Connect upstream, audit in
// memory, no sink) and both routes read it.
#pragma once

#include <string>
#include <vector>

#include "chitty/audit/shipper.hpp"
#include "chitty/audit/spool.hpp"
#include "chitty/audit/spool_recorder.hpp"
#include "chitty/base/clock.hpp"
#include "chitty/broker/broker.hpp"
#include "chitty/cache/cache.hpp"
#include "chitty/policy/gate.hpp"
#include "chitty/predict/prefetcher.hpp"
#include "chitty/secure/arena.hpp"
#include "chitty/secure/sealer.hpp"
#include "chitty/server/server.hpp"
#include "chitty/upstream/connect_provider.hpp"

namespace chitty::api {

struct Observed {
  const Clock* clock = nullptr;
  MonoTime started{};
  WallTime started_wall{};
  std::string started_at;                  // started_wall formatted (register_health_routes does it)
  const server::Server* server = nullptr;  // connection figures
  const cache::Cache* cache = nullptr;     // cache figures and mode
  const secure::Arena* arena = nullptr;    // locked memory
  const secure::Sealer* sealer = nullptr;
  const broker::Broker* broker = nullptr;
  const policy::Gate* gate = nullptr;  // requests held back by rate limits
  std::vector<const upstream::ConnectProvider*> connect;  // primary, then backup; empty without Connect
  Duration fallback_window{};
  const audit::Spool* spool = nullptr;             // null when audit is in memory
  const audit::Shipper* shipper = nullptr;         // null without a sink
  const audit::SpoolRecorder* recorder = nullptr;  // null when audit is in memory
  const predict::Prefetcher* prefetcher = nullptr;  // null when prediction is off
};

}  // namespace chitty::api
