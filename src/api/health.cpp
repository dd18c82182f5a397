#include "chitty/api/health.hpp"

#include <unistd.h>

#include "chitty/base/time_format.hpp"
#include "chitty/json/writer.hpp"
#include "chitty_version.h"

namespace chitty::api {

std::string health_body(const HealthContext& ctx) {
  std::string body;
  body.reserve(256);
  json::Writer w(body);
  MonoTime now = ctx.clock->now();
  w.begin_object();
  w.key("status").string("healthy");
  w.key("version").string(CHITTY_VERSION);
  w.key("uptime_seconds").integer(std::chrono::duration_cast<std::chrono::seconds>(now - ctx.started).count());
  w.key("started_at").string(ctx.started_at.empty() ? format_rfc3339_ms(ctx.started_wall) : ctx.started_at);
  static const pid_t pid = getpid();
  w.key("pid").integer(pid);
  if (ctx.server != nullptr) {
    const server::ServerStats& s = ctx.server->stats();
    w.key("server").begin_object();
    w.key("connections").uinteger(s.connections);
    w.key("accepted").uinteger(s.accepted);
    w.key("requests").uinteger(s.requests);
    w.key("refused_connections").uinteger(s.rejected_busy + s.rejected_per_uid);
    w.key("protocol_errors").uinteger(s.protocol_errors);
    w.key("timeouts").uinteger(s.timeouts);
    w.end_object();
  }
  w.end_object();
  return body;
}

void register_health_routes(server::Router& router, HealthContext& ctx) {
  ctx.started_at = format_rfc3339_ms(ctx.started_wall);
  auto handler = [&ctx](server::Call call) { call.respond(http::Response::json(200, health_body(ctx))); };
  router.add(http::Method::get, "/health", handler);
  router.add(http::Method::get, "/api/onepassword/health", handler);
  router.add(http::Method::get, "/api/credentials/health", handler);
}

}  // namespace chitty::api
