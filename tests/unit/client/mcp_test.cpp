// The MCP server on canned agent answers: JSON-RPC framing and errors,
// version negotiation, the tools' requests to the agent, and values withheld
// or released exactly as the agent's answer says.
#include <catch2/catch.hpp>

#include "canned_reply.hpp"
#include "test_arena.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <string>
#include <thread>

#include "chitty/client/mcp.hpp"
#include "chitty/json/reader.hpp"

using namespace chitty::client;
using chitty::json::Value;

namespace {

chitty::secure::Arena& arena() { return chitty::testing::client_test_arena(); }

struct FakeAgent final : Transport {
  std::vector<Request> requests;
  long status = 200;
  std::string body;
  bool unreachable = false;
  Outcome<Reply> send(const Request& r) override {
    requests.push_back(r);
    if (unreachable) return failed(Exit::unreachable, "the agent is not running");
    auto reply = chitty::testing::canned_reply(arena(), r, status, body);
    REQUIRE(reply);
    return reply;
  }
};

struct Harness {
  FakeAgent agent;
  McpServer server{arena(), agent, McpServerOptions{"9.9.9", "api-call", "", nullptr}};
  std::vector<std::string> out;
  Value call(std::string_view message) {
    out.clear();
    server.handle(message, [this](std::span<const char> m) { out.emplace_back(m.data(), m.size()); });
    REQUIRE(out.size() == 1);
    CHECK(out[0].find('\n') == std::string::npos);  // one line per message
    auto v = chitty::json::parse(out[0]);
    REQUIRE(v);
    return *v;
  }
  void silent(std::string_view message) {
    out.clear();
    server.handle(message, [this](std::span<const char> m) { out.emplace_back(m.data(), m.size()); });
    CHECK(out.empty());
  }
};

int error_code(const Value& v) {
  const Value* e = v.find("error");
  REQUIRE(e != nullptr);
  return static_cast<int>(*e->find("code")->integer);
}

const std::string kWithheld =
    R"({"success":true,"credential":{"value":null,"withheld":true,"masked_value":"…cdef","ref":"op://V/I/f","source":"env","fetched_at":"2026-12-08T00:00:00.000Z","expires_at":"2026-12-08T00:05:00.000Z"},"metadata":{"risk_score":12,"risk_level":"low","decision":"allow","risk_factors":[],"cache":"hit","mode":"normal","request_id":"r1"}})";
const std::string kReleased =
    R"({"success":true,"credential":{"value":"s3cret \"quoted\" 0123456789abcdef","released_over_mcp":true,"masked_value":"…cdef","ref":"op://V/I/f","source":"1password","fetched_at":"2026-12-08T00:00:00.000Z","expires_at":"2026-12-08T00:05:00.000Z"},"metadata":{"risk_score":12,"risk_level":"low","decision":"allow","risk_factors":[],"cache":"miss","mode":"normal","request_id":"r2"}})";

// serve_mcp() over pipes, `input` written by a thread (then end of input);
// its exit code and everything it wrote.
std::pair<int, std::string> serve_over_pipes(McpServer& server, const std::string& input) {
  int in[2], out[2];
  REQUIRE(::pipe(in) == 0);
  REQUIRE(::pipe(out) == 0);
  std::thread writer([&] {
    std::string_view d(input);
    while (!d.empty()) {
      ssize_t n = ::write(in[1], d.data(), d.size());
      REQUIRE(n > 0);
      d.remove_prefix(static_cast<std::size_t>(n));
    }
    ::close(in[1]);
  });
  int rc = serve_mcp(server, in[0], out[1]);
  writer.join();
  ::close(out[1]);
  std::string got;
  char buf[4096];
  for (ssize_t n; (n = ::read(out[0], buf, sizeof buf)) > 0;) got.append(buf, static_cast<std::size_t>(n));
  ::close(in[0]);
  ::close(out[0]);
  return {rc, got};
}

}  // namespace

TEST_CASE("initialize agrees on a version", "[client][mcp]") {
  Harness h;
  for (auto v : kMcpVersions) {
    Value r = h.call(R"({"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":")" + std::string(v) +
                     R"(","capabilities":{},"clientInfo":{"name":"t","version":"1"}}})");
    CHECK(r.find("result")->find("protocolVersion")->string == v);
  }
  Value old = h.call(R"({"jsonrpc":"2.0","id":"a","method":"initialize","params":{"protocolVersion":"1999-01-01"}})");
  CHECK(old.find("id")->string == "a");
  CHECK(old.find("result")->find("protocolVersion")->string == kMcpVersions[0]);
  CHECK(old.find("result")->find("serverInfo")->find("version")->string == "9.9.9");
  CHECK(old.find("result")->find("capabilities")->find("tools") != nullptr);
  CHECK(error_code(h.call(R"({"jsonrpc":"2.0","id":2,"method":"initialize","params":{}})")) == -32602);
}

TEST_CASE("JSON-RPC framing errors get their codes", "[client][mcp]") {
  Harness h;
  CHECK(error_code(h.call("{nope")) == -32700);
  CHECK(h.call("{nope").find("id")->type == Value::Type::null);
  CHECK(error_code(h.call(R"({"a":1,"a":2})")) == -32700);  // duplicate keys are not JSON we accept
  CHECK(error_code(h.call("[]")) == -32600);
  CHECK(error_code(h.call("42")) == -32600);
  CHECK(error_code(h.call(R"({"id":1,"method":"ping"})")) == -32600);
  CHECK(error_code(h.call(R"({"jsonrpc":"1.0","id":1,"method":"ping"})")) == -32600);
  CHECK(error_code(h.call(R"({"jsonrpc":"2.0","id":1.5,"method":"ping"})")) == -32600);
  CHECK(error_code(h.call(R"({"jsonrpc":"2.0","id":{},"method":"ping"})")) == -32600);
  CHECK(error_code(h.call(R"({"jsonrpc":"2.0","id":1,"method":7})")) == -32600);
  CHECK(error_code(h.call(R"({"jsonrpc":"2.0","id":1})")) == -32600);
  Value unknown = h.call(R"({"jsonrpc":"2.0","id":9,"method":"resources/list"})");
  CHECK(error_code(unknown) == -32601);
  CHECK(*unknown.find("id")->integer == 9);
  CHECK(error_code(h.call(R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":"x"})")) == -32602);
  CHECK(error_code(h.call(R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}})")) == -32602);
  CHECK(error_code(h.call(R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"nope"}})")) == -32602);
  CHECK(error_code(h.call(
            R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"chitty_credential_health","arguments":[]}})")) ==
        -32602);
  CHECK(h.call(R"({"jsonrpc":"2.0","id":3,"method":"ping"})").find("result")->type == Value::Type::object);
  // Notifications and responses are not answered.
  h.silent(R"({"jsonrpc":"2.0","method":"notifications/initialized"})");
  h.silent(R"({"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}})");
  h.silent(R"({"jsonrpc":"2.0","method":"no/such/notification"})");
  h.silent(R"({"jsonrpc":"2.0","id":5,"result":{}})");
  CHECK(h.agent.requests.empty());
  Value big = [&] {
    h.out.clear();
    h.server.oversized([&](std::span<const char> m) { h.out.emplace_back(m.data(), m.size()); });
    return *chitty::json::parse(h.out.at(0));
  }();
  CHECK(error_code(big) == -32600);
}

TEST_CASE("tools/list: six tools with schemas and hints", "[client][mcp]") {
  Harness h;
  Value r = h.call(R"({"jsonrpc":"2.0","id":1,"method":"tools/list"})");
  const Value* tools = r.find("result")->find("tools");
  REQUIRE(tools->items.size() == 6);
  std::vector<std::string> names;
  for (const Value& t : tools->items) {
    names.push_back(t.find("name")->string);
    const Value* schema = t.find("inputSchema");
    CHECK(schema->find("type")->string == "object");
    CHECK(schema->find("additionalProperties")->boolean == false);
    CHECK(schema->find("properties")->find("session_context") != nullptr);
    const Value* hints = t.find("annotations");
    bool destructive = hints->find("destructiveHint")->boolean;
    CHECK(destructive == (t.find("name")->string == "chitty_credential_revoke"));
  }
  CHECK(names == std::vector<std::string>{"chitty_credential_retrieve", "chitty_credential_provision",
                                          "chitty_credential_validate", "chitty_credential_revoke",
                                          "chitty_credential_audit", "chitty_credential_health"});
}

TEST_CASE("retrieve: the agent is asked on the MCP channel; a withheld value stays withheld", "[client][mcp]") {
  Harness h;
  h.agent.body = kWithheld;
  Value r = h.call(
      R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"chitty_credential_retrieve","arguments":{"credential_type":"openai_api_key","environment":"dev","session_context":{"session_id":"s"}}}})");
  REQUIRE(h.agent.requests.size() == 1);
  const Request& sent = h.agent.requests[0];
  CHECK(sent.target == "/api/onepassword/retrieve");
  CHECK(sent.body == R"({"credential_type":"openai_api_key","context":{"purpose":"api-call","environment":"dev"}})");
  CHECK(std::find(sent.headers.begin(), sent.headers.end(), "X-Chitty-Channel: mcp") != sent.headers.end());
  const Value* result = r.find("result");
  CHECK(result->find("isError")->boolean == false);
  const Value* cred = result->find("structuredContent")->find("credential");
  CHECK(cred->find("masked_value")->string == "…cdef");
  CHECK(cred->find("value_released")->boolean == false);
  CHECK(cred->find("value") == nullptr);
  CHECK(result->find("structuredContent")->find("metadata")->find("risk_score")->integer == 12);
  CHECK(result->find("content")->items.size() == 1);
}

TEST_CASE("retrieve: a released value is the first text content, exactly", "[client][mcp]") {
  Harness h;
  h.agent.body = kReleased;
  Value r = h.call(
      R"({"jsonrpc":"2.0","id":"x","method":"tools/call","params":{"name":"chitty_credential_retrieve","arguments":{"ref":"op://V/I/f","purpose":"deploy"}}})");
  CHECK(h.agent.requests.at(0).body == R"({"ref":"op://V/I/f","context":{"purpose":"deploy"}})");
  const Value* result = r.find("result");
  REQUIRE(result->find("content")->items.size() == 2);
  CHECK(result->find("content")->items[0].find("text")->string == "s3cret \"quoted\" 0123456789abcdef");
  CHECK(result->find("structuredContent")->find("credential")->find("value_released")->boolean == true);
  CHECK(result->find("structuredContent")->find("credential")->find("value") == nullptr);
}

TEST_CASE("a value the agent did not mark as released over MCP is not passed on", "[client][mcp]") {
  Harness h;
  h.agent.body =
      R"({"success":true,"credential":{"value":"PLAINTEXT-LEAK-123456","masked_value":"…3456","ref":"op://V/I/f"},"metadata":{}})";
  Value r = h.call(R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"chitty_credential_retrieve","arguments":{"ref":"op://V/I/f"}}})");
  CHECK(h.out.at(0).find("PLAINTEXT-LEAK") == std::string::npos);
  CHECK(r.find("result")->find("isError")->boolean);
  CHECK(r.find("result")->find("structuredContent")->find("error")->find("code")->string == "value_not_withheld");
  h.agent.body =
      R"({"success":true,"credential":{"value":"PLAINTEXT-LEAK-123456","released_over_mcp":false,"masked_value":"…3456"},"metadata":{}})";
  h.call(R"({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"chitty_credential_retrieve","arguments":{"ref":"op://V/I/f"}}})");
  CHECK(h.out.at(0).find("PLAINTEXT-LEAK") == std::string::npos);
}

TEST_CASE("target maps to the service-token and integration-key routes", "[client][mcp]") {
  Harness h;
  h.agent.body = kWithheld;
  h.call(R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"chitty_credential_retrieve","arguments":{"credential_type":"service_token","target":"chitty id"}}})");
  CHECK(h.agent.requests.at(0).target == "/api/onepassword/service-token/chitty%20id?purpose=api-call");
  h.call(R"({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"chitty_credential_retrieve","arguments":{"credential_type":"integration_key","target":"notion"}}})");
  CHECK(h.agent.requests.at(1).target == "/api/onepassword/integration-key/notion?purpose=api-call");
  Value bad = h.call(R"({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"chitty_credential_retrieve","arguments":{"credential_type":"openai_api_key","target":"x"}}})");
  CHECK(bad.find("result")->find("isError")->boolean);
  CHECK(h.agent.requests.size() == 2);
}

TEST_CASE("tool errors carry the agent's code and message", "[client][mcp]") {
  Harness h;
  h.agent.status = 403;
  h.agent.body = R"({"success":false,"error":{"code":"revoked","message":"op://V/I/f is revoked"},"metadata":{"request_id":"r"}})";
  Value r = h.call(R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"chitty_credential_retrieve","arguments":{"ref":"op://V/I/f"}}})");
  const Value* result = r.find("result");
  CHECK(result->find("isError")->boolean);
  CHECK(result->find("structuredContent")->find("error")->find("code")->string == "revoked");
  CHECK(result->find("content")->items[0].find("text")->string == "revoked: op://V/I/f is revoked");
  h.agent.unreachable = true;
  Value u = h.call(R"({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"chitty_credential_health"}})");
  CHECK(u.find("result")->find("structuredContent")->find("error")->find("code")->string == "agent_unreachable");
}

TEST_CASE("tool arguments are checked against the schema", "[client][mcp]") {
  Harness h;
  auto code = [&](std::string args, std::string tool = "chitty_credential_retrieve") {
    Value r = h.call(R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":")" + tool +
                     R"(","arguments":)" + args + "}}");
    const Value* sc = r.find("result")->find("structuredContent");
    return sc->find("error") != nullptr ? sc->find("error")->find("code")->string : std::string("ok");
  };
  CHECK(code(R"({"credential_type":"a","bogus":1})") == "invalid_arguments");
  CHECK(code(R"({"credential_type":7})") == "invalid_arguments");
  CHECK(code(R"({})") == "invalid_arguments");
  CHECK(code(R"({"credential_type":"a","ref":"op://V/I/f"})") == "invalid_arguments");
  CHECK(code(R"({"ref":"https://x"})") == "invalid_arguments");
  CHECK(code(R"({"ref":"op://V/I"})") == "invalid_arguments");
  CHECK(code(R"({})", "chitty_credential_provision") == "invalid_arguments");
  CHECK(code(R"({"limit":0})", "chitty_credential_audit") == "invalid_arguments");
  CHECK(code(R"({"limit":"5"})", "chitty_credential_audit") == "invalid_arguments");
  CHECK(code(R"({"ref":"op://V/I/f"})", "chitty_credential_revoke") == "invalid_arguments");  // reason required
  CHECK(code(R"({"ref":"op://V/I/f","reason":"x"})", "chitty_credential_revoke") == "revocation_disabled");
  CHECK(h.agent.requests.empty());
}

TEST_CASE("revoke, audit, validate, health make the right requests", "[client][mcp]") {
  Harness h;
  chitty::secure::SecureBuffer token = chitty::secure::SecureBuffer::allocate(arena(), 16);
  REQUIRE(token.append("tok"));
  McpServer server(arena(), h.agent, McpServerOptions{"1", "", "", &token});
  std::vector<std::string> out;
  auto call = [&](std::string m) {
    out.clear();
    server.handle(m, [&](std::span<const char> b) { out.emplace_back(b.data(), b.size()); });
    return *chitty::json::parse(out.at(0));
  };
  h.agent.body = R"({"success":true,"revoked":"op://V/I/f"})";
  Value r = call(R"({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"chitty_credential_revoke","arguments":{"ref":"op://V/I/f","reason":"leaked"}}})");
  CHECK(r.find("result")->find("isError")->boolean == false);
  CHECK(h.agent.requests.back().target == "/api/onepassword/emergency-revoke");
  CHECK(h.agent.requests.back().body == R"({"ref":"op://V/I/f","reason":"via MCP: leaked"})");
  CHECK(h.agent.requests.back().secret_header_name == "X-Emergency-Token");
  CHECK(h.agent.requests.back().secret_header_value == &token);
  h.agent.body = R"({"events":[],"count":0})";
  call(R"({"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"chitty_credential_audit","arguments":{"service":"a b","limit":5,"since":"2026-12-08T00:00:00Z"}}})");
  CHECK(h.agent.requests.back().target == "/api/credentials/audit?limit=5&service=a%20b&since=2026-12-08T00%3A00%3A00Z");
  h.agent.body = R"({"valid":true,"status":"active"})";
  Value v = call(R"({"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"chitty_credential_validate","arguments":{"credential_type":"t"}}})");
  CHECK(h.agent.requests.back().body == R"({"credential_type":"t"})");
  CHECK(v.find("result")->find("structuredContent")->find("status")->string == "active");
  h.agent.status = 503;
  h.agent.body = R"({"status":"unhealthy"})";
  Value health = call(R"({"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"chitty_credential_health"}})");
  CHECK(health.find("result")->find("structuredContent")->find("status")->string == "unhealthy");
}

TEST_CASE("serve_mcp: lines in, lines out; an oversized line is refused and the server reads on", "[client][mcp]") {
  Harness h;
  std::string data = R"({"jsonrpc":"2.0","id":1,"method":"ping"})" "\n";
  data += std::string(kMaxMcpMessage + 10, 'x') + "\n";
  data += "\n";  // empty lines are skipped
  data += R"({"jsonrpc":"2.0","id":2,"method":"ping"})" "\r\n";
  data += R"({"jsonrpc":"2.0","id":3,"method":"ping"})";  // no final newline
  auto [rc, got] = serve_over_pipes(h.server, data);
  CHECK(rc == 0);
  CHECK(got == R"({"jsonrpc":"2.0","id":1,"result":{}})" "\n"
               R"({"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"message larger than 1048576 bytes; it was dropped unread"}})" "\n"
               R"({"jsonrpc":"2.0","id":2,"result":{}})" "\n"
               R"({"jsonrpc":"2.0","id":3,"result":{}})" "\n");
}

TEST_CASE("batches: answered as one array in the versions that have them, refused in the others", "[client][mcp]") {
  Harness h;
  const std::string pings = R"([{"jsonrpc":"2.0","id":1,"method":"ping"},{"jsonrpc":"2.0","method":"notifications/initialized"},{"jsonrpc":"2.0","id":2,"method":"nope"},7])";
  CHECK(error_code(h.call(pings)) == -32600);  // before initialize: no version that has batches
  h.call(R"({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-03-26"}})");
  Value r = h.call(pings);
  REQUIRE(r.type == Value::Type::array);
  REQUIRE(r.items.size() == 3);  // the notification has no answer
  CHECK(*r.items[0].find("id")->integer == 1);
  CHECK(r.items[0].find("result") != nullptr);
  CHECK(error_code(r.items[1]) == -32601);
  CHECK(error_code(r.items[2]) == -32600);
  Value init = h.call(R"([{"jsonrpc":"2.0","id":5,"method":"initialize","params":{"protocolVersion":"2025-03-26"}}])");
  CHECK(error_code(init.items.at(0)) == -32600);
  CHECK(error_code(h.call("[]")) == -32600);
  h.silent(R"([{"jsonrpc":"2.0","method":"notifications/initialized"}])");
  h.call(R"({"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-06-18"}})");
  CHECK(error_code(h.call(pings)) == -32600);
}

TEST_CASE("serve_mcp: an oversized message cut short by the end of input is still answered", "[client][mcp]") {
  Harness h;
  auto [rc, got] = serve_over_pipes(h.server, std::string(kMaxMcpMessage + 10, 'x'));
  CHECK(rc == 0);
  CHECK(got.find("-32600") != std::string::npos);
}
