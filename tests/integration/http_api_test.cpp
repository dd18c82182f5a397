// The HTTP surface of the real agent, through real curl.
#include <catch2/catch.hpp>

#include <csignal>
#include <string>

#include "process.hpp"
#include "uds_client.hpp"

using namespace std::chrono_literals;
using chitty::testing::AgentProcess;
using chitty::testing::TempDir;
using chitty::testing::UdsClient;

namespace {

struct Running {
  TempDir dir;
  AgentProcess agent;
  explicit Running(const std::string& settings = "") : agent(dir, settings) { REQUIRE(agent.wait_ready()); }
};

}  // namespace

TEST_CASE("GET /health through curl", "[integration][http]") {
  Running r;
  auto res = chitty::testing::curl(r.agent.socket(), "/health");
  REQUIRE(res.exit_code == 0);
  CHECK(res.out.rfind("HTTP/1.1 200 OK\r\n", 0) == 0);
  CHECK(res.out.find("\r\nContent-Type: application/json\r\n") != std::string::npos);
  CHECK(res.out.find("\r\nX-Request-Id: ") != std::string::npos);
  CHECK(res.out.find("\"status\":\"healthy\"") != std::string::npos);
  CHECK(res.out.find("\"version\":\"0.1.0\"") != std::string::npos);
  CHECK(res.out.find("\"uptime_seconds\":") != std::string::npos);
}

TEST_CASE("the SPEC's health aliases answer too", "[integration][http]") {
  Running r;
  for (const char* path : {"/api/onepassword/health", "/api/credentials/health"}) {
    auto res = chitty::testing::curl(r.agent.socket(), path);
    REQUIRE(res.exit_code == 0);
    CHECK(res.out.rfind("HTTP/1.1 200 OK", 0) == 0);
  }
}

TEST_CASE("unknown paths are 404 JSON; wrong methods are 405 JSON with Allow", "[integration][http]") {
  Running r;
  auto nf = chitty::testing::curl(r.agent.socket(), "/no/such/route");
  REQUIRE(nf.exit_code == 0);
  CHECK(nf.out.rfind("HTTP/1.1 404 Not Found", 0) == 0);
  CHECK(nf.out.find("{\"success\":false,\"error\":{\"code\":\"not_found\"") != std::string::npos);
  CHECK(nf.out.find("\"metadata\":{\"request_id\":\"") != std::string::npos);

  auto na = chitty::testing::curl(r.agent.socket(), "/health", {"-X", "DELETE"});
  REQUIRE(na.exit_code == 0);
  CHECK(na.out.rfind("HTTP/1.1 405 Method Not Allowed", 0) == 0);
  CHECK(na.out.find("\r\nAllow: GET\r\n") != std::string::npos);
  CHECK(na.out.find("\"code\":\"method_not_allowed\"") != std::string::npos);

  auto post = chitty::testing::curl(r.agent.socket(), "/health", {"--data", "{\"a\":1}"});
  REQUIRE(post.exit_code == 0);
  CHECK(post.out.rfind("HTTP/1.1 405", 0) == 0);
}

TEST_CASE("the request id in the header matches the one in an error body", "[integration][http]") {
  Running r;
  auto res = chitty::testing::curl(r.agent.socket(), "/missing");
  REQUIRE(res.exit_code == 0);
  auto h = res.out.find("X-Request-Id: ");
  REQUIRE(h != std::string::npos);
  std::string id = res.out.substr(h + 14, 16);
  CHECK(res.out.find("\"request_id\":\"" + id + "\"") != std::string::npos);
}

TEST_CASE("curl reuses one keep-alive connection for several requests", "[integration][http]") {
  Running r;
  auto res = chitty::testing::run({"curl", "--silent", "--show-error", "--verbose", "--unix-socket", r.agent.socket(),
                                   "http://localhost/health", "http://localhost/health", "http://localhost/health"});
  REQUIRE(res.exit_code == 0);
  std::size_t n = 0;
  for (auto p = res.out.find("\"healthy\""); p != std::string::npos; p = res.out.find("\"healthy\"", p + 1)) ++n;
  CHECK(n == 3);
  CHECK(res.err.find("Re-using existing connection") != std::string::npos);
}

TEST_CASE("HTTP/1.0 clients are served and the connection closes", "[integration][http]") {
  Running r;
  auto res = chitty::testing::curl(r.agent.socket(), "/health", {"--http1.0"});
  REQUIRE(res.exit_code == 0);
  CHECK(res.out.rfind("HTTP/1.1 200 OK", 0) == 0);
  CHECK(res.out.find("Connection: close") != std::string::npos);
}

TEST_CASE("an h2c upgrade attempt is answered as HTTP/1.1", "[integration][http]") {
  Running r;
  auto res = chitty::testing::curl(r.agent.socket(), "/health", {"--http2"});
  REQUIRE(res.exit_code == 0);
  CHECK(res.out.rfind("HTTP/1.1 200 OK", 0) == 0);
}

TEST_CASE("a 100 KiB header gets 431 and the daemon keeps serving", "[integration][http][limits]") {
  Running r;
  auto res = chitty::testing::curl(r.agent.socket(), "/health", {"-H", "X-Big: " + std::string(100 * 1024, 'x')});
  REQUIRE(res.exit_code == 0);
  CHECK(res.out.rfind("HTTP/1.1 431 Request Header Fields Too Large", 0) == 0);
  CHECK(res.out.find("\"code\":\"headers_too_large\"") != std::string::npos);
  CHECK(res.out.find("Connection: close") != std::string::npos);
  auto ok = chitty::testing::curl(r.agent.socket(), "/health");
  CHECK(ok.out.rfind("HTTP/1.1 200 OK", 0) == 0);
}

TEST_CASE("a long URI gets 414 and a large body 413", "[integration][http][limits]") {
  Running r("max_uri_bytes = \"1KiB\"\nmax_body_bytes = \"2KiB\"");
  auto uri = chitty::testing::curl(r.agent.socket(), "/" + std::string(2000, 'a'));
  REQUIRE(uri.exit_code == 0);
  CHECK(uri.out.rfind("HTTP/1.1 414 URI Too Long", 0) == 0);
  // Decided from Content-Length, while the body is still on its way.
  auto body = chitty::testing::curl(r.agent.socket(), "/health", {"--data-binary", std::string(4096, 'b')});
  REQUIRE(body.exit_code == 0);
  CHECK(body.out.rfind("HTTP/1.1 413 Content Too Large", 0) == 0);
  CHECK(body.out.find("\"code\":\"too_large\"") != std::string::npos);
  // With Expect: 100-continue the body is never sent: 413 instead of 100.
  auto expect = chitty::testing::curl(r.agent.socket(), "/health",
                                      {"-H", "Expect: 100-continue", "--data-binary", std::string(4096, 'b')});
  REQUIRE(expect.exit_code == 0);
  CHECK(expect.out.rfind("HTTP/1.1 413 Content Too Large", 0) == 0);
  CHECK(expect.out.find("100 Continue") == std::string::npos);
}

TEST_CASE("a body sent after 100 Continue is read and the request routed", "[integration][http]") {
  Running r;
  auto res = chitty::testing::curl(r.agent.socket(), "/health",
                                   {"-H", "Expect: 100-continue", "--data-binary", std::string(2048, 'b')});
  REQUIRE(res.exit_code == 0);
  CHECK(res.out.find("HTTP/1.1 100 Continue") != std::string::npos);
  CHECK(res.out.find("HTTP/1.1 405") != std::string::npos);
}

TEST_CASE("pipelined requests are answered in order on one connection", "[integration][http]") {
  Running r;
  UdsClient c(r.agent.socket());
  REQUIRE(c.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\nGET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
                 "POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}GET /health HTTP/1.1\r\nHost: x\r\n\r\n"));
  std::vector<int> statuses;
  for (int i = 0; i < 4; ++i) {
    auto res = c.read_response();
    REQUIRE(res);
    statuses.push_back(res->status);
  }
  CHECK(statuses == std::vector<int>{200, 404, 405, 200});
}

TEST_CASE("smuggling vectors against the running agent: 400, close, nothing smuggled", "[integration][http][smuggling]") {
  Running r;
  const std::vector<std::string> vectors = {
      // CVE-2023-30589
      "POST / HTTP/1.1\r\nHost: localhost:5000\r\nX-Abc:\rxTransfer-Encoding: chunked\r\n\r\n1\r\nA\r\n0\r\n\r\n",
      // CVE-2024-27982
      "POST /health HTTP/1.1\r\nHost: localhost\r\nFoo: bar\r\n Content-Length: 34\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
      // CVE-2025-23167
      "GET /health HTTP/1.1\r\nHost: a\r\n\rXGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
      // CVE-2022-32214
      "GET /health HTTP/1.1\r\nHost: localhost\r\nDummy: x\nContent-Length: 34\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n",
      // Transfer-Encoding of any kind
      "POST /health HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n",
  };
  for (const auto& v : vectors) {
    INFO(v);
    UdsClient c(r.agent.socket());
    REQUIRE(c.send(v));
    auto res = c.read_response();
    REQUIRE(res);
    CHECK(res->status == 400);
    CHECK(res->header("connection") == std::optional<std::string>("close"));
    CHECK(res->body.find("\"code\":\"bad_request\"") != std::string::npos);
    CHECK_FALSE(c.read_response(300ms).has_value());  // no second (smuggled) response
  }
  CHECK(r.agent.log().find("/smuggled") == std::string::npos);
  auto ok = chitty::testing::curl(r.agent.socket(), "/health");
  CHECK(ok.out.rfind("HTTP/1.1 200 OK", 0) == 0);
}

TEST_CASE("an answer with Connection: close is read cleanly while the client is still sending", "[integration][http]") {
  Running r;
  UdsClient c(r.agent.socket());
  // One request that ends the connection, then 300 KB the agent must drain
  // (lingering close) instead of resetting the connection under the client.
  std::string junk(300 * 1024, 'j');
  REQUIRE(c.send("GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" + junk));
  auto res = c.read_response();
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->header("connection") == std::optional<std::string>("close"));
  CHECK(c.wait_closed(5s));
}

TEST_CASE("HTTP/1.0 keep-alive that llhttp cannot see closes instead of stalling the next request",
          "[integration][http]") {
  Running r("header_timeout = \"60s\"");
  UdsClient c(r.agent.socket());
  REQUIRE(c.send("GET /health HTTP/1.0\r\nConnection: keep-alive\t\r\n\r\n"));
  auto res = c.read_response();
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->header("connection") == std::optional<std::string>("close"));
  CHECK(c.wait_closed(3s));
}
