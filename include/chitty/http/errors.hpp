// The error contract of the API (SPEC §4): a code string, its HTTP status, and
// the JSON body every error response carries:
// {"success":false,"error":{"code":"…","message":"…"},"metadata":{"request_id":"…"}}
#pragma once

#include <string_view>

#include "chitty/http/response.hpp"
#include "chitty/json/writer.hpp"

namespace chitty::http {

enum class ErrorCode {
  // SPEC §4
  bad_request,           // 400
  batch_too_large,       // 400
  unauthenticated,       // 401
  forbidden,             // 403
  context_mismatch,      // 403
  revoked,               // 403
  risk_denied,           // 403
  step_up_required,      // 403
  not_found,             // 404
  too_large,             // 413
  rate_limited,          // 429
  upstream_unavailable,  // 503
  audit_unavailable,     // 503
  // HTTP-level conditions the SPEC leaves to us (docs/api.md)
  method_not_allowed,          // 405
  request_timeout,             // 408
  expectation_failed,          // 417
  uri_too_long,                // 414
  headers_too_large,           // 431
  too_many_connections,        // 429 (per-uid connection cap)
  server_busy,                 // 503 (global connection cap)
  storage_unavailable,         // 503 (state directory write failed: revocations)
  shutting_down,               // 503
  http_version_not_supported,  // 505
  internal_error,              // 500: a bug in the agent, never a client's mistake
};

std::string_view error_code_name(ErrorCode c) noexcept;
int error_status(ErrorCode c) noexcept;

// The members every API answer shares: "error": {"code", "message"} and
// "metadata": {"request_id"}.
void write_error(json::Writer& w, ErrorCode code, std::string_view message);
void write_metadata(json::Writer& w, std::string_view request_id);

// A complete error response with the SPEC's JSON body. `message` is shown to
// the client: it must describe the problem without echoing secret material.
Response error_response(ErrorCode code, std::string_view message, std::string_view request_id);

}  // namespace chitty::http
