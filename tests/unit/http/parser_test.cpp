#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "request_parser.hpp"

using namespace std::string_view_literals;
using chitty::http::ErrorCode;
using chitty::http::Limits;
using chitty::http::Method;
using chitty::http::Request;
using chitty::http::RequestParser;
using Status = chitty::http::RequestParser::Status;

namespace {

// Feeds `bytes` in chunks of `step`, collecting complete requests; stops at
// the first error.
struct Parsed {
  std::vector<Request> requests;
  bool error = false;
  ErrorCode code = ErrorCode::bad_request;
  std::string message;
};

Parsed parse(const std::string& bytes, const Limits& limits = Limits{}, std::size_t step = 0) {
  Parsed out;
  RequestParser p(limits);
  if (step == 0) step = bytes.size();
  for (std::size_t off = 0; off < bytes.size(); off += step) {
    std::string_view chunk(bytes.data() + off, std::min(step, bytes.size() - off));
    while (!chunk.empty()) {
      auto r = p.feed(chunk);
      if (r.status == Status::error) {
        out.error = true;
        out.code = p.error().code;
        out.message = p.error().message;
        return out;
      }
      chunk.remove_prefix(r.consumed);
      if (r.status == Status::complete) out.requests.push_back(p.take());
    }
  }
  return out;
}

std::string body_of(const Request& r) { return std::string(r.body().data(), r.body().size()); }

}  // namespace

TEST_CASE("a simple GET is parsed", "[http][parser]") {
  auto p = parse("GET /health?x=1 HTTP/1.1\r\nHost: localhost\r\nUser-Agent: curl/7.88.1\r\nAccept: */*\r\n\r\n");
  REQUIRE_FALSE(p.error);
  REQUIRE(p.requests.size() == 1);
  const Request& r = p.requests[0];
  CHECK(r.method() == Method::get);
  CHECK(r.method_name() == "GET");
  CHECK(r.target() == "/health?x=1");
  CHECK(r.path() == "/health");
  CHECK(r.query() == "x=1");
  CHECK(r.header_count() == 3);
  CHECK(r.header("host") == std::optional<std::string_view>("localhost"));
  CHECK(r.header("USER-AGENT") == std::optional<std::string_view>("curl/7.88.1"));
  CHECK_FALSE(r.header("missing").has_value());
  CHECK(r.http_minor() == 1);
  CHECK(r.keep_alive());
  CHECK(r.body().empty());
}

TEST_CASE("every split point of a request gives the same result", "[http][parser]") {
  std::string req = "POST /api/x HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{\"a\":\"hello\"}";
  for (std::size_t step = 1; step <= req.size(); ++step) {
    INFO("step " << step);
    auto p = parse(req, Limits{}, step);
    REQUIRE_FALSE(p.error);
    REQUIRE(p.requests.size() == 1);
    CHECK(p.requests[0].method() == Method::post);
    CHECK(p.requests[0].header("content-type") == std::optional<std::string_view>("application/json"));
    CHECK(body_of(p.requests[0]) == "{\"a\":\"hello\"}");
  }
}

TEST_CASE("pipelined requests come out one at a time, in order", "[http][parser]") {
  std::string two = "GET /a HTTP/1.1\r\nHost: x\r\n\r\nPOST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabcGET /c HTTP/1.1\r\nHost: x\r\n\r\n";
  RequestParser p(Limits{});
  std::string_view rest = two;
  auto r1 = p.feed(rest);
  REQUIRE(r1.status == Status::complete);
  CHECK(p.take().path() == "/a");
  rest.remove_prefix(r1.consumed);
  auto r2 = p.feed(rest);
  REQUIRE(r2.status == Status::complete);
  Request b = p.take();
  CHECK(b.path() == "/b");
  CHECK(body_of(b) == "abc");
  rest.remove_prefix(r2.consumed);
  auto r3 = p.feed(rest);
  REQUIRE(r3.status == Status::complete);
  CHECK(p.take().path() == "/c");
  CHECK(r3.consumed == rest.size());
}

TEST_CASE("header values are trimmed of surrounding whitespace", "[http][parser]") {
  auto p = parse("GET / HTTP/1.1\r\nHost:   padded  \t\r\nX-Empty:\r\nX-Tab:\tv\r\n\r\n");
  REQUIRE(p.requests.size() == 1);
  CHECK(p.requests[0].header("host") == std::optional<std::string_view>("padded"));
  CHECK(p.requests[0].header("x-empty") == std::optional<std::string_view>(""));
  CHECK(p.requests[0].header("x-tab") == std::optional<std::string_view>("v"));
}

TEST_CASE("keep-alive follows the version and the Connection header", "[http][parser]") {
  CHECK(parse("GET / HTTP/1.1\r\nHost: a\r\n\r\n").requests.at(0).keep_alive());
  CHECK_FALSE(parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").requests.at(0).keep_alive());
  CHECK_FALSE(parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, CLOSE\r\n\r\n").requests.at(0).keep_alive());
  // llhttp 8.1.0 misses "close" followed by a tab; our own token parsing does not.
  CHECK_FALSE(parse("GET / HTTP/1.1\r\nHost: a\r\nConnection: close\t\r\n\r\n").requests.at(0).keep_alive());
  CHECK_FALSE(parse("GET / HTTP/1.0\r\n\r\n").requests.at(0).keep_alive());
  // Where llhttp 8.1.0 does not see the keep-alive token (a trailing tab),
  // we close too: llhttp would otherwise swallow the next request.
  CHECK_FALSE(parse("GET / HTTP/1.0\r\nConnection: keep-alive\t\r\n\r\n").requests.at(0).keep_alive());
  auto ka10 = parse("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
  CHECK(ka10.requests.at(0).keep_alive());
  CHECK(ka10.requests.at(0).http_minor() == 0);
}

TEST_CASE("HTTP/1.0 needs no Host; HTTP/1.1 does", "[http][parser]") {
  CHECK_FALSE(parse("GET / HTTP/1.0\r\n\r\n").error);
  auto p = parse("GET / HTTP/1.1\r\n\r\n");
  REQUIRE(p.error);
  CHECK(p.code == ErrorCode::bad_request);
  CHECK(p.message.find("Host") != std::string::npos);
}

TEST_CASE("unsupported HTTP versions are refused with 505", "[http][parser]") {
  auto p = parse("GET / HTTP/2.0\r\nHost: a\r\n\r\n");
  REQUIRE(p.error);
  CHECK(p.code == ErrorCode::http_version_not_supported);
  CHECK(chitty::http::error_status(p.code) == 505);
}

TEST_CASE("the request target is limited (414)", "[http][parser][limits]") {
  Limits l;
  l.max_uri_bytes = 256;
  CHECK_FALSE(parse("GET /" + std::string(255, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n", l).error);
  for (std::size_t step : {std::size_t{0}, std::size_t{3}}) {
    auto p = parse("GET /" + std::string(256, 'a') + " HTTP/1.1\r\nHost: a\r\n\r\n", l, step);
    REQUIRE(p.error);
    CHECK(p.code == ErrorCode::uri_too_long);
    CHECK(chitty::http::error_status(p.code) == 414);
  }
}

TEST_CASE("header bytes are limited (431)", "[http][parser][limits]") {
  Limits l;
  l.max_header_bytes = 1024;
  // "Host" + "a" = 5 bytes; the rest fills up to the limit exactly.
  std::string ok = "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(1024 - 5 - 1, 'v') + "\r\n\r\n";
  CHECK_FALSE(parse(ok, l).error);
  std::string big = "GET / HTTP/1.1\r\nHost: a\r\nX: " + std::string(1024 - 5, 'v') + "\r\n\r\n";
  for (std::size_t step : {std::size_t{0}, std::size_t{1}, std::size_t{100}}) {
    auto p = parse(big, l, step);
    REQUIRE(p.error);
    CHECK(p.code == ErrorCode::headers_too_large);
    CHECK(chitty::http::error_status(p.code) == 431);
  }
}

TEST_CASE("a 100 KiB header is refused before it is buffered", "[http][parser][limits]") {
  std::string huge = "GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(100 * 1024, 'x') + "\r\n\r\n";
  auto p = parse(huge, Limits{}, 4096);
  REQUIRE(p.error);
  CHECK(p.code == ErrorCode::headers_too_large);
}

TEST_CASE("the header count is limited (431)", "[http][parser][limits]") {
  Limits l;
  l.max_headers = 5;
  std::string ok = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n";
  CHECK_FALSE(parse(ok, l).error);
  std::string many = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n";
  auto p = parse(many, l);
  REQUIRE(p.error);
  CHECK(p.code == ErrorCode::headers_too_large);
}

TEST_CASE("bytes llhttp does not report (whitespace padding) still count against the head limit",
          "[http][parser][limits]") {
  // Leading whitespace of a value never reaches on_header_value, so it is not
  // in max_header_bytes; the scanner's bound on the whole head catches it.
  Limits l;
  l.max_header_bytes = 1024;
  std::string req = "GET / HTTP/1.1\r\nHost: a\r\nX-Pad:" + std::string(20000, ' ') + "v\r\n\r\n";
  auto p = parse(req, l, 512);
  REQUIRE(p.error);
  CHECK(p.code == ErrorCode::headers_too_large);
  // Many short headers within max_headers stay within the bound.
  Limits many;
  many.max_headers = 1024;
  std::string ok = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 1000; ++i) ok += "A:\r\n";
  ok += "\r\n";
  CHECK_FALSE(parse(ok, many).error);
}

TEST_CASE("the body is limited by its Content-Length (413) before it is read", "[http][parser][limits]") {
  Limits l;
  l.max_body_bytes = 1024;
  auto ok = parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1024\r\n\r\n" + std::string(1024, 'b'), l);
  REQUIRE_FALSE(ok.error);
  CHECK(ok.requests.at(0).body().size() == 1024);
  // Only the head is sent: the refusal must not wait for the body.
  auto p = parse("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1025\r\n\r\n", l);
  REQUIRE(p.error);
  CHECK(p.code == ErrorCode::too_large);
  CHECK(chitty::http::error_status(p.code) == 413);
}

TEST_CASE("Transfer-Encoding of any kind is refused; Content-Length is required for bodies", "[http][parser]") {
  for (const char* te : {"chunked", "gzip, chunked", "identity", ""}) {
    INFO(te);
    auto p = parse(std::string("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: ") + te + "\r\n\r\n");
    REQUIRE(p.error);
    CHECK(p.code == ErrorCode::bad_request);
    CHECK(p.message.find("Content-Length") != std::string::npos);
  }
}

TEST_CASE("Expect: 100-continue is recognised; other expectations get 417", "[http][parser]") {
  RequestParser p(Limits{});
  std::string head = "POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n";
  auto r = p.feed(head);
  CHECK(r.status == Status::need_more);
  CHECK(p.in_body());
  CHECK(p.expects_continue());
  auto done = p.feed("data"sv);
  REQUIRE(done.status == Status::complete);
  CHECK(body_of(p.take()) == "data");
  CHECK_FALSE(p.expects_continue());

  auto bad = parse("POST / HTTP/1.1\r\nHost: a\r\nExpect: something-else\r\nContent-Length: 4\r\n\r\ndata");
  REQUIRE(bad.error);
  CHECK(bad.code == ErrorCode::expectation_failed);
  CHECK(chitty::http::error_status(bad.code) == 417);
}

TEST_CASE("an upgrade request is answered as plain HTTP/1.1", "[http][parser]") {
  auto p = parse("GET /health HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                 "HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\nGET /next HTTP/1.1\r\nHost: a\r\n\r\n");
  REQUIRE_FALSE(p.error);
  REQUIRE(p.requests.size() == 2);
  CHECK(p.requests[1].path() == "/next");
}

TEST_CASE("a few empty lines before a request line are tolerated, not more", "[http][parser]") {
  auto p = parse("\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
  REQUIRE_FALSE(p.error);
  CHECK(p.requests.size() == 1);
  auto many = parse("\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n");
  REQUIRE(many.error);
  CHECK(many.message == "too many empty lines before the request line");
}

TEST_CASE("empty lines alone do not start a request", "[http][parser]") {
  RequestParser p(Limits{});
  CHECK(p.feed("\r\n"sv).status == Status::need_more);
  CHECK_FALSE(p.in_message());
  CHECK(p.feed("G"sv).status == Status::need_more);
  CHECK(p.in_message());
}

TEST_CASE("garbage is a 400 with llhttp's reason", "[http][parser]") {
  auto p = parse("NOT-HTTP\r\n\r\n");
  REQUIRE(p.error);
  CHECK(p.code == ErrorCode::bad_request);
  CHECK(p.message.rfind("malformed request", 0) == 0);
  auto q = parse("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
  REQUIRE(q.error);
}

TEST_CASE("in_message tracks a partially received request", "[http][parser]") {
  RequestParser p(Limits{});
  CHECK_FALSE(p.in_message());
  CHECK(p.feed("GE"sv).status == Status::need_more);
  CHECK(p.in_message());
  CHECK_FALSE(p.in_body());
  CHECK(p.feed("T / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n"sv).status == Status::need_more);
  CHECK(p.in_body());
  REQUIRE(p.feed("ok"sv).status == Status::complete);
  p.take();
  CHECK_FALSE(p.in_message());
}

TEST_CASE("absolute-form targets are reduced to their path", "[http][parser]") {
  auto p = parse("GET http://localhost/health?a=b HTTP/1.1\r\nHost: localhost\r\n\r\n");
  REQUIRE(p.requests.size() == 1);
  CHECK(p.requests[0].path() == "/health");
  CHECK(p.requests[0].query() == "a=b");
  auto q = parse("GET http://localhost HTTP/1.1\r\nHost: localhost\r\n\r\n");
  REQUIRE(q.requests.size() == 1);
  CHECK(q.requests[0].path() == "/");
}
