#include "chitty/client/mcp.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "chitty/base/clock.hpp"
#include "chitty/base/text.hpp"
#include "chitty/base/time_format.hpp"
#include "chitty/base/units.hpp"
#include "chitty/base/wipe.hpp"
#include "chitty/catalog/reference.hpp"
#include "chitty/client/commands.hpp"
#include "chitty/json/in_place.hpp"
#include "chitty/json/secret.hpp"
#include "chitty/json/writer.hpp"

namespace chitty::client {

namespace {

// JSON-RPC 2.0 error codes.
constexpr int kParseError = -32700;
constexpr int kInvalidRequest = -32600;
constexpr int kMethodNotFound = -32601;
constexpr int kInvalidParams = -32602;

// ---------------------------------------------------------------------------
// The tools and their input schemas.

struct Property {
  std::string_view name;
  std::string_view type;  // "string", "boolean", "integer", "object"
  std::string_view description;
  std::string_view pattern = {};
  int minimum = 0, maximum = 0;  // integers (maximum 0: none)
};

struct Annotations {
  bool read_only = false, destructive = false, idempotent = false, open_world = false;
};

struct Tool {
  std::string_view name;
  std::string_view title;
  std::string_view description;
  std::vector<Property> properties;
  std::vector<std::string_view> required;
  Annotations hints;
};

constexpr std::string_view kPurpose =
    "Why the credential is needed, e.g. \"api-call\"; a service whose policy lists purposes must state one of them.";
constexpr std::string_view kEnvironment = "The environment it is for (production, staging, development); informational.";
constexpr std::string_view kSession =
    "The assistant's session (e.g. session_id, client, task). Informational: the agent decides on the kernel's word "
    "about who is calling, never on what a request claims.";
constexpr std::string_view kRef = "A 1Password secret reference, op://VAULT/ITEM[/SECTION]/FIELD.";
constexpr std::string_view kRefPattern = "^op://";

const std::vector<Tool>& tools() {
  static const std::vector<Tool> list = {
      {"chitty_credential_retrieve", "Retrieve a credential (masked)",
       "Retrieves a credential through chitty-agent, which checks who is asking (this process, as the kernel "
       "identifies it), its policy, risk score, rate limit and revocations, and audits the request. Returns the "
       "masked value and metadata: risk score and level, source, cache state, mode. The value itself is withheld "
       "unless the agent is configured to release this service's values over MCP; to give a value to a program "
       "without it passing through the assistant, use `chittyctl run` or `chittyctl inject`. Give credential_type "
       "or ref.",
       {{"credential_type", "string",
         "A credential type of the agent's catalog (e.g. openai_api_key); or service_token / integration_key together "
         "with target."},
        {"ref", "string", kRef, kRefPattern},
        {"target", "string",
         "With credential_type service_token: the ChittyOS service (e.g. chittyid); with integration_key: the "
         "integration (e.g. notion)."},
        {"purpose", "string", kPurpose},
        {"environment", "string", kEnvironment},
        {"session_context", "object", kSession}},
       {},
       {true, false, true, false}},
      {"chitty_credential_provision", "Provision a credential for a type",
       "Provisions the credential the agent's catalog maps the type to (POST /api/credentials/provision), under the "
       "same identity, policy, risk and audit as a retrieval. Returns it masked, with its expiry and metadata; the "
       "value is withheld unless released over MCP for this service.",
       {{"credential_type", "string", "The credential type to provision (e.g. cloudflare_workers_deploy)."},
        {"purpose", "string", kPurpose},
        {"environment", "string", kEnvironment},
        {"session_context", "object", kSession}},
       {"credential_type"},
       {false, false, false, false}},
      {"chitty_credential_validate", "Check a credential's status",
       "Says whether a credential is active, revoked, expired or unknown, with its expiry. Never returns a value. "
       "Give credential_type or ref.",
       {{"credential_type", "string", "A credential type of the agent's catalog."},
        {"ref", "string", kRef, kRefPattern},
        {"purpose", "string", kPurpose},
        {"session_context", "object", kSession}},
       {},
       {true, false, true, false}},
      {"chitty_credential_revoke", "Revoke a credential (emergency)",
       "Emergency revocation: the agent stops serving the credential (or a service's access, or everything) from "
       "every source at once and purges it from its cache, until an operator clears it. Needs the emergency token "
       "this MCP server was started with. Give exactly one of ref, credential_type, service or all.",
       {{"ref", "string", kRef, kRefPattern},
        {"credential_type", "string", "A credential type of the agent's catalog."},
        {"service", "string", "A service name: all of its access is revoked."},
        {"all", "boolean", "true: revoke everything."},
        {"reason", "string", "Why (recorded in the audit trail)."},
        {"session_context", "object", kSession}},
       {"reason"},
       {false, true, true, false}},
      {"chitty_credential_audit", "Read the audit trail",
       "Recent audit events of the agent (who asked for which reference, the decision, risk, cache state; never a "
       "value), newest last. Needs a service the agent's policy marks admin.",
       {{"service", "string", "Only this service's events."},
        {"since", "string", "Only events at or after this time: RFC 3339 (2026-12-08T09:00:00Z) or a duration back (15m, 2h)."},
        {"limit", "integer", "How many of the newest events (1 to 100; default 20).", {}, 1, 100},
        {"session_context", "object", kSession}},
       {},
       {true, false, true, false}},
      {"chitty_credential_health", "Agent health",
       "The agent's health: status (healthy, degraded, unhealthy), mode (normal or fallback), upstream state, cache, "
       "audit backlog, the fallback window left, version.",
       {{"session_context", "object", kSession}},
       {},
       {true, false, true, false}},
  };
  return list;
}

const Tool* find_tool(std::string_view name) {
  for (const Tool& t : tools()) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

std::string tools_list_result() {
  return json::object_text([](json::Writer& w) {
    w.key("tools").begin_array();
    for (const Tool& t : tools()) {
      w.begin_object();
      w.key("name").string(t.name);
      w.key("title").string(t.title);
      w.key("description").string(t.description);
      w.key("inputSchema").begin_object();
      w.key("type").string("object");
      w.key("properties").begin_object();
      for (const Property& p : t.properties) {
        w.key(p.name).begin_object();
        w.key("type").string(p.type);
        w.key("description").string(p.description);
        if (!p.pattern.empty()) w.key("pattern").string(p.pattern);
        if (p.maximum > 0) {
          w.key("minimum").integer(p.minimum);
          w.key("maximum").integer(p.maximum);
        }
        w.end_object();
      }
      w.end_object();
      if (!t.required.empty()) {
        w.key("required").begin_array();
        for (auto r : t.required) w.string(r);
        w.end_array();
      }
      w.key("additionalProperties").boolean(false);
      w.end_object();
      w.key("annotations").begin_object();
      w.key("title").string(t.title);
      w.key("readOnlyHint").boolean(t.hints.read_only);
      w.key("destructiveHint").boolean(t.hints.destructive);
      w.key("idempotentHint").boolean(t.hints.idempotent);
      w.key("openWorldHint").boolean(t.hints.open_world);
      w.end_object();
      w.end_object();
    }
    w.end_array();
  });
}

// ---------------------------------------------------------------------------
// Messages

void write_id(json::Writer& w, const json::Value* id) {
  w.key("id");
  if (id == nullptr) {
    w.null();
  } else if (id->type == json::Value::Type::string) {
    w.string(id->string);
  } else {
    w.integer(*id->integer);
  }
}

void send_text(const McpServer::Write& write, const std::string& text) { write({text.data(), text.size()}); }

void send_result(const McpServer::Write& write, const json::Value* id, std::string_view result_json) {
  std::string out = json::object_text([&](json::Writer& w) {
    w.key("jsonrpc").string("2.0");
    write_id(w, id);
  });
  out.pop_back();  // the closing brace: the result goes in as it is
  out += ",\"result\":";
  out += result_json;
  out += '}';
  send_text(write, out);
}

void send_error(const McpServer::Write& write, const json::Value* id, int code, std::string_view message) {
  send_text(write, json::object_text([&](json::Writer& w) {
              w.key("jsonrpc").string("2.0");
              write_id(w, id);
              w.key("error").begin_object();
              w.key("code").integer(code);
              w.key("message").string(message);
              w.end_object();
            }));
}

// A tool's error: isError with the agent's code and message.
void send_tool_error(const McpServer::Write& write, const json::Value* id, std::string_view code,
                     std::string_view message, std::string_view request_id = {}) {
  std::string text = std::string(code) + ": " + std::string(message);
  send_result(write, id, json::object_text([&](json::Writer& w) {
                w.key("content").begin_array();
                w.begin_object();
                w.key("type").string("text");
                w.key("text").string(text);
                w.end_object();
                w.end_array();
                w.key("structuredContent").begin_object();
                w.key("error").begin_object();
                w.key("code").string(code);
                w.key("message").string(message);
                w.end_object();
                if (!request_id.empty()) w.key("request_id").string(request_id);
                w.end_object();
                w.key("isError").boolean(true);
              }));
}

void send_failure(const McpServer::Write& write, const json::Value* id, const Failure& f,
                  std::string_view request_id = {}) {
  if (!f.code.empty()) return send_tool_error(write, id, f.code, f.agent_message, request_id);
  std::string_view code = f.exit == Exit::unreachable ? "agent_unreachable" : "client_error";
  send_tool_error(write, id, code, f.message);
}

// A JSON string literal of `text`.
std::string quoted(std::string_view text) {
  std::string out;
  json::Writer w(out);
  w.string(text);
  return out;
}

// A tool's result: the structured content (a JSON object text) and the same
// as text content, for clients that read only that.
void send_tool_result(const McpServer::Write& write, const json::Value* id, const std::string& structured) {
  std::string result = R"({"content":[{"type":"text","text":)" + quoted(structured) +
                       R"(}],"structuredContent":)" + structured + R"(,"isError":false})";
  send_result(write, id, result);
}

// Copies a node of an answer parsed in place (public parts only).
void copy_node(json::Writer& w, json::Node n) {
  switch (n.type()) {
    case json::Node::Type::null: w.null(); return;
    case json::Node::Type::boolean: w.boolean(n.boolean()); return;
    case json::Node::Type::number: {
      std::string t(n.text());
      char* end = nullptr;
      errno = 0;
      long long i = std::strtoll(t.c_str(), &end, 10);
      if (errno == 0 && end != nullptr && *end == '\0') {
        w.integer(i);
      } else {
        w.number(std::strtod(t.c_str(), nullptr));
      }
      return;
    }
    case json::Node::Type::string: w.string(n.text()); return;
    case json::Node::Type::array:
      w.begin_array();
      for (json::Node c : n) copy_node(w, c);
      w.end_array();
      return;
    case json::Node::Type::object:
      w.begin_object();
      for (json::Node c : n) {
        w.key(c.key());
        copy_node(w, c);
      }
      w.end_object();
      return;
  }
}

// ---------------------------------------------------------------------------
// Arguments

struct Args {
  const json::Value* value = nullptr;  // the arguments object (may be null: none given)
  std::string get(std::string_view key) const {
    const json::Value* v = value != nullptr ? value->find(key) : nullptr;
    return v != nullptr && v->type == json::Value::Type::string ? v->string : std::string();
  }
  bool has(std::string_view key) const { return value != nullptr && value->find(key) != nullptr; }
};

// Checks `args` against the tool's schema: known properties of the right
// type, the required ones present. "" when they conform.
std::string check_arguments(const Tool& tool, const json::Value* args) {
  for (auto r : tool.required) {
    if (args == nullptr || args->find(r) == nullptr) return "\"" + std::string(r) + "\" is required";
  }
  if (args == nullptr) return "";
  for (const json::Member& m : args->members) {
    const Property* p = nullptr;
    for (const Property& q : tool.properties) {
      if (q.name == m.key) p = &q;
    }
    if (p == nullptr) return "unknown argument \"" + to_valid_utf8(m.key.substr(0, 64)) + "\"";
    auto t = m.value.type;
    bool ok = (p->type == "string" && t == json::Value::Type::string) ||
              (p->type == "boolean" && t == json::Value::Type::boolean) ||
              (p->type == "object" && t == json::Value::Type::object) ||
              (p->type == "integer" && t == json::Value::Type::number && m.value.integer.has_value());
    if (!ok) return "\"" + m.key + "\" must be " + (p->type == "integer" ? "an " : "a ") + std::string(p->type);
    if (p->type == "string" && m.value.string.size() > 4096) return "\"" + m.key + "\" is longer than 4096 bytes";
    if (!p->pattern.empty() && !m.value.string.starts_with("op://")) {
      return "\"" + m.key + "\" must be a reference op://VAULT/ITEM[/SECTION]/FIELD";
    }
    if (p->type == "integer" && (*m.value.integer < p->minimum || *m.value.integer > p->maximum)) {
      return "\"" + m.key + "\" must be from " + std::to_string(p->minimum) + " to " + std::to_string(p->maximum);
    }
  }
  return "";
}

}  // namespace

McpServer::McpServer(secure::Arena& arena, Transport& agent, McpServerOptions options)
    : arena_(arena), agent_(agent), options_(std::move(options)) {}

void McpServer::oversized(const Write& write) {
  send_error(write, nullptr, kInvalidRequest,
             "message larger than " + std::to_string(kMaxMcpMessage) + " bytes; it was dropped unread");
}

void McpServer::handle(std::string_view message, const Write& write) {
  auto doc = json::parse(message);
  if (!doc) return send_error(write, nullptr, kParseError, "parse error: " + doc.error().message);
  if (doc->type != json::Value::Type::array) return dispatch(*doc, write, false);
  // Batches exist in the protocol versions 2024-11-05 and 2025-03-26 only
  // (2025-06-18 removed them): the answers go back as one array, in order.
  if (version_ != "2024-11-05" && version_ != "2025-03-26") {
    return send_error(write, nullptr, kInvalidRequest,
                      "JSON-RPC batches are not part of protocol version " +
                          (version_.empty() ? std::string("(none agreed yet)") : version_) + "; send one message per line");
  }
  if (doc->items.empty()) return send_error(write, nullptr, kInvalidRequest, "an empty batch");
  // Answers may hold a released value: collected in memory wiped when freed.
  WipedBytes out;
  out.push_back('[');
  bool any = false;
  Write collect = [&](std::span<const char> m) {
    if (any) out.push_back(',');
    out.insert(out.end(), m.begin(), m.end());
    any = true;
  };
  for (const json::Value& item : doc->items) dispatch(item, collect, true);
  out.push_back(']');
  if (any) write({out.data(), out.size()});
}

void McpServer::dispatch(const json::Value& message, const Write& write, bool in_batch) {
  const json::Value* doc = &message;
  if (doc->type != json::Value::Type::object) {
    return send_error(write, nullptr, kInvalidRequest, "a JSON-RPC message is an object");
  }
  const json::Value* id = doc->find("id");
  if (id != nullptr && !(id->type == json::Value::Type::string ||
                         (id->type == json::Value::Type::number && id->integer.has_value()))) {
    return send_error(write, nullptr, kInvalidRequest, "\"id\" must be a string or an integer");
  }
  const json::Value* version = doc->find("jsonrpc");
  if (version == nullptr || version->type != json::Value::Type::string || version->string != "2.0") {
    return send_error(write, id, kInvalidRequest, "\"jsonrpc\" must be \"2.0\"");
  }
  const json::Value* method = doc->find("method");
  if (method == nullptr) {
    // A response to a request of ours: this server sends none, so there is
    // nothing to match it with.
    if (id != nullptr && (doc->find("result") != nullptr || doc->find("error") != nullptr)) return;
    return send_error(write, id, kInvalidRequest, "\"method\" is missing");
  }
  if (method->type != json::Value::Type::string) return send_error(write, id, kInvalidRequest, "\"method\" must be a string");
  const json::Value* params = doc->find("params");
  if (params != nullptr && params->type != json::Value::Type::object) {
    if (id == nullptr) return;
    return send_error(write, id, kInvalidParams, "\"params\" must be an object");
  }
  const std::string& m = method->string;
  if (id == nullptr) return;  // notifications (initialized, cancelled, …) need no answer
  if (m == "initialize") {
    if (in_batch) return send_error(write, id, kInvalidRequest, "initialize must not be part of a batch");
    const json::Value* asked = params != nullptr ? params->find("protocolVersion") : nullptr;
    if (asked == nullptr || asked->type != json::Value::Type::string) {
      return send_error(write, id, kInvalidParams, "initialize needs params.protocolVersion (a string)");
    }
    version_ = std::string(kMcpVersions[0]);
    for (auto v : kMcpVersions) {
      if (asked->string == v) version_ = std::string(v);
    }
    return send_result(write, id, json::object_text([&](json::Writer& w) {
                         w.key("protocolVersion").string(version_);
                         w.key("capabilities").begin_object();
                         w.key("tools").begin_object();
                         w.key("listChanged").boolean(false);
                         w.end_object();
                         w.end_object();
                         w.key("serverInfo").begin_object();
                         w.key("name").string("chittyctl");
                         w.key("title").string("chitty-agent credentials");
                         w.key("version").string(options_.version);
                         w.end_object();
                         w.key("instructions")
                             .string("Credentials from chitty-agent. Values are masked: the tools return metadata "
                                     "and masked values, not secrets, unless the operator configured release over "
                                     "MCP. To give a secret to a program, have the user run it with `chittyctl run` "
                                     "or `chittyctl inject`.");
                       }));
  }
  if (m == "ping") return send_result(write, id, "{}");
  if (m == "tools/list") return send_result(write, id, tools_list_result());
  if (m == "tools/call") {
    if (params == nullptr) return send_error(write, id, kInvalidParams, "tools/call needs params");
    return call_tool(id, *params, write);
  }
  send_error(write, id, kMethodNotFound, "method not found: " + to_valid_utf8(m.substr(0, 128)));
}

void McpServer::call_tool(const json::Value* id, const json::Value& params, const Write& write) {
  const json::Value* name = params.find("name");
  if (name == nullptr || name->type != json::Value::Type::string) {
    return send_error(write, id, kInvalidParams, "tools/call needs params.name (a string)");
  }
  const Tool* tool = find_tool(name->string);
  if (tool == nullptr) return send_error(write, id, kInvalidParams, "unknown tool: " + to_valid_utf8(name->string.substr(0, 128)));
  const json::Value* arguments = params.find("arguments");
  if (arguments != nullptr && arguments->type == json::Value::Type::null) arguments = nullptr;
  if (arguments != nullptr && arguments->type != json::Value::Type::object) {
    return send_error(write, id, kInvalidParams, "params.arguments must be an object");
  }
  if (std::string problem = check_arguments(*tool, arguments); !problem.empty()) {
    return send_tool_error(write, id, "invalid_arguments", problem);
  }
  Args a{arguments};
  Context ctx;
  ctx.mcp = true;
  ctx.purpose = a.has("purpose") ? a.get("purpose") : options_.purpose;
  ctx.environment = a.has("environment") ? a.get("environment") : options_.environment;
  auto one_of = [&](std::initializer_list<std::string_view> keys) {
    int n = 0;
    for (auto k : keys) n += a.has(k) ? 1 : 0;
    return n;
  };
  const std::string_view t = tool->name;
  if (t == "chitty_credential_retrieve") {
    if (one_of({"credential_type", "ref"}) != 1) {
      return send_tool_error(write, id, "invalid_arguments", "give credential_type or ref (one of them)");
    }
    Wanted w;
    std::string type = a.get("credential_type");
    if (a.has("target")) {
      if (type == "service_token") {
        w.service_token = a.get("target");
      } else if (type == "integration_key") {
        w.integration_key = a.get("target");
      } else {
        return send_tool_error(write, id, "invalid_arguments",
                               "target goes with credential_type service_token or integration_key");
      }
      if (a.get("target").empty()) return send_tool_error(write, id, "invalid_arguments", "target is empty");
    } else if (!a.get("ref").empty()) {
      w.ref = a.get("ref");
      if (auto ref = catalog::parse_reference(w.ref); !ref) {
        return send_tool_error(write, id, "invalid_arguments", "invalid reference: " + ref.error().message);
      }
    } else {
      w.type = type;
    }
    return credential_tool(id, w, ctx, write);
  }
  if (t == "chitty_credential_provision") {
    Wanted w;
    w.provision = a.get("credential_type");
    return credential_tool(id, w, ctx, write);
  }
  if (t == "chitty_credential_validate") {
    if (one_of({"credential_type", "ref"}) != 1) {
      return send_tool_error(write, id, "invalid_arguments", "give credential_type or ref (one of them)");
    }
    Request r;
    r.method = "POST";
    r.target = "/api/credentials/validate";
    r.body = json::object_text([&](json::Writer& w) {
      if (a.has("ref")) {
        w.key("ref").string(a.get("ref"));
      } else {
        w.key("credential_type").string(a.get("credential_type"));
      }
      if (!ctx.purpose.empty()) {
        w.key("context").begin_object();
        w.key("purpose").string(ctx.purpose);
        w.end_object();
      }
    });
    return public_tool(id, r, write);
  }
  if (t == "chitty_credential_revoke") {
    if (one_of({"ref", "credential_type", "service", "all"}) != 1) {
      return send_tool_error(write, id, "invalid_arguments", "give exactly one of ref, credential_type, service, all");
    }
    if (options_.emergency_token == nullptr) {
      return send_tool_error(write, id, "revocation_disabled",
                             "this MCP server was started without an emergency token (chittyctl mcp "
                             "--emergency-token-file FILE), so it cannot revoke");
    }
    Request r;
    r.method = "POST";
    r.target = "/api/onepassword/emergency-revoke";
    r.body = json::object_text([&](json::Writer& w) {
      for (std::string_view k : {"ref", "credential_type", "service"}) {
        if (a.has(k)) w.key(k).string(a.get(k));
      }
      if (a.has("all")) {
        const json::Value* all = arguments->find("all");
        w.key("all").boolean(all->boolean);
      }
      w.key("reason").string("via MCP: " + a.get("reason"));
    });
    r.secret_header_name = "X-Emergency-Token";
    r.secret_header_value = options_.emergency_token;
    return public_tool(id, r, write);
  }
  if (t == "chitty_credential_audit") {
    std::int64_t limit = 20;
    if (const json::Value* l = arguments != nullptr ? arguments->find("limit") : nullptr) limit = *l->integer;
    std::string since = a.get("since");
    if (!since.empty() && !parse_rfc3339(since)) {
      auto d = parse_duration(since);
      if (!d) return send_tool_error(write, id, "invalid_arguments", "since: an RFC 3339 time or a duration (15m)");
      since = format_rfc3339_ms(SystemClock().wall_now() - std::chrono::duration_cast<Duration>(*d));
    }
    Request r;
    r.target = "/api/credentials/audit?limit=" + std::to_string(limit);
    if (a.has("service")) r.target += "&service=" + percent_encode(a.get("service"));
    if (!since.empty()) r.target += "&since=" + percent_encode(since);
    return public_tool(id, r, write);
  }
  // chitty_credential_health
  Request r;
  r.target = "/health";
  public_tool(id, r, write);
}

void McpServer::public_tool(const json::Value* id, const Request& request, const Write& write) {
  Request r = request;
  r.headers.emplace_back("X-Chitty-Channel: mcp");
  auto reply = agent_.send(r);
  if (!reply) return send_failure(write, id, reply.error());
  const bool health = r.target == "/health";
  if (reply->status != 200 && !(health && reply->status == 503)) {
    return send_failure(write, id, failure_of(*reply), reply->request_id);
  }
  auto doc = json::parse(reply->body());
  if (!doc || doc->type != json::Value::Type::object) {
    return send_tool_error(write, id, "client_error", "the agent's answer is not a JSON object");
  }
  send_tool_result(write, id, to_json(*doc, false));
}

void McpServer::credential_tool(const json::Value* id, const Wanted& what, const Context& ctx, const Write& write) {
  auto reply = ask(agent_, what, ctx);
  if (!reply) return send_failure(write, id, reply.error());
  if (!reply->secret || reply->secret.size() + 1 > reply->secret.capacity()) {
    return send_tool_error(write, id, "client_error", "the agent's answer is too large");
  }
  auto doc = json::InPlace::parse(reply->secret);
  if (!doc) return send_tool_error(write, id, "client_error", "the agent's answer is not JSON");
  json::Node credential = doc->root().get("credential");
  if (!credential.valid() || !credential.is(json::Node::Type::object)) {
    return send_tool_error(write, id, "client_error", "the agent's answer has no credential");
  }
  json::Node value = credential.get("value");
  const bool has_value = value.valid() && value.is(json::Node::Type::string);
  // A value is passed on only when the agent says it released it to this
  // channel: an agent that does not know the channel (an older one, or
  // something else on the socket) answers with the value unmarked, and it
  // stops here, wiped with the answer.
  json::Node marked = credential.get("released_over_mcp");
  const bool released = has_value && marked.valid() && marked.is(json::Node::Type::boolean) && marked.boolean();
  if (has_value && !released) {
    return send_tool_error(write, id, "value_not_withheld",
                           "the agent answered with a value it did not mark as released over MCP (an agent that does "
                           "not know the MCP channel?); it was discarded, not passed on");
  }
  // Everything but the value: the structured content, public.
  std::string structured = json::object_text([&](json::Writer& w) {
    w.key("credential").begin_object();
    for (json::Node c : credential) {
      if (c.key() == "value" || c.key() == "withheld" || c.key() == "released_over_mcp") continue;
      w.key(c.key());
      copy_node(w, c);
    }
    w.key("value_released").boolean(released);
    w.end_object();
    if (json::Node meta = doc->root().get("metadata"); meta.valid()) {
      w.key("metadata");
      copy_node(w, meta);
    }
  });
  if (!released) return send_tool_result(write, id, structured);
  // Released (mcp_release = true for this service): the value is the first
  // text content, written from locked memory; the rest as without it.
  std::span<const char> v(value.text().data(), value.text().size());
  std::string head = json::object_text([&](json::Writer& w) {
    w.key("jsonrpc").string("2.0");
    write_id(w, id);
  });
  head.pop_back();
  head += R"(,"result":{"content":[{"type":"text","text":")";
  std::string tail = R"("},{"type":"text","text":)" + quoted(structured) + R"(}],"structuredContent":)" + structured +
                     R"(,"isError":false}})";
  secure::SecureBuffer out = secure::SecureBuffer::allocate(
      arena_, head.size() + json::encoded_size(v, json::Encoding::text) + tail.size());
  if (!out || !out.append(head) || !json::append_encoded(out, v, json::Encoding::text) || !out.append(tail)) {
    return send_tool_error(write, id, "client_error", "the value is too large to be answered in one message");
  }
  write(out.bytes());
}

int mcp(Session& s, const McpOptions& o) {
  std::optional<secure::SecureBuffer> token;
  if (!o.emergency_token_file.empty()) {
    auto t = read_token_file(s.arena, o.emergency_token_file, "emergency token file", true);
    if (!t) return report(t.error());
    token.emplace(std::move(*t));
  }
  McpServerOptions options;
  options.version = o.version;
  options.purpose = o.purpose.empty() ? s.context.purpose : o.purpose;
  options.environment = s.context.environment;
  options.emergency_token = token ? &*token : nullptr;
  McpServer server(s.arena, s.agent, std::move(options));
  return serve_mcp(server, 0, 1);
}

int serve_mcp(McpServer& server, int in_fd, int out_fd) {
  bool output_gone = false;
  McpServer::Write write = [&](std::span<const char> message) {
    if (output_gone) return;
    if (!write_all(out_fd, {message.data(), message.size()}) || !write_all(out_fd, "\n")) output_gone = true;
  };
  std::string line;
  bool dropping = false;  // inside a message over the limit
  char chunk[65536];
  for (;;) {
    ssize_t n = ::read(in_fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    std::string_view data(chunk, static_cast<std::size_t>(n));
    while (!data.empty()) {
      std::size_t nl = data.find('\n');
      std::string_view part = data.substr(0, nl);
      if (!dropping) {
        if (line.size() + part.size() > kMaxMcpMessage) {
          dropping = true;
          line.clear();
          line.shrink_to_fit();
        } else {
          line.append(part);
        }
      }
      if (nl == std::string_view::npos) break;
      data.remove_prefix(nl + 1);
      if (dropping) {
        server.oversized(write);
        dropping = false;
      } else {
        std::string_view message(line);
        while (!message.empty() && (message.back() == '\r' || message.back() == ' ')) message.remove_suffix(1);
        if (!message.empty()) server.handle(message, write);
        line.clear();
      }
      if (output_gone) return static_cast<int>(Exit::failure);
    }
  }
  if (dropping) {
    server.oversized(write);
  } else if (!line.empty()) {
    server.handle(line, write);
  }
  return output_gone ? static_cast<int>(Exit::failure) : 0;
}

}  // namespace chitty::client
