// Regression tests for every published request-smuggling vector against
// llhttp / Node's HTTP parser (sources in docs/http.md). llhttp 8.1.0, which
// Debian 12 ships, accepts some of them; the head scanner must refuse all.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "request_parser.hpp"

using namespace std::string_literals;
using chitty::http::ErrorCode;
using chitty::http::Limits;
using chitty::http::RequestParser;

namespace {

struct Vector {
  const char* name;
  std::string bytes;
};

// Feeds the bytes in one piece and byte by byte. A vector must never produce
// a request; it must end in an error (or, for a truncated vector, at least
// never complete).
void require_refused(const Vector& v) {
  INFO(v.name);
  Limits limits;
  for (std::size_t step : {v.bytes.size(), std::size_t{1}, std::size_t{7}}) {
    INFO("chunk size " << step);
    RequestParser parser(limits);
    bool error = false;
    for (std::size_t off = 0; off < v.bytes.size() && !error; off += step) {
      std::string_view chunk(v.bytes.data() + off, std::min(step, v.bytes.size() - off));
      while (!chunk.empty()) {
        auto out = parser.feed(chunk);
        REQUIRE(out.status != RequestParser::Status::complete);
        if (out.status == RequestParser::Status::error) {
          error = true;
          break;
        }
        chunk.remove_prefix(out.consumed);
      }
    }
    CHECK(error);
    CHECK(chitty::http::error_status(parser.error().code) == 400);
  }
}

}  // namespace

TEST_CASE("CVE-2022-32213: Transfer-Encoding chunkedchunked", "[http][smuggling]") {
  require_refused({"report", "GET / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunkedchunked\r\n\r\n1\r\na\r\n0\r\n\r\n"});
  require_refused({"llhttp fixture", "POST /post_identity_body_world?q=search#hey HTTP/1.1\r\nAccept: */*\r\n"
                                     "Transfer-Encoding: chunkedchunked\r\n\r\n5\r\nWorld\r\n0\r\n\r\n"});
}

TEST_CASE("CVE-2022-32213: obs-fold after a chunked Transfer-Encoding", "[http][smuggling]") {
  require_refused({"fixture", "PUT /url HTTP/1.1\r\nTransfer-Encoding: chunked\r\n  abc\r\n\r\n5\r\nWorld\r\n0\r\n\r\n"});
}

TEST_CASE("CVE-2022-32214: bare LF between header fields", "[http][smuggling]") {
  require_refused({"report", "GET / HTTP/1.1\r\nHost: localhost\r\nDummy: x\nContent-Length: 23\r\n\r\nGET / HTTP/1.1\r\n"
                             "Dummy: GET /admin HTTP/1.1\r\nHost: localhost\r\n\r\n\r\n"});
}

TEST_CASE("CVE-2022-32215: multi-line Transfer-Encoding", "[http][smuggling]") {
  require_refused({"identity", "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n , identity\r\n\r\n1\r\na\r\n0\r\n\r\n"});
  require_refused({"chunked-false", "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n , chunked-false\r\n"
                                    "\r\n1\r\nA\r\n0\r\n\r\nGET /flag HTTP/1.1\r\nHost: 127.0.0.1\r\nfoo: x\r\n\r\n\r\n"});
  require_refused({"node test", "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n , chunked-false\r\n"
                                "Connection: upgrade\r\n\r\n1\r\nA\r\n0\r\n\r\nGET /flag HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"});
  require_refused({"two TE fields", "POST /p HTTP/1.1\r\nAccept: */*\r\nTransfer-Encoding: chunked\r\n"
                                    "Transfer-Encoding: deflate\r\n\r\nWorld"});
}

TEST_CASE("CVE-2022-35256: empty header value ended by a bare LF", "[http][smuggling]") {
  require_refused({"x:\\n", "POST / HTTP/1.1\r\nHost: localhost:5000\r\nx:\nTransfer-Encoding: chunked\r\n\r\n1\r\nA\r\n0\r\n\r\n"});
  require_refused({"x:x\\n", "POST / HTTP/1.1\r\nHost: localhost:5000\r\nx:x\nTransfer-Encoding: chunked\r\n\r\n1\r\nA\r\n0\r\n\r\n"});
  require_refused({"leading space", "POST / HTTP/1.1\r\nHost: localhost\r\n x:\nTransfer-Encoding: chunked\r\n\r\n1\r\nA\r\n0\r\n\r\n"});
  require_refused({"variant", "POST / HTTP/1.1\r\nHost: localhost\r\n Transfer-Encoding: yeet\r\n Transfer-Encoding: \n "
                              "Transfer-Encoding: chunked\r\n\r\n1\r\nA\r\n0\r\n\r\n"});
}

TEST_CASE("CVE-2023-30589: empty header value ended by a bare CR (llhttp 8.1.0 accepts it)", "[http][smuggling]") {
  require_refused({"report", "POST / HTTP/1.1\r\nHost: localhost:5000\r\nX-Abc:\rxTransfer-Encoding: chunked\r\n\r\n1\r\nA\r\n0\r\n\r\n"});
  require_refused({"aiohttp", "POST / HTTP/1.1\r\nHost: localhost:8080\r\nX-Abc: \rxTransfer-Encoding: chunked\r\n\r\n1\r\nA\r\n0\r\n\r\n"});
  require_refused({"fixture", "POST / HTTP/1.1\r\nConnection: Close\r\nHost: localhost:5000\r\nx:\rTransfer-Encoding: chunked\r\n"
                              "\r\n1\r\nA\r\n0\r\n\r\n"});
  require_refused({"node dummy", "GET / HTTP/1.1\r\nHost: localhost\r\nDummy: x\rContent-Length: 23\r\n\r\nGET / HTTP/1.1\r\n"
                                 "Dummy: GET /admin HTTP/1.1\r\nHost: localhost\r\n\r\n"});
  require_refused({"node x:x", "POST / HTTP/1.1\r\nHost: localhost\r\nx:x\rTransfer-Encoding: chunked\r\n\r\n1\r\nA\r\n0\r\n\r\n"});
}

TEST_CASE("CVE-2024-27982: a space before a header name (llhttp 8.1.0 accepts it)", "[http][smuggling]") {
  require_refused({"fixture", "POST /hello HTTP/1.1\r\nHost: localhost\r\nFoo: bar\r\n Content-Length: 38\r\n\r\n"
                              "GET /bye HTTP/1.1\r\nHost: localhost\r\n\r\n"});
  require_refused({"tab", "POST /hello HTTP/1.1\r\nHost: localhost\r\nFoo: bar\r\n\tContent-Length: 38\r\n\r\n"
                          "GET /bye HTTP/1.1\r\nHost: localhost\r\n\r\n"});
  require_refused({"report", "POST /hello HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: Mozilla/5.0\r\nAccept: text/html\r\n"
                             "Upgrade-Insecure-Requests: 1\r\n Content-length: 43\r\nSec-Fetch-Dest: document\r\nTe: trailers\r\n"
                             "\r\nGET /bye HTTP/1.1\r\nx-name: Bob%s\r\nX-YzBqv: "});
}

TEST_CASE("CVE-2025-23167: head ended by CRLF CR X (llhttp 8.1.0 accepts it)", "[http][smuggling]") {
  require_refused({"dummy characters", "GET / HTTP/1.1\r\nConnection: close\r\nHost: a\r\n\rZGET /evil: HTTP/1.1\r\nHost: a\r\n"});
  // No CRLF CRLF anywhere: the scanner must decide on the CR itself.
  require_refused({"before body", "PUT /url HTTP/1.1\r\nContent-Length: 3\r\n\rabc"});
  require_refused({"keep-alive", "GET / HTTP/1.1\r\nHost: a\r\n\rXGET /admin HTTP/1.1\r\nHost: a\r\n\r\n"});
}

TEST_CASE("CVE-2021-22959: whitespace between header name and colon", "[http][smuggling]") {
  require_refused({"CL", "GET / HTTP/1.1\r\nHost: localhost:5000\r\nContent-Length : 5\r\n\r\nhello"});
  require_refused({"CL smuggle", "GET / HTTP/1.1\r\nHost: localhost:5000\r\nContent-Length : 23\r\n\r\nGET / HTTP/1.1\r\n"
                                 "Dummy: GET /smuggled HTTP/1.1\r\nHost: localhost:5000\r\n\r\n"});
  // llhttp's own fix covered only its special headers; 8.1.0 accepts this one.
  require_refused({"generic header", "GET / HTTP/1.1\r\nHost: a\r\nX-Foo : 5\r\n\r\n"});
  require_refused({"tab", "GET / HTTP/1.1\r\nHost: a\r\nX-Foo\t: 5\r\n\r\n"});
}

TEST_CASE("CVE-2020-8201: CR inside a header name", "[http][smuggling]") {
  require_refused({"report", "GET / HTTP/1.1\r\nHost: www.example.com\r\nContent\rLength: 42\r\nConnection: Keep-Alive\r\n\r\n"
                             "GET /proxy_sees_this HTTP/1.1\r\nSomething: GET /node_sees_this HTTP/1.1\r\n"
                             "Host: www.example.com\r\n\r\n"});
  require_refused({"fixture", "PUT /url HTTP/1.1\r\nContent\rLength: 003\r\n\r\nabc"});
}

TEST_CASE("CVE-2020-8287: duplicate Transfer-Encoding", "[http][smuggling]") {
  require_refused({"node test", "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
                                "Transfer-Encoding: chunked-false\r\nConnection: upgrade\r\n\r\n1\r\nA\r\n0\r\n\r\n"
                                "GET /flag HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"});
}

TEST_CASE("CVE-2024-22019 / CVE-2021-22960: chunked bodies are refused before any chunk is read", "[http][smuggling]") {
  require_refused({"chunk extension flood",
                   "GET / HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n2;" + std::string(17000, 'a') +
                       "\r\nAA\r\n0\r\n\r\n"});
  require_refused({"bare LF in chunk size", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2 \nxx\r\n0\r\n\r\n"});
}

TEST_CASE("other framing tricks llhttp 8.1.0 accepts", "[http][smuggling]") {
  require_refused({"CRLF LF ends head", "GET / HTTP/1.1\r\nHost: a\r\n\nGET /admin HTTP/1.1\r\nHost: a\r\n\r\n"});
  require_refused({"bare LF after request line", "GET / HTTP/1.1\nHost: a\r\n\r\n"});
  require_refused({"obs-fold Content-Length value", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n 5\r\n\r\nhello"});
  require_refused({"empty header name", "GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n"});
  require_refused({"duplicate Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx"});
  require_refused({"differing Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxy"});
  require_refused({"Content-Length with sign", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello"});
  require_refused({"TE and CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"});
  require_refused({"TE identity", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n"});
  require_refused({"NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\0b\r\n\r\n"s});
  require_refused({"control character in value", "GET / HTTP/1.1\r\nHost: a\r\nX: a\x01b\r\n\r\n"});
  require_refused({"header line without colon", "GET / HTTP/1.1\r\nHost: a\r\nNoColonHere\r\n\r\n"});
  require_refused({"whitespace before request line", " GET / HTTP/1.1\r\nHost: a\r\n\r\n"});
  require_refused({"two Host fields", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n"});
}

TEST_CASE("the pre-scan never lets a second request through after a refused one", "[http][smuggling]") {
  // After an error the parser stays failed: feeding a clean request afterwards
  // must not produce it.
  Limits limits;
  RequestParser parser(limits);
  std::string bad = "GET / HTTP/1.1\r\nHost: a\r\nX: \rY\r\n\r\n";
  REQUIRE(parser.feed(bad).status == RequestParser::Status::error);
  std::string good = "GET /health HTTP/1.1\r\nHost: a\r\n\r\n";
  CHECK(parser.feed(good).status == RequestParser::Status::error);
}
