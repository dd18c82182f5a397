// The agent's error answers → chittyctl's exit codes and messages.
#include <catch2/catch.hpp>

#include "chitty/client/agent_client.hpp"

using namespace chitty::client;

namespace {

Failure of(long status, std::string code, std::string message, std::optional<long> retry = std::nullopt) {
  Reply r;
  r.status = status;
  r.retry_after = retry;
  r.text = R"({"success":false,"error":{"code":")" + code + R"(","message":")" + message +
           R"("},"metadata":{"request_id":"x"}})";
  return failure_of(r);
}

}  // namespace

TEST_CASE("every agent error code has its exit code and a message that says what to do", "[client][exit]") {
  struct Case {
    long status;
    std::string code;
    Exit exit;
    std::string starts;
  };
  for (const Case& c : std::vector<Case>{
           {403, "forbidden", Exit::denied, "denied (forbidden): why"},
           {403, "context_mismatch", Exit::denied, "denied (context_mismatch): why"},
           {403, "revoked", Exit::denied, "denied (revoked): why"},
           {403, "risk_denied", Exit::denied, "denied (risk_denied): why"},
           {401, "unauthenticated", Exit::denied, "denied (unauthenticated): why"},
           {403, "step_up_required", Exit::step_up, "step-up required: why (give the service's step-up token with --step-up-file FILE)"},
           {404, "not_found", Exit::not_found, "not found: why"},
           {503, "upstream_unavailable", Exit::unavailable, "unavailable (upstream_unavailable): why"},
           {503, "audit_unavailable", Exit::unavailable, "unavailable (audit_unavailable): why"},
           {503, "server_busy", Exit::unavailable, "unavailable (server_busy): why"},
           {400, "bad_request", Exit::failure, "refused (bad_request): why"},
           {413, "too_large", Exit::failure, "refused (too_large): why"},
       }) {
    Failure f = of(c.status, c.code, "why");
    CAPTURE(c.code);
    CHECK(f.exit == c.exit);
    CHECK(f.message == c.starts);
    CHECK(f.code == c.code);
    CHECK(f.agent_message == "why");
  }
  Failure limited = of(429, "rate_limited", "service me is over 2/h", 1200);
  CHECK(limited.exit == Exit::rate_limited);
  CHECK(limited.message == "rate limited: service me is over 2/h (retry in 1200 s)");
  CHECK(limited.retry_after == 1200);
}

TEST_CASE("an error answer that is not the agent's JSON still fails clearly", "[client][exit]") {
  Reply r;
  r.status = 502;
  r.text = "<html>bad gateway</html>";
  Failure f = failure_of(r);
  CHECK(f.exit == Exit::failure);
  CHECK(f.message == "the agent answered HTTP 502 without an error it explains");
  r.status = 503;
  CHECK(failure_of(r).exit == Exit::unavailable);
}

TEST_CASE("the socket: --socket, then CHITTY_AGENT_SOCKET, then the packaged path", "[client][exit]") {
  ::unsetenv("CHITTY_AGENT_SOCKET");
  CHECK(socket_path_from(std::nullopt) == "/run/chitty-agent/agent.sock");
  ::setenv("CHITTY_AGENT_SOCKET", "/tmp/x.sock", 1);
  CHECK(socket_path_from(std::nullopt) == "/tmp/x.sock");
  CHECK(socket_path_from(std::string("/a.sock")) == "/a.sock");
  ::unsetenv("CHITTY_AGENT_SOCKET");
}
