// The SPEC §4 routes (docs/api.md):
//   POST /api/onepassword/retrieve              one credential
//   POST /api/onepassword/batch-retrieve        up to 10, per-item results
//   GET  /api/onepassword/service-token/{target}
//   GET  /api/onepassword/integration-key/{integration}
//   POST /api/credentials/provision             {type, context}
//   POST /api/credentials/validate              status only, never a value
//   GET  /v1/secret?ref=op://...                the raw value as text/plain
//   POST /api/onepassword/emergency-revoke[/clear]   (X-Emergency-Token)
//   GET  /api/onepassword/insights/{service}    admin only
//   GET  /api/credentials/audit                 admin only
//   GET  /metrics                               Prometheus text
// Credential answers carry X-Cache, Age and X-Chitty-Mode. Every decision —
// granted or refused — is recorded through the audit Recorder before it is
// answered; a grant that cannot be recorded is refused (503
// audit_unavailable).
//
// Secret-bearing bodies are built in locked memory (SecretPayload) and wiped
// once written; each connection may hold at most
// agent.max_secret_responses_per_connection of them.
#pragma once

#include <functional>
#include <string>

#include "chitty/api/metrics.hpp"
#include "chitty/audit/audit.hpp"
#include "chitty/base/clock.hpp"
#include "chitty/base/result.hpp"
#include "chitty/broker/broker.hpp"
#include "chitty/http/response.hpp"
#include "chitty/policy/gate.hpp"
#include "chitty/policy/rules.hpp"
#include "chitty/predict/model.hpp"
#include "chitty/risk/engine.hpp"
#include "chitty/secure/arena.hpp"
#include "chitty/secure/sealed_value.hpp"
#include "chitty/secure/secure_buffer.hpp"
#include "chitty/server/server.hpp"
#include "chitty/upstream/token.hpp"

namespace chitty::api {

// A response body in locked memory, wiped when the write completes.
class SecretPayload final : public http::Payload {
 public:
  explicit SecretPayload(secure::SecureBuffer b) : buffer_(std::move(b)) {}
  std::span<const char> bytes() const noexcept override { return buffer_.bytes(); }
  bool sensitive() const noexcept override { return true; }

 private:
  secure::SecureBuffer buffer_;
};

struct CredentialsContext {
  broker::Broker* broker = nullptr;  // retrievals and emergency revocations
  const policy::Rules* rules = nullptr;  // the catalog and policy in force
  policy::Gate* gate = nullptr;      // the rate limit of the routes that do not retrieve
  audit::Recorder* audit = nullptr;
  secure::Arena* arena = nullptr;  // for response bodies
  Metrics* metrics = nullptr;      // may be null
  const Clock* clock = nullptr;
  std::string services_vault = "ChittyOS Services";
  std::string integrations_vault = "ChittyOS Integrations";
  // Emergency revocation: the token (null when [emergency] token_file is
  // unset), and how revocations are made durable before they are
  // acknowledged.
  const upstream::Token* emergency_token = nullptr;
  // The step-up token of a service (null: it has none), for requests scored
  // in the step-up band (docs/risk.md).
  std::function<const upstream::Token*(std::string_view service)> step_up_token;
  // What insights/{service} shows of risk scoring; null when it is off.
  const risk::Engine* risk = nullptr;
  // Returns the generation of the revocations file written (audit events
  // record it: an older copy put back is a rollback).
  std::function<Result<std::uint64_t>(const policy::Revocations&)> persist_revocations;
  // Audit reads (insights, GET /api/credentials/audit) run on the thread
  // pool, one at a time: another asks again shortly (503), so that they
  // never take the pool from the spool's fsyncs.
  bool audit_scan_running = false;
  // What insights/{service} shows of prediction; null when it is off.
  const predict::Model* prediction = nullptr;
};

// The JSON body of a granted retrieve, in locked memory; an empty buffer if
// there is no locked memory for it right now. `risk`: the request's score,
// in its metadata (null: not scored). `delivery` (docs/mcp.md): `withheld`
// leaves the value itself out ("value":null,"withheld":true), its mask and
// metadata kept — the MCP channel of a service without mcp_release;
// `released_over_mcp` carries it with "released_over_mcp":true, which a
// client on that channel must see before it passes a value on.
enum class Delivery { plain, withheld, released_over_mcp };
secure::SecureBuffer credential_body(secure::Arena& arena, const broker::Granted& g, std::string_view request_id,
                                     const audit::Risk* risk = nullptr, Delivery delivery = Delivery::plain);

// The handler of systemd's LoadCredential= requests (docs/systemd.md): the
// credential ID names a catalog type, the unit is the caller, and the value
// goes through the broker like GET /v1/secret's (action "load_credential",
// purpose "load_credential"), audited; refused, the unit gets no value.
// `ctx` must outlive the server.
server::CredentialHandler load_credential_handler(CredentialsContext& ctx);

// Registers the routes. `ctx` must outlive the router.
void register_credential_routes(server::Router& router, CredentialsContext& ctx);
// Emergency revocation and the admin routes (emergency.cpp, admin.cpp).
void register_emergency_routes(server::Router& router, CredentialsContext& ctx);
void register_admin_routes(server::Router& router, CredentialsContext& ctx);
// GET /metrics.
// GET /metrics: `observed` must outlive the router (parts opened later are
// read as they are filled in).
void register_metrics_route(server::Router& router, CredentialsContext& ctx, const Observed& observed);

}  // namespace chitty::api
