#include "chitty/api/credentials.hpp"

#include <memory>
#include <optional>
#include <string>

#include "chitty/base/time_format.hpp"
#include "chitty/catalog/reference.hpp"
#include "chitty/http/url.hpp"
#include "chitty/json/reader.hpp"
#include "chitty/json/secret.hpp"
#include "chitty/json/writer.hpp"
#include "chitty/log/log.hpp"

namespace chitty::api {
namespace {

using http::ErrorCode;

// A request the API refuses before the broker sees it.
struct BadRequest {
  std::string message;
};

// ---------------------------------------------------------------------------
// Reading the requests

std::string quoted(std::string_view s) { return "\"" + std::string(s) + "\""; }

// A string member, or a 400 for any other type.
tl::expected<std::optional<std::string>, BadRequest> string_member(const json::Value& obj, std::string_view key,
                                                                   std::string_view where) {
  const json::Value* v = obj.find(key);
  if (v == nullptr) return std::optional<std::string>();
  if (v->type != json::Value::Type::string) {
    return tl::unexpected(BadRequest{std::string(where) + quoted(key) + " must be a string, not " +
                                     std::string(json::type_name(v->type))});
  }
  return std::optional<std::string>(v->string);
}

tl::expected<void, BadRequest> only_known(const json::Value& obj, std::initializer_list<std::string_view> known,
                                          std::string_view where) {
  for (const auto& [k, v] : obj.members) {
    bool ok = false;
    for (auto name : known) ok = ok || k == name;
    if (!ok) {
      std::string list;
      for (auto name : known) list += (list.empty() ? "" : ", ") + std::string(name);
      return tl::unexpected(BadRequest{"unknown field " + std::string(where) + quoted(k) + " (known: " + list + ")"});
    }
  }
  return {};
}

tl::expected<catalog::Reference, BadRequest> reference(std::string_view text) {
  auto r = catalog::parse_reference(text);
  if (!r) return tl::unexpected(BadRequest{"invalid reference: " + r.error().message});
  return std::move(*r);
}

// The body of POST /api/onepassword/retrieve.
tl::expected<broker::Ask, BadRequest> read_retrieve(std::span<const char> body) {
  if (body.empty()) return tl::unexpected(BadRequest{"the request needs a JSON body"});
  auto doc = json::parse(std::string_view(body.data(), body.size()));
  if (!doc) return tl::unexpected(BadRequest{doc.error().message});
  if (doc->type != json::Value::Type::object) {
    return tl::unexpected(BadRequest{"the body must be a JSON object, not " + std::string(json::type_name(doc->type))});
  }
  const json::Value& o = *doc;
  if (auto k = only_known(o, {"ref", "vault", "item", "section", "field", "credential_type", "context", "refresh"}, "");
      !k) {
    return tl::unexpected(k.error());
  }
  broker::Ask ask;
  std::optional<std::string> ref, type, vault, item, section, field;
  for (auto [name, slot] : {std::pair{"ref", &ref}, {"credential_type", &type}, {"vault", &vault}, {"item", &item},
                            {"section", &section}, {"field", &field}}) {
    auto m = string_member(o, name, "");
    if (!m) return tl::unexpected(m.error());
    *slot = std::move(*m);
  }
  bool by_parts = vault || item || section || field;
  int forms = (ref ? 1 : 0) + (type ? 1 : 0) + (by_parts ? 1 : 0);
  if (forms != 1) {
    return tl::unexpected(BadRequest{forms == 0 ? "name the credential: \"ref\", \"credential_type\", or "
                                                  "\"vault\", \"item\" and \"field\""
                                                : "name the credential one way only: \"ref\", \"credential_type\", "
                                                  "or \"vault\"/\"item\"/\"field\""});
  }
  if (ref) {
    auto r = reference(*ref);
    if (!r) return tl::unexpected(r.error());
    ask.ref = std::move(*r);
  } else if (type) {
    if (type->empty()) return tl::unexpected(BadRequest{"\"credential_type\" is empty"});
    ask.credential_type = *type;
  } else {
    for (auto [name, part] : {std::pair{"vault", &vault}, {"item", &item}, {"field", &field}}) {
      if (!*part) return tl::unexpected(BadRequest{std::string("\"") + name + "\" is missing"});
    }
    for (auto [name, part] : {std::pair{"vault", &vault}, {"item", &item}, {"section", &section}, {"field", &field}}) {
      if (*part && (*part)->find('/') != std::string::npos) {
        return tl::unexpected(BadRequest{std::string("\"") + name + "\" may not contain '/'"});
      }
    }
    // Parsed as a reference, so every part gets the same checks.
    auto r = reference("op://" + *vault + "/" + *item + "/" + (section ? *section + "/" : "") + *field);
    if (!r) return tl::unexpected(r.error());
    ask.ref = std::move(*r);
  }
  if (const json::Value* refresh = o.find("refresh")) {
    if (refresh->type != json::Value::Type::boolean) {
      return tl::unexpected(BadRequest{"\"refresh\" must be a boolean, not " + std::string(json::type_name(refresh->type))});
    }
    ask.refresh = refresh->boolean;
  }
  if (const json::Value* ctx = o.find("context")) {
    if (ctx->type != json::Value::Type::object) {
      return tl::unexpected(BadRequest{"\"context\" must be an object, not " + std::string(json::type_name(ctx->type))});
    }
    if (auto k = only_known(*ctx, {"service", "purpose", "environment"}, "context."); !k) return tl::unexpected(k.error());
    auto service = string_member(*ctx, "service", "context.");
    auto purpose = string_member(*ctx, "purpose", "context.");
    auto environment = string_member(*ctx, "environment", "context.");
    for (auto* m : {&service, &purpose, &environment}) {
      if (!*m) return tl::unexpected(m->error());
    }
    ask.claimed_service = *service;
    ask.purpose = purpose->value_or("");
    ask.environment = environment->value_or("");
  }
  return ask;
}

// The query of GET /v1/secret.
tl::expected<broker::Ask, BadRequest> read_secret_query(std::string_view raw) {
  auto params = http::parse_query(raw);
  if (!params) return tl::unexpected(BadRequest{"malformed query: " + params.error().message});
  broker::Ask ask;
  ask.action = "secret";
  std::optional<std::string> ref;
  bool seen_refresh = false, seen_purpose = false;
  for (auto& [k, v] : *params) {
    auto once = [&](bool& seen) -> bool {
      if (seen) return false;
      seen = true;
      return true;
    };
    if (k == "ref") {
      if (ref) return tl::unexpected(BadRequest{"\"ref\" is given twice"});
      ref = v;
    } else if (k == "refresh") {
      if (!once(seen_refresh)) return tl::unexpected(BadRequest{"\"refresh\" is given twice"});
      if (v != "true" && v != "false") return tl::unexpected(BadRequest{"\"refresh\" must be true or false"});
      ask.refresh = v == "true";
    } else if (k == "purpose") {
      if (!once(seen_purpose)) return tl::unexpected(BadRequest{"\"purpose\" is given twice"});
      ask.purpose = v;
    } else {
      return tl::unexpected(BadRequest{"unknown query parameter " + quoted(k) + " (known: ref, refresh, purpose)"});
    }
  }
  if (!ref) return tl::unexpected(BadRequest{"the query needs ref=op://VAULT/ITEM[/SECTION]/FIELD"});
  auto r = reference(*ref);
  if (!r) return tl::unexpected(r.error());
  ask.ref = std::move(*r);
  return ask;
}

// ---------------------------------------------------------------------------
// Answering

void credential_headers(http::Response& r, const broker::Granted& g) {
  r.headers.emplace_back("X-Cache", std::string(broker::cache_header(g.cache)));
  r.headers.emplace_back("Age", std::to_string(std::chrono::duration_cast<std::chrono::seconds>(g.age).count()));
  r.headers.emplace_back("X-Chitty-Mode", std::string(cache::mode_name(g.mode)));
}

// Records `event` and sends `response` — or, if the event cannot be
// recorded, refuses (fail closed).
void answer(CredentialsContext& ctx, server::Call& call, audit::Event event, http::Response response) {
  if (auto r = ctx.audit->record(event); !r) {
    log::error("api", "audit event not recorded: refusing the request", {{"request_id", call.request_id()},
                                                                         {"reason", r.error().message}});
    call.fail(ErrorCode::audit_unavailable, "the decision could not be audited, so it is not carried out");
    return;
  }
  call.respond(std::move(response));
}

void refuse(CredentialsContext& ctx, server::Call& call, audit::Event event, ErrorCode code, std::string message) {
  event.decision = audit::Decision::deny;
  event.code = std::string(http::error_code_name(code));
  event.reason = message;
  answer(ctx, call, std::move(event), http::error_response(code, message, call.request_id()));
}

using BodyBuilder = http::Response (*)(CredentialsContext&, const broker::Granted&, const std::string&);

// The body of GET /v1/secret: the value itself.
http::Response raw_value(CredentialsContext& ctx, const broker::Granted& g, const std::string&) {
  http::Response r;
  auto bytes = g.value->bytes();
  secure::SecureBuffer body = secure::SecureBuffer::allocate(*ctx.arena, bytes.empty() ? 1 : bytes.size());
  if (!body) return r;
  body.append({bytes.data(), bytes.size()});
  r.content_type = json::encoding_for(bytes) == json::Encoding::text ? "text/plain; charset=utf-8"
                                                                      : "application/octet-stream";
  r.body = std::make_unique<SecretPayload>(std::move(body));
  return r;
}

http::Response json_value(CredentialsContext& ctx, const broker::Granted& g, const std::string& request_id) {
  http::Response r;
  secure::SecureBuffer body = credential_body(*ctx.arena, g, request_id);
  if (!body) return r;
  r.content_type = "application/json";
  r.body = std::make_unique<SecretPayload>(std::move(body));
  return r;
}

void serve(CredentialsContext& ctx, server::Call call, tl::expected<broker::Ask, BadRequest> ask,
           BodyBuilder build) {
  call.will_hold_secret();
  identity::Identity caller = call.caller();
  if (!ask) {
    audit::Event ev = ctx.broker->refused_event(caller, call.request_id(), "retrieve");
    return refuse(ctx, call, std::move(ev), ErrorCode::bad_request, ask.error().message);
  }
  auto held = std::make_shared<server::Call>(std::move(call));
  ctx.broker->retrieve(caller, std::move(*ask), held->request_id(), [&ctx, held, build](broker::Answer a) {
    server::Call& c = *held;
    if (!a.outcome) {
      return refuse(ctx, c, std::move(a.event), a.outcome.error().code, std::move(a.outcome.error().message));
    }
    const broker::Granted& g = *a.outcome;
    http::Response r = build(ctx, g, c.request_id());
    if (!r.body) {
      return refuse(ctx, c, std::move(a.event), ErrorCode::server_busy,
                    "no locked memory for the response right now; retry shortly");
    }
    r.status = 200;
    credential_headers(r, g);
    a.event.decision = audit::Decision::allow;
    answer(ctx, c, std::move(a.event), std::move(r));
  });
}

}  // namespace

secure::SecureBuffer credential_body(secure::Arena& arena, const broker::Granted& g, std::string_view request_id) {
  auto value = g.value->bytes();
  json::Encoding enc = json::encoding_for(value);
  // Everything but the value and its mask is public: built as a document of
  // its own, then spliced in after them.
  std::string rest;
  {
    json::Writer w(rest);
    w.begin_object();
    if (enc == json::Encoding::base64) w.key("encoding").string("base64");
    w.key("ref").string(g.ref);
    w.key("source").string(g.source);
    w.key("fetched_at").string(format_rfc3339_ms(g.fetched_at));
    w.key("expires_at").string(format_rfc3339_ms(g.expires_at));
    w.key("metadata").begin_object();
    w.key("decision").string("allow");
    w.key("cache").string(broker::cache_state_name(g.cache));
    w.key("mode").string(cache::mode_name(g.mode));
    w.key("request_id").string(request_id);
    w.end_object();
    w.end_object();
  }
  // rest = {"ref":…,…,"metadata":{…}}: the credential's members run up to
  // ,"metadata", which closes the credential object first.
  std::size_t meta = rest.find(",\"metadata\":");
  std::string_view members(rest.data() + 1, meta - 1);        // "ref":…,"expires_at":"…"
  std::string_view tail(rest.data() + meta, rest.size() - meta);  // ,"metadata":{…}}
  static constexpr std::string_view kHead = R"({"success":true,"credential":{"value":")";
  static constexpr std::string_view kMask = R"(","masked_value":")";
  std::size_t size = kHead.size() + json::encoded_size(value, enc) + kMask.size() + json::masked_size(value, enc) +
                     2 /* ", */ + members.size() + 1 /* } */ + tail.size();
  secure::SecureBuffer out = secure::SecureBuffer::allocate(arena, size);
  if (!out) return out;
  out.append(kHead);
  json::append_encoded(out, value, enc);
  out.append(kMask);
  json::append_masked(out, value, enc);
  out.append("\",");
  out.append(members);
  out.append("}");
  out.append(tail);
  return out;
}

void register_credential_routes(server::Router& router, CredentialsContext& ctx) {
  router.add(http::Method::post, "/api/onepassword/retrieve", [&ctx](server::Call call) {
    auto ask = read_retrieve(call.request().body());
    serve(ctx, std::move(call), std::move(ask), &json_value);
  });
  router.add(http::Method::get, "/v1/secret", [&ctx](server::Call call) {
    auto ask = read_secret_query(call.request().query());
    serve(ctx, std::move(call), std::move(ask), &raw_value);
  });
}

}  // namespace chitty::api
