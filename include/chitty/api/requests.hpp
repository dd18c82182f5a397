// Reading the API's request bodies and query strings — strictly (SPEC §4):
// malformed JSON, wrong types, unknown fields, duplicate keys, deep nesting,
// invalid references and oversized batches are each refused with a precise
// message (400, or 400 batch_too_large), never a crash. Pure functions on
// bytes, so the fuzz target drives them directly.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "chitty/base/clock.hpp"
#include "chitty/broker/broker.hpp"
#include "chitty/http/errors.hpp"
#include "chitty/policy/revocations.hpp"

namespace chitty::api {

struct BadRequest {
  std::string message;
  http::ErrorCode code = http::ErrorCode::bad_request;
};
template <typename T>
using Parsed = tl::expected<T, BadRequest>;

inline constexpr std::size_t kMaxBatch = 10;

// POST /api/onepassword/retrieve: {ref} | {vault,item,[section],field} |
// {credential_type}, plus context {service,purpose,environment}, refresh.
Parsed<broker::Ask> read_retrieve(std::span<const char> body);

// POST /api/onepassword/batch-retrieve: {"requests":[…], "context":{…}}.
// The whole body is refused when its shape is wrong or it has more than 10
// requests (batch_too_large); one malformed item is that item's error.
struct Batch {
  std::vector<Parsed<broker::Ask>> items;
};
Parsed<Batch> read_batch(std::span<const char> body);

// POST /api/credentials/provision: {type, context}.
Parsed<broker::Ask> read_provision(std::span<const char> body);

// POST /api/credentials/validate: {ref} | {credential_type}, never a value.
Parsed<broker::Ask> read_validate(std::span<const char> body);

// GET /v1/secret?ref=op://…&refresh=…&purpose=…
Parsed<broker::Ask> read_secret_query(std::string_view query);

// ?purpose=…&refresh=… (service-token, integration-key).
struct GetOptions {
  std::string purpose;
  bool refresh = false;
};
Parsed<GetOptions> read_get_options(std::string_view query);

// POST /api/onepassword/emergency-revoke[/clear]:
// {ref} | {credential_type} | {service} | {all:true}, plus "reason".
struct RevokeRequest {
  policy::Revocation::Kind kind = policy::Revocation::Kind::all;
  std::optional<catalog::Reference> ref;
  std::string target;  // credential type or service name
  std::string reason;
};
Parsed<RevokeRequest> read_revoke(std::span<const char> body);

// GET /api/credentials/audit?service=…&since=RFC3339&limit=N (1..1000).
struct AuditQuery {
  std::optional<std::string> service;
  std::optional<WallTime> since;
  std::size_t limit = 100;
};
Parsed<AuditQuery> read_audit_query(std::string_view query);

}  // namespace chitty::api
