#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "chitty/api/requests.hpp"

using chitty::api::BadRequest;
using chitty::http::ErrorCode;
using Catch::Matchers::Contains;
namespace api = chitty::api;

namespace {

std::span<const char> bytes(const std::string& s) { return {s.data(), s.size()}; }

template <typename T>
std::string error_of(const api::Parsed<T>& r) {
  REQUIRE_FALSE(r.has_value());
  return r.error().message;
}

}  // namespace

TEST_CASE("retrieve bodies: the three ways to name a credential, context and refresh", "[api][requests]") {
  auto by_ref = api::read_retrieve(bytes(R"({"ref":"op://Vault/Item/field","refresh":true,
    "context":{"service":"svc","purpose":"api-call","environment":"prod"}})"));
  REQUIRE(by_ref);
  CHECK(by_ref->ref->display() == "op://Vault/Item/field");
  CHECK(by_ref->refresh);
  CHECK(by_ref->claimed_service == "svc");
  CHECK(by_ref->purpose == "api-call");
  CHECK(by_ref->environment == "prod");
  auto by_parts = api::read_retrieve(bytes(R"({"vault":"V","item":"I","section":"S","field":"F"})"));
  REQUIRE(by_parts);
  CHECK(by_parts->ref->display() == "op://V/I/S/F");
  auto by_type = api::read_retrieve(bytes(R"({"credential_type":"openai_api_key"})"));
  REQUIRE(by_type);
  CHECK(by_type->credential_type == "openai_api_key");
  CHECK_FALSE(by_type->claimed_service);
}

TEST_CASE("malformed request bodies are each refused with a precise message", "[api][requests]") {
  struct Case {
    const char* body;
    const char* says;
  };
  const std::vector<Case> retrieve_cases = {
      {"", "needs a JSON body"},
      {"   ", "at byte"},
      {"{", "at byte"},
      {"[]", "must be a JSON object, not array"},
      {"\"x\"", "must be a JSON object, not string"},
      {"null", "not null"},
      {"{\"ref\":\"op://a/b/c\"} x", "at byte"},
      {"{\"ref\":\"op://a/b/c\",\"ref\":\"op://a/b/d\"}", "duplicate"},
      {"{\"ref\":1}", "\"ref\" must be a string, not number"},
      {"{\"ref\":null}", "must be a string, not null"},
      {"{\"ref\":[\"op://a/b/c\"]}", "must be a string, not array"},
      {"{\"credential_type\":true}", "must be a string, not boolean"},
      {"{\"nope\":1}", "unknown field \"nope\""},
      {"{}", "name the credential"},
      {"{\"ref\":\"op://a/b/c\",\"credential_type\":\"t\"}", "one way only"},
      {"{\"ref\":\"op://a/b/c\",\"vault\":\"v\"}", "one way only"},
      {"{\"vault\":\"v\",\"item\":\"i\"}", "\"field\" is missing"},
      {"{\"item\":\"i\",\"field\":\"f\"}", "\"vault\" is missing"},
      {"{\"vault\":\"v/w\",\"item\":\"i\",\"field\":\"f\"}", "may not contain '/'"},
      {"{\"credential_type\":\"\"}", "is empty"},
      {"{\"ref\":\"\"}", "invalid reference"},
      {"{\"ref\":\"op://\"}", "invalid reference"},
      {"{\"ref\":\"https://a/b/c\"}", "invalid reference"},
      {"{\"ref\":\"op://a/b\"}", "2 parts given"},
      {"{\"ref\":\"op://a/b/c/d/e\"}", "5 parts given"},
      {"{\"ref\":\"op://a//c\"}", "invalid reference"},
      {"{\"ref\":\"op://a/../c\"}", "invalid reference"},
      {"{\"ref\":\"op://a/./c\"}", "invalid reference"},
      {"{\"ref\":\"op://a/b\\u0000/c\"}", "invalid reference"},
      {"{\"ref\":\"op://a/b\\n/c\"}", "invalid reference"},
      {"{\"ref\":\"op://a/b/c?attribute=otp\"}", "invalid reference"},
      {"{\"ref\":\"op://a/b/c#x\"}", "invalid reference"},
      {"{\"ref\":\"op://a/b/c\",\"refresh\":\"yes\"}", "\"refresh\" must be a boolean"},
      {"{\"ref\":\"op://a/b/c\",\"context\":[]}", "\"context\" must be an object"},
      {"{\"ref\":\"op://a/b/c\",\"context\":{\"who\":\"x\"}}", "unknown field context.\"who\""},
      {"{\"ref\":\"op://a/b/c\",\"context\":{\"service\":5}}", "context.\"service\" must be a string"},
      {"{\"ref\":\"op://a/b/c\",\"context\":{\"purpose\":{}}}", "context.\"purpose\" must be a string"},
      {"{\"ref\":\"op://a/b/c\\ud800\"}", "at byte"},
      {"{\"ref\":\"\xff\"}", "at byte"},
      {"{\"ref\":\"op://a/b/c\",}", "at byte"},
      {"{'ref':'op://a/b/c'}", "at byte"},
      {"{\"ref\":\"op://a/b/c\"\"x\":1}", "at byte"},
      {"{\"ref\":01}", "at byte"},
      {"{\"refresh\":tru}", "at byte"},
  };
  for (const auto& c : retrieve_cases) {
    INFO(c.body);
    CHECK_THAT(error_of(api::read_retrieve(bytes(c.body))), Contains(c.says));
  }
  // Nesting beyond the limit, and a reference beyond its length limit.
  std::string deep = "{\"context\":" + std::string(40, '[') + std::string(40, ']') + "}";
  CHECK_THAT(error_of(api::read_retrieve(bytes(deep))), Contains("deep"));
  std::string longref = "{\"ref\":\"op://v/i/" + std::string(2000, 'f') + "\"}";
  CHECK_THAT(error_of(api::read_retrieve(bytes(longref))), Contains("invalid reference"));
  std::string longctx = "{\"ref\":\"op://a/b/c\",\"context\":{\"purpose\":\"" + std::string(300, 'p') + "\"}}";
  CHECK_THAT(error_of(api::read_retrieve(bytes(longctx))), Contains("at most 256"));
}

TEST_CASE("batch bodies: at most 10, per-item errors, a shared context", "[api][requests][batch]") {
  auto ok = api::read_batch(bytes(R"({"requests":[{"ref":"op://a/b/c"},{"credential_type":"t","refresh":true},
    {"ref":"op://bad"},7,{"zzz":1}],"context":{"service":"svc","purpose":"p"}})"));
  REQUIRE(ok);
  REQUIRE(ok->items.size() == 5);
  REQUIRE(ok->items[0]);
  CHECK(ok->items[0]->claimed_service == "svc");
  CHECK(ok->items[0]->purpose == "p");
  CHECK(ok->items[1]->refresh);
  CHECK_THAT(ok->items[2].error().message, Contains("requests[2].") && Contains("invalid reference"));
  CHECK_THAT(ok->items[3].error().message, Contains("requests[3] must be an object"));
  CHECK_THAT(ok->items[4].error().message, Contains("unknown field requests[4].\"zzz\""));

  std::string eleven = R"({"requests":[)";
  for (int i = 0; i < 11; ++i) eleven += std::string(i ? "," : "") + R"({"ref":"op://a/b/c"})";
  eleven += "]}";
  auto big = api::read_batch(bytes(eleven));
  REQUIRE_FALSE(big);
  CHECK(big.error().code == ErrorCode::batch_too_large);
  CHECK_THAT(big.error().message, Contains("at most 10") && Contains("not 11"));
  for (auto [body, says] : std::vector<std::pair<std::string, std::string>>{
           {R"({})", "needs \"requests\""},
           {R"({"requests":{}})", "must be an array"},
           {R"({"requests":[]})", "is empty"},
           {R"({"requests":[{"ref":"op://a/b/c"}],"context":{"service":1}})", "context.\"service\" must be a string"},
           {R"({"requests":[{"ref":"op://a/b/c"}],"extra":1})", "unknown field \"extra\""},
       }) {
    INFO(body);
    auto r = api::read_batch(bytes(body));
    REQUIRE_FALSE(r);
    CHECK(r.error().code == ErrorCode::bad_request);
    CHECK_THAT(r.error().message, Contains(says));
  }
  // Items cannot carry their own context.
  auto own = api::read_batch(bytes(R"({"requests":[{"ref":"op://a/b/c","context":{}}]})"));
  REQUIRE(own);
  CHECK_THAT(own->items[0].error().message, Contains("unknown field requests[0].\"context\""));
}

TEST_CASE("provision, validate and the query strings", "[api][requests]") {
  auto p = api::read_provision(bytes(R"({"type":"openai_api_key","context":{"purpose":"x"}})"));
  REQUIRE(p);
  CHECK(p->credential_type == "openai_api_key");
  CHECK(p->action == "provision");
  CHECK_THAT(error_of(api::read_provision(bytes(R"({})"))), Contains("\"type\" is required"));
  CHECK_THAT(error_of(api::read_provision(bytes(R"({"type":2})"))), Contains("must be a string"));

  auto v = api::read_validate(bytes(R"({"ref":"op://a/b/c"})"));
  REQUIRE(v);
  CHECK(v->action == "validate");
  CHECK_THAT(error_of(api::read_validate(bytes(R"({"ref":"op://a/b/c","value":"sk-123"})"))),
             Contains("never takes a credential's value"));
  CHECK_THAT(error_of(api::read_validate(bytes(R"({"vault":"v","item":"i","field":"f"})"))),
             Contains("unknown field \"vault\""));

  auto q = api::read_secret_query("ref=op://V%20x/I/f&refresh=true&purpose=api");
  REQUIRE(q);
  CHECK(q->ref->vault == "V x");
  CHECK(q->refresh);
  CHECK(q->purpose == "api");
  for (auto [query, says] : std::vector<std::pair<std::string, std::string>>{
           {"", "needs ref="},
           {"ref=op://a/b/c&ref=op://a/b/d", "given twice"},
           {"ref=op://a/b/c&refresh=1", "true or false"},
           {"ref=op://a/b/c&x=1", "unknown query parameter \"x\""},
           {"ref=op://a/b", "2 parts given"},
           {"ref=%zz", "malformed query"},
       }) {
    INFO(query);
    CHECK_THAT(error_of(api::read_secret_query(query)), Contains(says));
  }
  auto g = api::read_get_options("purpose=p&refresh=false");
  REQUIRE(g);
  CHECK(g->purpose == "p");
  CHECK_THAT(error_of(api::read_get_options("ref=x")), Contains("unknown query parameter"));

  auto a = api::read_audit_query("service=web&since=2026-12-02T15:00:00Z&limit=5");
  REQUIRE(a);
  CHECK(a->service == "web");
  CHECK(a->limit == 5);
  REQUIRE(a->since);
  CHECK_THAT(error_of(api::read_audit_query("limit=0")), Contains("1 to 1000"));
  CHECK_THAT(error_of(api::read_audit_query("limit=1001")), Contains("1 to 1000"));
  CHECK_THAT(error_of(api::read_audit_query("since=yesterday")), Contains("RFC 3339"));
}

TEST_CASE("emergency-revoke bodies name one thing to revoke", "[api][requests][emergency]") {
  using Kind = chitty::policy::Revocation::Kind;
  auto ref = api::read_revoke(bytes(R"({"ref":"op://V/I/f","reason":"leaked"})"));
  REQUIRE(ref);
  CHECK(ref->kind == Kind::ref);
  CHECK(ref->reason == "leaked");
  CHECK(api::read_revoke(bytes(R"({"credential_type":"t"})"))->kind == Kind::type);
  CHECK(api::read_revoke(bytes(R"({"service":"web"})"))->kind == Kind::service);
  CHECK(api::read_revoke(bytes(R"({"all":true})"))->kind == Kind::all);
  for (auto [body, says] : std::vector<std::pair<std::string, std::string>>{
           {R"({})", "say what to revoke"},
           {R"({"reason":"x"})", "say what to revoke"},
           {R"({"all":true,"service":"web"})", "one way only"},
           {R"({"all":false})", "must be true"},
           {R"({"ref":"op://x"})", "invalid reference"},
           {R"({"service":""})", "1 to 128"},
           {R"({"all":true,"why":"x"})", "unknown field"},
       }) {
    INFO(body);
    CHECK_THAT(error_of(api::read_revoke(bytes(body))), Contains(says));
  }
  std::string long_reason = R"({"all":true,"reason":")" + std::string(600, 'r') + "\"}";
  CHECK_THAT(error_of(api::read_revoke(bytes(long_reason))), Contains("longer than 512"));
}
