#include "chitty/http/errors.hpp"

#include "chitty/json/writer.hpp"

namespace chitty::http {

std::string_view error_code_name(ErrorCode c) noexcept {
  switch (c) {
    case ErrorCode::bad_request: return "bad_request";
    case ErrorCode::batch_too_large: return "batch_too_large";
    case ErrorCode::unauthenticated: return "unauthenticated";
    case ErrorCode::forbidden: return "forbidden";
    case ErrorCode::context_mismatch: return "context_mismatch";
    case ErrorCode::revoked: return "revoked";
    case ErrorCode::risk_denied: return "risk_denied";
    case ErrorCode::step_up_required: return "step_up_required";
    case ErrorCode::not_found: return "not_found";
    case ErrorCode::too_large: return "too_large";
    case ErrorCode::rate_limited: return "rate_limited";
    case ErrorCode::upstream_unavailable: return "upstream_unavailable";
    case ErrorCode::audit_unavailable: return "audit_unavailable";
    case ErrorCode::storage_unavailable: return "storage_unavailable";
    case ErrorCode::method_not_allowed: return "method_not_allowed";
    case ErrorCode::request_timeout: return "request_timeout";
    case ErrorCode::expectation_failed: return "expectation_failed";
    case ErrorCode::uri_too_long: return "uri_too_long";
    case ErrorCode::headers_too_large: return "headers_too_large";
    case ErrorCode::too_many_connections: return "too_many_connections";
    case ErrorCode::server_busy: return "server_busy";
    case ErrorCode::shutting_down: return "shutting_down";
    case ErrorCode::http_version_not_supported: return "http_version_not_supported";
    case ErrorCode::internal_error: return "internal_error";
  }
  return "internal_error";
}

int error_status(ErrorCode c) noexcept {
  switch (c) {
    case ErrorCode::bad_request:
    case ErrorCode::batch_too_large: return 400;
    case ErrorCode::unauthenticated: return 401;
    case ErrorCode::forbidden:
    case ErrorCode::context_mismatch:
    case ErrorCode::revoked:
    case ErrorCode::risk_denied:
    case ErrorCode::step_up_required: return 403;
    case ErrorCode::not_found: return 404;
    case ErrorCode::method_not_allowed: return 405;
    case ErrorCode::request_timeout: return 408;
    case ErrorCode::too_large: return 413;
    case ErrorCode::uri_too_long: return 414;
    case ErrorCode::expectation_failed: return 417;
    case ErrorCode::rate_limited:
    case ErrorCode::too_many_connections: return 429;
    case ErrorCode::headers_too_large: return 431;
    case ErrorCode::internal_error: return 500;
    case ErrorCode::upstream_unavailable:
    case ErrorCode::audit_unavailable:
    case ErrorCode::storage_unavailable:
    case ErrorCode::server_busy:
    case ErrorCode::shutting_down: return 503;
    case ErrorCode::http_version_not_supported: return 505;
  }
  return 500;
}

void write_error(json::Writer& w, ErrorCode code, std::string_view message) {
  w.key("error").begin_object();
  w.key("code").string(error_code_name(code));
  w.key("message").string(message);
  w.end_object();
}

void write_metadata(json::Writer& w, std::string_view request_id) {
  w.key("metadata").begin_object();
  w.key("request_id").string(request_id);
  w.end_object();
}

Response error_response(ErrorCode code, std::string_view message, std::string_view request_id) {
  std::string body = json::object_text(
      [&](json::Writer& w) {
        w.key("success").boolean(false);
        write_error(w, code, message);
        write_metadata(w, request_id);
      },
      128 + message.size());
  return Response::json(error_status(code), std::move(body));
}

}  // namespace chitty::http
