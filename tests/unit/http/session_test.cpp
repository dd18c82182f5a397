#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <vector>

#include "chitty/http/session.hpp"
#include "manual_clock.hpp"

using namespace std::chrono_literals;
using namespace std::string_view_literals;
using chitty::http::ErrorCode;
using chitty::http::Limits;
using chitty::http::Request;
using chitty::http::Response;
using chitty::http::Session;
using chitty::http::SessionContext;
using chitty::testing::ManualClock;

namespace {

// A handler that records requests and answers them when told to (or at once).
struct Recorder final : Session::Handler {
  struct Seen {
    std::uint64_t seq;
    std::string path;
    std::string request_id;
  };
  std::vector<Seen> seen;
  std::vector<ErrorCode> rejected;
  Session* session = nullptr;
  bool answer_at_once = false;
  bool expect_secrets = false;

  void on_request(std::uint64_t seq, Request&& r, const std::string& id) override {
    seen.push_back({seq, std::string(r.path()), id});
    if (expect_secrets) session->expect_sensitive(seq);
    if (answer_at_once) session->respond(seq, Response::text(200, "at once " + std::string(r.path())));
  }
  void on_rejected(ErrorCode code, std::string_view, const std::string&) override { rejected.push_back(code); }
};

struct Fixture {
  Limits limits;
  ManualClock clock;
  SessionContext ctx{limits, clock};
  Recorder handler;
  std::unique_ptr<Session> session;

  explicit Fixture(Limits l = Limits{}) : limits(l) {
    session = std::make_unique<Session>(ctx, handler);
    handler.session = session.get();
  }

  void send(std::string_view bytes) { session->receive(bytes); }

  // Everything written so far, as the client would read it.
  std::string output() {
    std::string out;
    for (auto& c : session->take_output()) {
      out += c.head;
      if (c.body) out.append(c.body->bytes().data(), c.body->bytes().size());
    }
    session->output_flushed();
    return out;
  }
};

std::vector<std::string> status_lines(const std::string& wire) {
  std::vector<std::string> out;
  std::size_t pos = 0;
  while ((pos = wire.find("HTTP/1.1 ", pos)) != std::string::npos) {
    out.push_back(wire.substr(pos, wire.find("\r\n", pos) - pos));
    pos += 9;
  }
  return out;
}

std::size_t count(const std::string& hay, std::string_view needle) {
  std::size_t n = 0;
  for (std::size_t pos = hay.find(needle); pos != std::string::npos; pos = hay.find(needle, pos + 1)) ++n;
  return n;
}

const std::string kGetA = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n";
const std::string kGetB = "GET /b HTTP/1.1\r\nHost: x\r\n\r\n";
const std::string kGetC = "GET /c HTTP/1.1\r\nHost: x\r\n\r\n";

}  // namespace

TEST_CASE("pipelined responses go out in request order even when answered out of order", "[http][session]") {
  Fixture f;
  f.send(kGetA + kGetB + kGetC);
  REQUIRE(f.handler.seen.size() == 3);
  f.session->respond(f.handler.seen[2].seq, Response::text(200, "C"));
  f.session->respond(f.handler.seen[1].seq, Response::text(201, "B"));
  CHECK_FALSE(f.session->has_output());  // /a is still unanswered
  f.session->respond(f.handler.seen[0].seq, Response::text(202, "A"));
  std::string out = f.output();
  auto lines = status_lines(out);
  REQUIRE(lines.size() == 3);
  CHECK(lines[0] == "HTTP/1.1 202 Accepted");
  CHECK(lines[1] == "HTTP/1.1 201 Created");
  CHECK(lines[2] == "HTTP/1.1 200 OK");
  CHECK(out.find("X-Request-Id: " + f.handler.seen[0].request_id) < out.find("X-Request-Id: " + f.handler.seen[1].request_id));
  CHECK_FALSE(f.session->finished());
}

TEST_CASE("request ids are unique 16-hex-digit strings", "[http][session]") {
  Fixture f;
  f.handler.answer_at_once = true;
  f.send(kGetA + kGetB);
  REQUIRE(f.handler.seen.size() == 2);
  for (const auto& s : f.handler.seen) {
    CHECK(s.request_id.size() == 16);
    CHECK(s.request_id.find_first_not_of("0123456789abcdef") == std::string::npos);
  }
  CHECK(f.handler.seen[0].request_id != f.handler.seen[1].request_id);
}

TEST_CASE("a full pipeline stops intake and resumes as answers go out", "[http][session]") {
  Limits l;
  l.max_pipelined_requests = 2;
  Fixture f(l);
  f.send(kGetA + kGetB + kGetC);
  REQUIRE(f.handler.seen.size() == 2);
  CHECK(f.session->in_flight() == 2);
  CHECK_FALSE(f.session->wants_read());  // /c waits unread
  f.session->respond(f.handler.seen[0].seq, Response::text(200, "a"));
  REQUIRE(f.handler.seen.size() == 3);
  CHECK(f.handler.seen[2].path == "/c");
  CHECK(f.session->wants_read());
}

namespace {

// A body that says it holds a secret, and counts how many are alive.
struct SecretBody final : chitty::http::Payload {
  static inline int alive = 0;
  SecretBody() { ++alive; }
  ~SecretBody() override { --alive; }
  std::span<const char> bytes() const noexcept override { return {"s3cret", 6}; }
  bool sensitive() const noexcept override { return true; }
};

Response secret_response() {
  Response r;
  r.content_type = "text/plain";
  r.body = std::make_unique<SecretBody>();
  return r;
}

}  // namespace

TEST_CASE("a client that pipelines without reading pins at most max_secret_responses secrets", "[http][session]") {
  Limits l;
  l.max_secret_responses = 2;
  l.max_pipelined_requests = 64;
  Fixture f(l);
  f.handler.expect_secrets = true;  // the handler declares each request secret as it starts
  std::string ten;
  for (int i = 0; i < 10; ++i) ten += kGetA;
  f.send(ten);
  CHECK(f.handler.seen.size() == 2);  // the third waits: two secret answers are due
  CHECK(f.session->sensitive_held() == 2);
  CHECK_FALSE(f.session->wants_read());
  f.session->respond(f.handler.seen[0].seq, secret_response());
  f.session->respond(f.handler.seen[1].seq, secret_response());
  CHECK(f.handler.seen.size() == 2);  // answered but unwritten: still held
  CHECK(SecretBody::alive == 2);
  // The connection takes the output; until the socket has it, it still counts.
  auto taken = f.session->take_output();
  CHECK(f.session->sensitive_held() == 2);
  CHECK_FALSE(f.session->can_resume());
  taken.clear();  // written: the bodies are wiped and freed
  f.session->output_flushed();
  CHECK(SecretBody::alive == 0);
  REQUIRE(f.session->can_resume());
  f.session->resume();
  CHECK(f.handler.seen.size() == 4);
  // Requests that will not hold a secret are not held back by the cap.
  f.handler.expect_secrets = false;
  f.session->respond(f.handler.seen[2].seq, secret_response());
  f.session->respond(f.handler.seen[3].seq, secret_response());
  f.output();
  f.session->resume();
  CHECK(f.handler.seen.size() == 10);
  CHECK(f.session->sensitive_held() == 0);
  for (std::size_t i = 4; i < 10; ++i) f.session->respond(f.handler.seen[i].seq, Response::text(200, "public"));
  CHECK(count(f.output(), "HTTP/1.1 200 OK") == 6);
}

TEST_CASE("a handler may answer from inside on_request", "[http][session]") {
  Fixture f;
  f.handler.answer_at_once = true;
  f.send(kGetA + kGetB + kGetC);
  auto out = f.output();
  CHECK(count(out, "HTTP/1.1 200 OK") == 3);
  CHECK(out.find("at once /a") < out.find("at once /b"));
  CHECK(out.find("at once /b") < out.find("at once /c"));
}

TEST_CASE("the last request of a connection is answered with Connection: close", "[http][session]") {
  Limits l;
  l.max_requests_per_connection = 2;
  Fixture f(l);
  f.handler.answer_at_once = true;
  f.send(kGetA + kGetB + kGetC);
  CHECK(f.handler.seen.size() == 2);  // /c is never started
  auto out = f.output();
  CHECK(count(out, "HTTP/1.1 200 OK") == 2);
  CHECK(count(out, "Connection: close") == 1);
  CHECK(out.rfind("Connection: close") > out.find("at once /a"));
  CHECK(f.session->finished());
}

TEST_CASE("Connection: close from the client ends the connection after its answer", "[http][session]") {
  Fixture f;
  f.handler.answer_at_once = true;
  f.send("GET /a HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" + kGetB);
  CHECK(f.handler.seen.size() == 1);
  CHECK(f.output().find("Connection: close") != std::string::npos);
  CHECK(f.session->finished());
}

TEST_CASE("HTTP/1.0 keep-alive is confirmed; plain HTTP/1.0 closes", "[http][session]") {
  Fixture f;
  f.handler.answer_at_once = true;
  f.send("GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"sv);
  auto out = f.output();
  CHECK(out.find("Connection: keep-alive") != std::string::npos);
  CHECK_FALSE(f.session->finished());
  f.send("GET /b HTTP/1.0\r\n\r\n"sv);
  CHECK(f.output().find("Connection: close") != std::string::npos);
  CHECK(f.session->finished());
}

TEST_CASE("a malformed request is answered after the ones before it, then the connection closes", "[http][session]") {
  Fixture f;
  f.send(kGetA + "GET / HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n" + kGetC);
  REQUIRE(f.handler.seen.size() == 1);
  REQUIRE(f.handler.rejected == std::vector<ErrorCode>{ErrorCode::bad_request});
  CHECK_FALSE(f.session->has_output());  // the 400 waits for /a
  f.session->respond(f.handler.seen[0].seq, Response::text(200, "a"));
  auto out = f.output();
  auto lines = status_lines(out);
  REQUIRE(lines.size() == 2);
  CHECK(lines[0] == "HTTP/1.1 200 OK");
  CHECK(lines[1] == "HTTP/1.1 400 Bad Request");
  CHECK(out.find("\"code\":\"bad_request\"") != std::string::npos);
  CHECK(out.find("whitespace between header name and colon") != std::string::npos);
  CHECK(count(out, "Connection: close") == 1);
  CHECK(f.session->finished());
  CHECK(f.handler.seen.size() == 1);  // /c was discarded
}

TEST_CASE("a slow request head gets 408 after header_timeout", "[http][session][timeouts]") {
  Limits l;
  l.header_timeout = 2s;
  Fixture f(l);
  f.send("GET / HTTP/1.1\r\nHo"sv);
  auto d = f.session->next_deadline();
  REQUIRE(d);
  CHECK(d->kind == Session::DeadlineKind::header);
  f.clock.advance(1999ms);
  CHECK_FALSE(f.session->on_deadline());
  f.send("s"sv);  // trickling bytes does not extend the deadline
  f.clock.advance(1ms);
  REQUIRE(f.session->on_deadline() == Session::DeadlineKind::header);
  auto out = f.output();
  CHECK(out.rfind("HTTP/1.1 408 Request Timeout", 0) == 0);
  CHECK(out.find("\"code\":\"request_timeout\"") != std::string::npos);
  CHECK(f.session->finished());
}

TEST_CASE("a slow body gets 408 after body_timeout", "[http][session][timeouts]") {
  Limits l;
  l.body_timeout = 3s;
  l.header_timeout = 1s;
  Fixture f(l);
  f.send("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n12345"sv);
  auto d = f.session->next_deadline();
  REQUIRE(d);
  CHECK(d->kind == Session::DeadlineKind::body);
  f.clock.advance(2s);
  CHECK_FALSE(f.session->on_deadline());  // the header deadline no longer applies
  f.clock.advance(1s);
  REQUIRE(f.session->on_deadline() == Session::DeadlineKind::body);
  CHECK(f.output().find("408") != std::string::npos);
}

TEST_CASE("an idle keep-alive connection closes after idle_timeout", "[http][session][timeouts]") {
  Limits l;
  l.idle_timeout = 5s;
  Fixture f(l);
  f.handler.answer_at_once = true;
  f.send(kGetA);
  f.output();
  auto d = f.session->next_deadline();
  REQUIRE(d);
  CHECK(d->kind == Session::DeadlineKind::idle);
  f.clock.advance(4s);
  CHECK_FALSE(f.session->on_deadline());
  f.clock.advance(1s);
  REQUIRE(f.session->on_deadline() == Session::DeadlineKind::idle);
  CHECK(f.session->finished());
  CHECK_FALSE(f.session->has_output());
}

TEST_CASE("no idle deadline while a request is being handled", "[http][session][timeouts]") {
  Fixture f;
  f.send(kGetA);
  CHECK_FALSE(f.session->next_deadline().has_value());
}

TEST_CASE("output nobody reads aborts the connection after write_timeout", "[http][session][timeouts]") {
  Limits l;
  l.write_timeout = 1s;
  Fixture f(l);
  f.handler.answer_at_once = true;
  f.send(kGetA);
  auto chunks = f.session->take_output();  // handed to the socket, never completes
  REQUIRE(chunks.size() == 1);
  auto d = f.session->next_deadline();
  REQUIRE(d);
  CHECK(d->kind == Session::DeadlineKind::write);
  f.clock.advance(1s);
  REQUIRE(f.session->on_deadline() == Session::DeadlineKind::write);
  CHECK(f.session->aborted());
}

TEST_CASE("drain: an idle connection finishes at once", "[http][session][drain]") {
  Fixture f;
  f.session->drain();
  CHECK(f.session->finished());
}

TEST_CASE("drain: requests in flight are answered, then the connection closes", "[http][session][drain]") {
  Fixture f;
  f.send(kGetA + kGetB);
  REQUIRE(f.handler.seen.size() == 2);
  f.session->drain();
  CHECK_FALSE(f.session->finished());
  f.session->respond(f.handler.seen[0].seq, Response::text(200, "a"));
  f.session->respond(f.handler.seen[1].seq, Response::text(200, "b"));
  auto out = f.output();
  CHECK(count(out, "HTTP/1.1 200 OK") == 2);
  CHECK(count(out, "Connection: close") == 1);
  CHECK(out.rfind("Connection: close") > out.find("\r\n\r\na"));
  CHECK(f.session->finished());
}

TEST_CASE("drain: a partially received request may complete and is answered", "[http][session][drain]") {
  Fixture f;
  f.handler.answer_at_once = true;
  f.send("GET /slow HTTP/1.1\r\nHo"sv);
  f.session->drain();
  CHECK_FALSE(f.session->finished());
  f.send("st: x\r\n\r\n"sv);
  REQUIRE(f.handler.seen.size() == 1);
  CHECK(f.output().find("Connection: close") != std::string::npos);
  CHECK(f.session->finished());
}

TEST_CASE("drain: pipelined requests not yet started are dropped", "[http][session][drain]") {
  Limits l;
  l.max_pipelined_requests = 1;
  Fixture f(l);
  f.send(kGetA + kGetB);
  REQUIRE(f.handler.seen.size() == 1);
  f.session->drain();
  f.session->respond(f.handler.seen[0].seq, Response::text(200, "a"));
  CHECK(f.handler.seen.size() == 1);
  CHECK(f.session->finished());
}

TEST_CASE("EOF after pipelined requests: they are still answered", "[http][session]") {
  Fixture f;
  f.send(kGetA + kGetB);
  f.session->receive_eof();
  CHECK_FALSE(f.session->finished());
  f.session->respond(f.handler.seen[0].seq, Response::text(200, "a"));
  f.session->respond(f.handler.seen[1].seq, Response::text(200, "b"));
  CHECK(count(f.output(), "200 OK") == 2);
  CHECK(f.session->finished());
}

TEST_CASE("Expect: 100-continue gets an interim response before the body", "[http][session]") {
  Fixture f;
  f.handler.answer_at_once = true;
  f.send("POST /p HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n"sv);
  auto interim = f.output();
  CHECK(interim == "HTTP/1.1 100 Continue\r\n\r\n");
  f.send("body"sv);
  auto out = f.output();
  CHECK(out.rfind("HTTP/1.1 200 OK", 0) == 0);
  CHECK(count(out, "100 Continue") == 0);
}

TEST_CASE("Expect: 100-continue with a body over the limit gets 413 at once", "[http][session]") {
  Limits l;
  l.max_body_bytes = 1024;
  Fixture f(l);
  f.send("POST /p HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 4096\r\n\r\n"sv);
  auto out = f.output();
  CHECK(out.rfind("HTTP/1.1 413", 0) == 0);
  CHECK(out.find("100 Continue") == std::string::npos);
  CHECK(f.session->finished());
}

TEST_CASE("HEAD responses carry the length but no body", "[http][session]") {
  Fixture f;
  f.send("HEAD /a HTTP/1.1\r\nHost: x\r\n\r\n"sv);
  REQUIRE(f.handler.seen.size() == 1);
  f.session->respond(f.handler.seen[0].seq, Response::text(200, "twelve bytes"));
  auto out = f.output();
  CHECK(out.find("Content-Length: 12") != std::string::npos);
  CHECK(out.substr(out.size() - 4) == "\r\n\r\n");
}

TEST_CASE("answers to unknown or already answered requests are ignored", "[http][session]") {
  Fixture f;
  f.send(kGetA);
  f.session->respond(999, Response::text(200, "stray"));
  CHECK_FALSE(f.session->has_output());
  f.session->respond(f.handler.seen[0].seq, Response::text(200, "first"));
  f.session->respond(f.handler.seen[0].seq, Response::text(200, "second"));
  auto out = f.output();
  CHECK(out.find("first") != std::string::npos);
  CHECK(out.find("second") == std::string::npos);
}

TEST_CASE("every response carries Date, X-Request-Id and Cache-Control: no-store", "[http][session]") {
  Fixture f;
  f.handler.answer_at_once = true;
  f.send(kGetA);
  auto out = f.output();
  CHECK(out.find("\r\nDate: Tue, 24 Nov 2026 00:00:00 GMT\r\n") != std::string::npos);
  CHECK(out.find("\r\nX-Request-Id: " + f.handler.seen[0].request_id + "\r\n") != std::string::npos);
  CHECK(out.find("\r\nCache-Control: no-store\r\n") != std::string::npos);
}

TEST_CASE("a stray CRLF after a body keeps the connection idle, not waiting for a head", "[http][session][timeouts]") {
  Limits l;
  l.header_timeout = 1s;
  l.idle_timeout = 30s;
  Fixture f(l);
  f.handler.answer_at_once = true;
  f.send("POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}\r\n"sv);
  f.output();
  auto d = f.session->next_deadline();
  REQUIRE(d);
  CHECK(d->kind == Session::DeadlineKind::idle);
  f.clock.advance(2s);
  CHECK_FALSE(f.session->on_deadline());
  f.send(kGetA);  // the next request is served normally
  CHECK(f.handler.seen.size() == 2);
}

TEST_CASE("answers piling up unwritten hold back further pipelined requests", "[http][session][backpressure]") {
  Limits l;
  l.max_pipelined_requests = 1024;
  l.max_requests_per_connection = 100000;
  Fixture f(l);
  f.handler.answer_at_once = true;
  std::string burst;
  for (int i = 0; i < 2000; ++i) burst += kGetA;
  f.send(burst);
  std::size_t first = f.handler.seen.size();
  CHECK(first < 2000);  // stopped once about 64 KiB of answers were waiting
  CHECK_FALSE(f.session->wants_read());
  CHECK_FALSE(f.session->can_resume());  // nothing taken yet
  std::size_t total = 0;
  for (auto& c : f.session->take_output()) total += c.head.size() + (c.body ? c.body->bytes().size() : 0);
  CHECK(total >= Session::kMaxPendingOutput);
  CHECK(total < Session::kMaxPendingOutput + 1024);
  REQUIRE(f.session->can_resume());
  while (f.session->can_resume()) {
    f.session->resume();
    f.session->take_output();
  }
  CHECK(f.handler.seen.size() == 2000);
  CHECK(f.session->wants_read());
}

TEST_CASE("write progress restarts the write deadline", "[http][session][timeouts]") {
  Limits l;
  l.write_timeout = 2s;
  Fixture f(l);
  f.handler.answer_at_once = true;
  f.send(kGetA);
  f.session->take_output();
  f.clock.advance(1500ms);
  f.session->output_progress();
  f.clock.advance(1500ms);
  CHECK_FALSE(f.session->on_deadline());
  f.clock.advance(500ms);
  CHECK(f.session->on_deadline() == Session::DeadlineKind::write);
}
