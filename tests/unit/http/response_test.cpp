#include <catch2/catch.hpp>

#include <string>

#include "chitty/http/errors.hpp"
#include "chitty/http/response.hpp"

using chitty::http::ErrorCode;
using chitty::http::HeadFields;
using chitty::http::Response;

TEST_CASE("serialize_head writes the status line, framing and fixed headers", "[http][response]") {
  Response r = Response::json(200, "{}");
  r.headers.emplace_back("X-Cache", "HIT");
  std::string out;
  chitty::http::serialize_head(r, HeadFields{"0123456789abcdef", "Tue, 24 Nov 2026 00:00:00 GMT", false, false}, out);
  CHECK(out ==
        "HTTP/1.1 200 OK\r\n"
        "Content-Type: application/json\r\n"
        "Content-Length: 2\r\n"
        "X-Request-Id: 0123456789abcdef\r\n"
        "Date: Tue, 24 Nov 2026 00:00:00 GMT\r\n"
        "Cache-Control: no-store\r\n"
        "X-Cache: HIT\r\n"
        "\r\n");
}

TEST_CASE("serialize_head announces close and HTTP/1.0 keep-alive", "[http][response]") {
  Response r;
  r.status = 204;
  std::string closing, kept;
  chitty::http::serialize_head(r, HeadFields{"id", "", true, false}, closing);
  chitty::http::serialize_head(r, HeadFields{"id", "", false, true}, kept);
  CHECK(closing.find("Connection: close\r\n") != std::string::npos);
  CHECK(closing.find("Content-Length: 0\r\n") != std::string::npos);
  CHECK(closing.find("Date:") == std::string::npos);
  CHECK(kept.find("Connection: keep-alive\r\n") != std::string::npos);
}

TEST_CASE("error codes map to the SPEC's statuses", "[http][errors]") {
  CHECK(chitty::http::error_status(ErrorCode::bad_request) == 400);
  CHECK(chitty::http::error_status(ErrorCode::batch_too_large) == 400);
  CHECK(chitty::http::error_status(ErrorCode::unauthenticated) == 401);
  CHECK(chitty::http::error_status(ErrorCode::forbidden) == 403);
  CHECK(chitty::http::error_status(ErrorCode::context_mismatch) == 403);
  CHECK(chitty::http::error_status(ErrorCode::revoked) == 403);
  CHECK(chitty::http::error_status(ErrorCode::risk_denied) == 403);
  CHECK(chitty::http::error_status(ErrorCode::step_up_required) == 403);
  CHECK(chitty::http::error_status(ErrorCode::not_found) == 404);
  CHECK(chitty::http::error_status(ErrorCode::too_large) == 413);
  CHECK(chitty::http::error_status(ErrorCode::rate_limited) == 429);
  CHECK(chitty::http::error_status(ErrorCode::upstream_unavailable) == 503);
  CHECK(chitty::http::error_status(ErrorCode::audit_unavailable) == 503);
  CHECK(chitty::http::error_status(ErrorCode::method_not_allowed) == 405);
  CHECK(chitty::http::error_status(ErrorCode::request_timeout) == 408);
  CHECK(chitty::http::error_status(ErrorCode::uri_too_long) == 414);
  CHECK(chitty::http::error_status(ErrorCode::headers_too_large) == 431);
  CHECK(chitty::http::error_status(ErrorCode::too_many_connections) == 429);
  CHECK(chitty::http::error_status(ErrorCode::server_busy) == 503);
  CHECK(chitty::http::error_code_name(ErrorCode::context_mismatch) == "context_mismatch");
  CHECK(chitty::http::error_code_name(ErrorCode::headers_too_large) == "headers_too_large");
}

TEST_CASE("error_response has the SPEC's JSON shape", "[http][errors]") {
  Response r = chitty::http::error_response(ErrorCode::not_found, "no route for GET /x\"y", "abc");
  CHECK(r.status == 404);
  CHECK(r.content_type == "application/json");
  auto bytes = r.body->bytes();
  std::string body(bytes.data(), bytes.size());
  CHECK(body ==
        "{\"success\":false,\"error\":{\"code\":\"not_found\",\"message\":\"no route for GET /x\\\"y\"},"
        "\"metadata\":{\"request_id\":\"abc\"}}");
}

TEST_CASE("error messages with invalid UTF-8 still give valid JSON", "[http][errors]") {
  Response r = chitty::http::error_response(ErrorCode::bad_request, "bad \xff\xfe path", "id");
  auto bytes = r.body->bytes();
  std::string body(bytes.data(), bytes.size());
  CHECK(body.find("bad \xEF\xBF\xBD\xEF\xBF\xBD path") != std::string::npos);
}
