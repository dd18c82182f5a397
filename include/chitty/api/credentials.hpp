// The credential routes (SPEC §4):
//   POST /api/onepassword/retrieve   {ref} | {vault,item,[section],field} | {credential_type},
//                                    plus optional context {service,purpose,environment}, refresh
//   GET  /v1/secret?ref=op://...     the raw value as text/plain (refresh=true, purpose=...)
// Both answer with X-Cache, Age and X-Chitty-Mode. Every answer — granted or
// refused — is recorded through the audit Recorder before it is sent; a
// grant that cannot be recorded is refused (503 audit_unavailable).
//
// Secret-bearing bodies are built in locked memory (SecretPayload) and wiped
// once written; each connection may hold at most
// agent.max_secret_responses_per_connection of them.
#pragma once

#include "chitty/audit/audit.hpp"
#include "chitty/base/clock.hpp"
#include "chitty/broker/broker.hpp"
#include "chitty/http/response.hpp"
#include "chitty/secure/arena.hpp"
#include "chitty/secure/secure_buffer.hpp"
#include "chitty/server/server.hpp"

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
  broker::Broker* broker = nullptr;
  audit::Recorder* audit = nullptr;
  secure::Arena* arena = nullptr;  // for response bodies
};

// The JSON body of a granted retrieve, in locked memory; an empty buffer if
// there is no locked memory for it right now.
secure::SecureBuffer credential_body(secure::Arena& arena, const broker::Granted& g, std::string_view request_id);

// Registers the routes. `ctx` must outlive the router.
void register_credential_routes(server::Router& router, CredentialsContext& ctx);

}  // namespace chitty::api
