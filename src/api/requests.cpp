#include "chitty/api/requests.hpp"

#include <algorithm>
#include <initializer_list>
#include <map>

#include "chitty/base/text.hpp"
#include "chitty/base/time_format.hpp"
#include "chitty/catalog/reference.hpp"
#include "chitty/http/url.hpp"
#include "chitty/json/reader.hpp"

namespace chitty::api {
namespace {

using Value = json::Value;

tl::unexpected<BadRequest> bad(std::string message) { return tl::unexpected(BadRequest{std::move(message)}); }

std::string quoted(std::string_view s) {
  // Names a client sent, for messages: bounded, control characters shown as '?'.
  std::string out = "\"";
  for (char c : s.substr(0, 128)) out += (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) ? '?' : c;
  if (s.size() > 128) out += "...";
  return out + "\"";
}

Parsed<Value> object_body(std::span<const char> body) {
  if (body.empty()) return bad("the request needs a JSON body");
  auto doc = json::parse(std::string_view(body.data(), body.size()));
  if (!doc) return bad(doc.error().message);
  if (doc->type != Value::Type::object) return bad("the body must be a JSON object, not " + std::string(json::type_name(doc->type)));
  return std::move(*doc);
}

// "a, b, c", for messages.
std::string listed(std::initializer_list<std::string_view> names) {
  std::string list;
  for (auto n : names) list += (list.empty() ? "" : ", ") + std::string(n);
  return list;
}

Parsed<void> only_known(const Value& obj, std::initializer_list<std::string_view> known, std::string_view where) {
  for (const auto& [k, v] : obj.members) {
    bool ok = false;
    for (auto name : known) ok = ok || k == name;
    if (!ok) return bad("unknown field " + std::string(where) + quoted(k) + " (known: " + listed(known) + ")");
  }
  return {};
}

// A string member, or a 400 for any other type.
Parsed<std::optional<std::string>> string_member(const Value& obj, std::string_view key, std::string_view where) {
  const Value* v = obj.find(key);
  if (v == nullptr) return std::optional<std::string>();
  if (v->type != Value::Type::string) {
    return bad(std::string(where) + quoted(key) + " must be a string, not " + std::string(json::type_name(v->type)));
  }
  return std::optional<std::string>(v->string);
}

// Several optional string members at once, each into its slot.
Parsed<void> string_members(const Value& obj, std::string_view where,
                            std::initializer_list<std::pair<std::string_view, std::optional<std::string>*>> slots) {
  for (auto [name, slot] : slots) {
    auto m = string_member(obj, name, where);
    if (!m) return tl::unexpected(m.error());
    *slot = std::move(*m);
  }
  return {};
}

Parsed<bool> bool_member(const Value& obj, std::string_view key, std::string_view where, bool fallback) {
  const Value* v = obj.find(key);
  if (v == nullptr) return fallback;
  if (v->type != Value::Type::boolean) {
    return bad(std::string(where) + quoted(key) + " must be a boolean, not " + std::string(json::type_name(v->type)));
  }
  return v->boolean;
}

Parsed<catalog::Reference> reference(std::string_view text) {
  auto r = catalog::parse_reference(text);
  if (!r) return bad("invalid reference: " + r.error().message);
  return std::move(*r);
}

// context {service, purpose, environment} into `ask`.
Parsed<void> read_context(const Value& ctx, broker::Ask& ask) {
  if (ctx.type != Value::Type::object) return bad("\"context\" must be an object, not " + std::string(json::type_name(ctx.type)));
  if (auto k = only_known(ctx, {"service", "purpose", "environment"}, "context."); !k) return tl::unexpected(k.error());
  std::optional<std::string> service, purpose, environment;
  if (auto m = string_members(ctx, "context.", {{"service", &service}, {"purpose", &purpose}, {"environment", &environment}});
      !m) {
    return tl::unexpected(m.error());
  }
  for (const auto* v : {&service, &purpose, &environment}) {
    if (*v && (*v)->size() > 256) return bad("context fields are at most 256 bytes");
  }
  ask.claimed_service = service;
  ask.purpose = purpose.value_or("");
  ask.environment = environment.value_or("");
  return {};
}

// How a credential is named in a body: {ref} | {vault,item,[section],field}
// | {credential_type}, exactly one way. `where` prefixes messages
// ("requests[3].").
Parsed<broker::Ask> read_credential(const Value& o, std::string_view where, bool allow_parts) {
  broker::Ask ask;
  std::optional<std::string> ref, type, vault, item, section, field;
  if (auto m = string_members(o, where, {{"ref", &ref}, {"credential_type", &type}, {"vault", &vault}, {"item", &item},
                                          {"section", &section}, {"field", &field}});
      !m) {
    return tl::unexpected(m.error());
  }
  bool by_parts = vault || item || section || field;
  int forms = (ref ? 1 : 0) + (type ? 1 : 0) + (by_parts ? 1 : 0);
  std::string ways = allow_parts ? "\"ref\", \"credential_type\", or \"vault\"/\"item\"/\"field\"" : "\"ref\" or \"credential_type\"";
  if (forms == 0) return bad(std::string(where) + "name the credential: " + ways);
  if (forms > 1) return bad(std::string(where) + "name the credential one way only: " + ways);
  if (ref) {
    auto r = reference(*ref);
    if (!r) return bad(std::string(where) + r.error().message);
    ask.ref = std::move(*r);
  } else if (type) {
    if (type->empty()) return bad(std::string(where) + "\"credential_type\" is empty");
    if (type->size() > 128) return bad(std::string(where) + "\"credential_type\" is longer than 128 bytes");
    ask.credential_type = *type;
  } else {
    for (auto [name, part] : {std::pair{"vault", &vault}, {"item", &item}, {"field", &field}}) {
      if (!*part) return bad(std::string(where) + "\"" + name + "\" is missing");
    }
    for (auto [name, part] : {std::pair{"vault", &vault}, {"item", &item}, {"section", &section}, {"field", &field}}) {
      if (*part && (*part)->find('/') != std::string::npos) {
        return bad(std::string(where) + "\"" + name + "\" may not contain '/'");
      }
    }
    // Parsed as a reference, so every part gets the same checks.
    auto r = reference("op://" + *vault + "/" + *item + "/" + (section ? *section + "/" : "") + *field);
    if (!r) return bad(std::string(where) + r.error().message);
    ask.ref = std::move(*r);
  }
  return ask;
}

// A query's parameters by name: each one known, and given once.
using Params = std::map<std::string, std::string, std::less<>>;
Parsed<Params> query_params(std::string_view raw, std::initializer_list<std::string_view> known) {
  auto params = http::parse_query(raw);
  if (!params) return bad("malformed query: " + params.error().message);
  Params out;
  for (auto& [k, v] : *params) {
    if (std::find(known.begin(), known.end(), k) == known.end()) {
      return bad("unknown query parameter " + quoted(k) + " (known: " + listed(known) + ")");
    }
    if (!out.emplace(k, std::move(v)).second) return bad(quoted(k) + " is given twice");
  }
  return out;
}

// purpose= and refresh=, as /v1/secret and the GET routes take them.
Parsed<GetOptions> get_options(const Params& p) {
  GetOptions o;
  if (auto it = p.find("purpose"); it != p.end()) {
    if (it->second.size() > 256) return bad("\"purpose\" is longer than 256 bytes");
    o.purpose = it->second;
  }
  if (auto it = p.find("refresh"); it != p.end()) {
    if (it->second != "true" && it->second != "false") return bad("\"refresh\" must be true or false");
    o.refresh = it->second == "true";
  }
  return o;
}

}  // namespace

Parsed<broker::Ask> read_retrieve(std::span<const char> body) {
  auto doc = object_body(body);
  if (!doc) return tl::unexpected(doc.error());
  const Value& o = *doc;
  if (auto k = only_known(o, {"ref", "vault", "item", "section", "field", "credential_type", "context", "refresh"}, "");
      !k) {
    return tl::unexpected(k.error());
  }
  auto ask = read_credential(o, "", true);
  if (!ask) return ask;
  auto refresh = bool_member(o, "refresh", "", false);
  if (!refresh) return tl::unexpected(refresh.error());
  ask->refresh = *refresh;
  if (const Value* ctx = o.find("context")) {
    if (auto c = read_context(*ctx, *ask); !c) return tl::unexpected(c.error());
  }
  return ask;
}

Parsed<Batch> read_batch(std::span<const char> body) {
  auto doc = object_body(body);
  if (!doc) return tl::unexpected(doc.error());
  const Value& o = *doc;
  if (auto k = only_known(o, {"requests", "context"}, ""); !k) return tl::unexpected(k.error());
  const Value* requests = o.find("requests");
  if (requests == nullptr) return bad("the body needs \"requests\": an array of 1 to 10 retrieve requests");
  if (requests->type != Value::Type::array) {
    return bad("\"requests\" must be an array, not " + std::string(json::type_name(requests->type)));
  }
  if (requests->items.empty()) return bad("\"requests\" is empty");
  if (requests->items.size() > kMaxBatch) {
    return tl::unexpected(BadRequest{"a batch holds at most " + std::to_string(kMaxBatch) + " requests, not " +
                                         std::to_string(requests->items.size()),
                                     http::ErrorCode::batch_too_large});
  }
  broker::Ask shared;
  if (const Value* ctx = o.find("context")) {
    if (auto c = read_context(*ctx, shared); !c) return tl::unexpected(c.error());
  }
  Batch batch;
  for (std::size_t i = 0; i < requests->items.size(); ++i) {
    const Value& item = requests->items[i];
    std::string where = "requests[" + std::to_string(i) + "].";
    if (item.type != Value::Type::object) {
      batch.items.push_back(bad(where.substr(0, where.size() - 1) + " must be an object, not " +
                                std::string(json::type_name(item.type))));
      continue;
    }
    if (auto k = only_known(item, {"ref", "vault", "item", "section", "field", "credential_type", "refresh"}, where);
        !k) {
      batch.items.push_back(tl::unexpected(k.error()));
      continue;
    }
    auto ask = read_credential(item, where, true);
    if (ask) {
      auto refresh = bool_member(item, "refresh", where, false);
      if (!refresh) {
        batch.items.push_back(tl::unexpected(refresh.error()));
        continue;
      }
      ask->refresh = *refresh;
      ask->claimed_service = shared.claimed_service;
      ask->purpose = shared.purpose;
      ask->environment = shared.environment;
      ask->action = "batch-retrieve";
    }
    batch.items.push_back(std::move(ask));
  }
  return batch;
}

Parsed<broker::Ask> read_provision(std::span<const char> body) {
  auto doc = object_body(body);
  if (!doc) return tl::unexpected(doc.error());
  const Value& o = *doc;
  if (auto k = only_known(o, {"type", "context"}, ""); !k) return tl::unexpected(k.error());
  auto type = string_member(o, "type", "");
  if (!type) return tl::unexpected(type.error());
  if (!*type || (*type)->empty()) return bad("\"type\" is required: the catalog's credential type");
  if ((*type)->size() > 128) return bad("\"type\" is longer than 128 bytes");
  broker::Ask ask;
  ask.credential_type = **type;
  ask.action = "provision";
  if (const Value* ctx = o.find("context")) {
    if (auto c = read_context(*ctx, ask); !c) return tl::unexpected(c.error());
  }
  return ask;
}

Parsed<broker::Ask> read_validate(std::span<const char> body) {
  auto doc = object_body(body);
  if (!doc) return tl::unexpected(doc.error());
  const Value& o = *doc;
  if (o.find("value") != nullptr || o.find("secret") != nullptr) {
    return bad("validate never takes a credential's value: name it by \"ref\" or \"credential_type\"");
  }
  if (auto k = only_known(o, {"ref", "credential_type", "context"}, ""); !k) return tl::unexpected(k.error());
  auto ask = read_credential(o, "", false);
  if (!ask) return ask;
  ask->action = "validate";
  if (const Value* ctx = o.find("context")) {
    if (auto c = read_context(*ctx, *ask); !c) return tl::unexpected(c.error());
  }
  return ask;
}

Parsed<broker::Ask> read_secret_query(std::string_view raw) {
  auto params = query_params(raw, {"ref", "refresh", "purpose"});
  if (!params) return tl::unexpected(params.error());
  auto options = get_options(*params);
  if (!options) return tl::unexpected(options.error());
  broker::Ask ask;
  ask.action = "secret";
  ask.refresh = options->refresh;
  ask.purpose = std::move(options->purpose);
  auto ref = params->find("ref");
  if (ref == params->end()) return bad("the query needs ref=op://VAULT/ITEM[/SECTION]/FIELD");
  auto r = reference(ref->second);
  if (!r) return tl::unexpected(r.error());
  ask.ref = std::move(*r);
  return ask;
}

Parsed<GetOptions> read_get_options(std::string_view raw) {
  auto params = query_params(raw, {"purpose", "refresh"});
  if (!params) return tl::unexpected(params.error());
  return get_options(*params);
}

Parsed<RevokeRequest> read_revoke(std::span<const char> body) {
  auto doc = object_body(body);
  if (!doc) return tl::unexpected(doc.error());
  const Value& o = *doc;
  if (auto k = only_known(o, {"ref", "credential_type", "service", "all", "reason"}, ""); !k) {
    return tl::unexpected(k.error());
  }
  RevokeRequest r;
  std::optional<std::string> ref, type, service, reason;
  if (auto m = string_members(o, "", {{"ref", &ref}, {"credential_type", &type}, {"service", &service}, {"reason", &reason}});
      !m) {
    return tl::unexpected(m.error());
  }
  bool all = false;
  if (const Value* a = o.find("all")) {
    if (a->type != Value::Type::boolean || !a->boolean) return bad("\"all\" must be true when given");
    all = true;
  }
  int forms = (ref ? 1 : 0) + (type ? 1 : 0) + (service ? 1 : 0) + (all ? 1 : 0);
  if (forms != 1) {
    return bad(std::string(forms == 0 ? "say what to revoke" : "say what to revoke one way only") +
               ": \"ref\", \"credential_type\", \"service\", or \"all\": true");
  }
  if (ref) {
    auto parsed = reference(*ref);
    if (!parsed) return tl::unexpected(parsed.error());
    r.kind = policy::Revocation::Kind::ref;
    r.ref = std::move(*parsed);
  } else if (type) {
    if (type->empty() || type->size() > 128) return bad("\"credential_type\" must be 1 to 128 bytes");
    r.kind = policy::Revocation::Kind::type;
    r.target = *type;
  } else if (service) {
    if (service->empty() || service->size() > 128) return bad("\"service\" must be 1 to 128 bytes");
    r.kind = policy::Revocation::Kind::service;
    r.target = *service;
  }
  if (reason) {
    if (reason->size() > 512) return bad("\"reason\" is longer than 512 bytes");
    if (!is_valid_utf8(*reason)) return bad("\"reason\" is not valid UTF-8");
    r.reason = *reason;
  }
  return r;
}

Parsed<AuditQuery> read_audit_query(std::string_view raw) {
  auto params = query_params(raw, {"service", "since", "limit"});
  if (!params) return tl::unexpected(params.error());
  AuditQuery q;
  if (auto it = params->find("service"); it != params->end()) {
    if (it->second.empty() || it->second.size() > 128) return bad("\"service\" must be 1 to 128 bytes");
    q.service = it->second;
  }
  if (auto it = params->find("since"); it != params->end()) {
    q.since = parse_rfc3339(it->second);
    if (!q.since) return bad("\"since\" must be an RFC 3339 time, e.g. 2026-12-02T15:00:00Z");
  }
  if (auto it = params->find("limit"); it != params->end()) {
    std::uint64_t n = 0;
    if (!parse_u64(it->second, n) || n < 1 || n > 1000) return bad("\"limit\" must be a whole number from 1 to 1000");
    q.limit = static_cast<std::size_t>(n);
  }
  return q;
}

}  // namespace chitty::api
