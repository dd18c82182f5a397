// Fuzz target for the request path: bytes -> parser (with the smuggling
// guard) -> session -> router -> handler -> response serialisation, entirely
// in process. The first bytes of the input steer chunking, answer order and
// time; the rest is what a client sends.
//
// Invariants checked on every input (a violation aborts, which the fuzzer
// reports): every response head is a well-formed status line + header block,
// Content-Length matches the body, responses never outnumber requests plus
// one refusal, nothing is answered twice, and the session always reaches a
// state where it either wants more bytes or is finished.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "chitty/http/router.hpp"
#include "chitty/http/session.hpp"
#include "manual_clock.hpp"

namespace {

using chitty::http::Method;
using chitty::http::Response;
using chitty::http::Session;

void check(bool ok) {
  if (!ok) std::abort();
}

struct Harness final : Session::Handler {
  chitty::http::Limits limits;
  chitty::testing::ManualClock clock;
  chitty::http::SessionContext ctx{limits, clock};
  chitty::http::Router<int> router;
  Session* session = nullptr;
  std::vector<std::uint64_t> deferred;
  std::uint64_t requests = 0;
  std::uint64_t rejected = 0;
  bool defer = false;

  Harness() {
    limits.max_header_bytes = 2048;
    limits.max_headers = 16;
    limits.max_uri_bytes = 512;
    limits.max_body_bytes = 1024;
    limits.max_requests_per_connection = 64;
    limits.max_pipelined_requests = 4;
    router.add(Method::get, "/health", 1);
    router.add(Method::get, "/api/onepassword/service-token/{target}", 2);
    router.add(Method::post, "/api/onepassword/retrieve", 3);
  }

  void on_request(std::uint64_t seq, chitty::http::Request&& r, const std::string& id) override {
    ++requests;
    check(id.size() == 16);
    auto routed = router.route(r.method(), r.path());
    if (defer) {
      deferred.push_back(seq);  // answered later, possibly out of order
      return;
    }
    Response resp;
    if (auto* f = std::get_if<chitty::http::Router<int>::Found>(&routed)) {
      resp = Response::json(200, "{\"route\":" + std::to_string(*f->handler) + ",\"body\":" +
                                     std::to_string(r.body().size()) + "}");
    } else if (std::holds_alternative<chitty::http::RouteTable::NotAllowed>(routed)) {
      resp = chitty::http::error_response(chitty::http::ErrorCode::method_not_allowed, "no", id);
    } else {
      resp = chitty::http::error_response(chitty::http::ErrorCode::not_found, std::string(r.path()), id);
    }
    session->respond(seq, std::move(resp));
  }

  void on_rejected(chitty::http::ErrorCode, std::string_view message, const std::string&) override {
    ++rejected;
    check(!message.empty());
  }
};

std::size_t count_responses(const std::vector<chitty::http::OutChunk>& chunks) {
  std::size_t n = 0;
  for (const auto& c : chunks) {
    check(c.head.rfind("HTTP/1.1 ", 0) == 0);
    check(c.head.size() >= 4 && c.head.compare(c.head.size() - 4, 4, "\r\n\r\n") == 0);
    if (c.head.rfind("HTTP/1.1 100 ", 0) == 0) continue;
    ++n;
    auto cl = c.head.find("\r\nContent-Length: ");
    check(cl != std::string::npos);
    std::size_t len = std::strtoul(c.head.c_str() + cl + 18, nullptr, 10);
    std::size_t body = c.body ? c.body->bytes().size() : 0;
    check(len == body || body == 0);  // body 0 with a length: the answer to a HEAD
  }
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 2) return 0;
  const std::uint8_t steer = data[0];
  const std::size_t step = 1 + (data[1] % 64);
  data += 2;
  size -= 2;

  Harness h;
  h.defer = (steer & 1) != 0;
  Session session(h.ctx, h);
  h.session = &session;
  std::size_t responses = 0;

  std::size_t off = 0;
  while (off < size && session.wants_read()) {
    std::size_t n = std::min(step, size - off);
    session.receive(std::string_view(reinterpret_cast<const char*>(data + off), n));
    off += n;
    if ((steer & 2) != 0) {
      responses += count_responses(session.take_output());
      session.output_flushed();
    }
    if ((steer & 4) != 0 && !h.deferred.empty()) {
      // Answer the newest first: the session must still emit in order.
      std::uint64_t seq = h.deferred.back();
      h.deferred.pop_back();
      session.respond(seq, Response::text(200, "late"));
    }
    if ((steer & 8) != 0) {
      h.clock.advance(std::chrono::seconds(5));
      session.on_deadline();
    }
  }
  while (!h.deferred.empty()) {
    std::uint64_t seq = h.deferred.back();
    h.deferred.pop_back();
    session.respond(seq, Response::text(200, "late"));
  }
  if ((steer & 16) != 0) session.drain(); else session.receive_eof();
  responses += count_responses(session.take_output());
  session.output_flushed();

  check(responses <= h.requests + 1);
  check(h.rejected <= 1);
  check(session.in_flight() == 0);
  return 0;
}
