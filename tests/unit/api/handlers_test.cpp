// The route handlers through the in-process loopback (tests/fakes/
// api_loopback.hpp): request bytes → parser → router → handler → a capturing
// Responder, with the fake upstream completed by hand, a manual clock and
// the audit events in memory. Every test checks the answer and what was
// recorded.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "api_loopback.hpp"
#include "json_reader.hpp"

using namespace std::chrono_literals;
using chitty::audit::Decision;
using chitty::audit::Event;
using chitty::audit::Kind;
using chitty::testing::ApiLoopback;
using chitty::testing::caller_with_uid;
using chitty::testing::Exchange;
using chitty::testing::http_get;
using chitty::testing::http_post;
using chitty::testing::Json;
using chitty::testing::LoopbackOptions;
using chitty::testing::read_json;
using chitty::testing::Reply;
using Catch::Matchers::Contains;

namespace {

const chitty::identity::Identity kApp = caller_with_uid(1000);
const chitty::identity::Identity kBatch = caller_with_uid(2000);
const chitty::identity::Identity kOps = caller_with_uid(3000, 5151, "/usr/bin/opsctl");
const chitty::identity::Identity kStranger = caller_with_uid(5000, 6161, "/usr/bin/stranger");

const Reply& reply_of(const std::shared_ptr<Exchange>& ex) {
  REQUIRE(ex->answered());
  CHECK(ex->answers == 1);
  return *ex->reply;
}

Json json_of(const Reply& r) {
  auto doc = read_json(r.body);
  REQUIRE(doc.has_value());
  return *doc;
}

std::string text_at(const Json& doc, std::initializer_list<std::string_view> path) {
  const Json* j = &doc;
  for (auto key : path) {
    j = j->find(key);
    REQUIRE(j != nullptr);
  }
  return j->text;
}

std::string error_code(const Reply& r) { return text_at(json_of(r), {"error", "code"}); }

// The one event recorded, checked to be the only one.
Event only_event(const ApiLoopback& f) {
  auto events = f.events();
  REQUIRE(events.size() == 1);
  return events.front();
}

}  // namespace

// ---------------------------------------------------------------------------
// retrieve

TEST_CASE("retrieve: a granted request waits on the fetch, then answers the value and records one allow",
          "[api][handlers][retrieve]") {
  ApiLoopback f;
  auto ex = f.send(http_post("/api/onepassword/retrieve", R"({"credential_type":"openai_api_key"})"), kApp);
  CHECK(ex->route == "/api/onepassword/retrieve");
  CHECK(ex->declared_sensitive);  // counted against max_secret_responses before the handler returned
  CHECK_FALSE(ex->answered());
  CHECK(f.events().empty());  // nothing decided yet
  REQUIRE(f.primary->pending() == 1);
  CHECK(f.primary->pending_key() == "op://ai/openai/api_key");
  f.primary->answer("sk-loopback");

  const Reply& r = reply_of(ex);
  CHECK(r.status == 200);
  CHECK(r.content_type == "application/json");
  CHECK(r.sensitive);  // the body lives in locked memory
  CHECK(r.header("X-Cache") == "MISS");
  CHECK(r.header("X-Chitty-Mode") == "normal");
  CHECK(r.header("Age") == "0");
  CHECK_THAT(r.head, Contains("HTTP/1.1 200 OK\r\n"));
  CHECK_THAT(r.head, Contains("X-Request-Id: " + ex->request_id + "\r\n"));
  Json body = json_of(r);
  CHECK(body.find("success")->boolean);
  CHECK(text_at(body, {"credential", "value"}) == "sk-loopback");
  CHECK(text_at(body, {"credential", "ref"}) == "op://AI/OpenAI/api_key");
  CHECK(text_at(body, {"credential", "source"}) == "1password");
  CHECK(text_at(body, {"metadata", "cache"}) == "miss");
  CHECK(text_at(body, {"metadata", "request_id"}) == ex->request_id);

  Event ev = only_event(f);
  CHECK(ev.kind == Kind::decision);
  CHECK(ev.decision == Decision::allow);
  CHECK(ev.action == "retrieve");
  CHECK(ev.service == "app");
  CHECK(ev.uid == 1000);
  CHECK(ev.pid == 4242);
  CHECK(ev.ref == "op://ai/openai/api_key");
  CHECK(ev.credential_type == "openai_api_key");
  CHECK(ev.cache == "miss");
  CHECK(ev.source == "1password");
  CHECK(ev.code.empty());
  CHECK(ev.request_id == ex->request_id);

  // The second is a cache hit, answered at once.
  f.clock.advance(3s);
  auto again = f.send(http_post("/api/onepassword/retrieve", R"({"ref":"op://AI/OpenAI/api_key"})"), kApp);
  const Reply& hit = reply_of(again);
  CHECK(hit.status == 200);
  CHECK(hit.header("X-Cache") == "HIT");
  CHECK(hit.header("Age") == "3");
  CHECK(f.primary->fetches == 1);
  auto events = f.events();
  REQUIRE(events.size() == 2);
  CHECK(events[1].decision == Decision::allow);
  CHECK(events[1].cache == "hit");
}

TEST_CASE("retrieve: refused by policy is 403 with exactly one deny event, and no fetch", "[api][handlers][retrieve]") {
  ApiLoopback f;
  auto ex = f.send(http_post("/api/onepassword/retrieve", R"({"ref":"op://AI/Anthropic/api_key"})"), kApp);
  const Reply& r = reply_of(ex);
  CHECK(r.status == 403);
  CHECK(error_code(r) == "forbidden");
  CHECK_FALSE(r.sensitive);
  CHECK(f.primary->fetches == 0);
  Event ev = only_event(f);
  CHECK(ev.decision == Decision::deny);
  CHECK(ev.code == "forbidden");
  CHECK(ev.action == "retrieve");
  CHECK(ev.service == "app");
  CHECK(ev.ref == "op://ai/anthropic/api_key");
  CHECK(ev.request_id == ex->request_id);
}

TEST_CASE("retrieve: a context.service that is not the caller's is 403 context_mismatch", "[api][handlers][retrieve]") {
  ApiLoopback f;
  auto ex = f.send(http_post("/api/onepassword/retrieve",
                             R"({"credential_type":"openai_api_key","context":{"service":"ops"}})"),
                   kApp);
  const Reply& r = reply_of(ex);
  CHECK(r.status == 403);
  CHECK(error_code(r) == "context_mismatch");
  Event ev = only_event(f);
  CHECK(ev.decision == Decision::deny);
  CHECK(ev.code == "context_mismatch");
  CHECK(f.primary->fetches == 0);
}

TEST_CASE("retrieve: a malformed body is 400 with an audit event, never a fetch", "[api][handlers][retrieve]") {
  ApiLoopback f;
  for (const char* body : {"", "{", R"({"ref":1})", R"({"nope":1})", R"({"ref":"op://a/../c"})"}) {
    INFO(body);
    auto ex = f.send(http_post("/api/onepassword/retrieve", body), kApp);
    const Reply& r = reply_of(ex);
    CHECK(r.status == 400);
    CHECK(error_code(r) == "bad_request");
  }
  CHECK(f.primary->fetches == 0);
  auto events = f.events();
  REQUIRE(events.size() == 5);
  for (const auto& ev : events) {
    CHECK(ev.decision == Decision::deny);
    CHECK(ev.code == "bad_request");
    CHECK(ev.action == "retrieve");
    CHECK(ev.service == "app");
    CHECK(ev.ref.empty());  // the request named nothing usable
    CHECK_FALSE(ev.reason.empty());
  }
}

TEST_CASE("retrieve: a caller without a service is charged the shared bucket before its body is read",
          "[api][handlers][retrieve][rate]") {
  ApiLoopback f;  // the shared bucket holds 3 an hour
  // Malformed bodies: each costs a token first, then is refused for its body.
  for (int i = 0; i < 3; ++i) {
    auto ex = f.send(http_post("/api/onepassword/retrieve", "{"), kStranger);
    CHECK(reply_of(ex).status == 400);
  }
  // The bucket is empty: refused before the body is looked at.
  auto limited = f.send(http_post("/api/onepassword/retrieve", "{"), kStranger);
  const Reply& r = reply_of(limited);
  CHECK(r.status == 429);
  CHECK(error_code(r) == "rate_limited");
  REQUIRE(r.header("Retry-After").has_value());
  CHECK(std::stoi(*r.header("Retry-After")) >= 1);
  // A well-formed one is refused the same way: no fetch, no forbidden.
  auto well_formed = f.send(http_post("/api/onepassword/retrieve", R"({"credential_type":"openai_api_key"})"), kStranger);
  CHECK(reply_of(well_formed).status == 429);
  CHECK(f.primary->fetches == 0);

  auto events = f.events();
  REQUIRE(events.size() == 5);
  for (int i = 0; i < 3; ++i) CHECK(events[i].code == "bad_request");
  for (int i = 3; i < 5; ++i) {
    CHECK(events[i].decision == Decision::deny);
    CHECK(events[i].code == "rate_limited");
    CHECK(events[i].action == "retrieve");
    CHECK(events[i].service.empty());
    CHECK(events[i].uid == 5000);
  }
  // A configured service has its own bucket.
  auto app = f.send(http_post("/api/onepassword/retrieve", "{"), kApp);
  CHECK(reply_of(app).status == 400);
  // An hour later the shared bucket is full again.
  f.clock.advance(1h);
  auto later = f.send(http_post("/api/onepassword/retrieve", R"({"credential_type":"openai_api_key"})"), kStranger);
  CHECK(reply_of(later).status == 403);  // admitted; no service, so nothing to read
  CHECK(f.events().back().code == "forbidden");
}

TEST_CASE("retrieve: a service's own rate limit refuses with 429 and Retry-After", "[api][handlers][retrieve][rate]") {
  ApiLoopback f;  // "batch" may ask twice an hour
  auto first = f.send(http_post("/api/onepassword/retrieve", R"({"credential_type":"db_password"})"), kBatch);
  f.primary->answer("pg");
  CHECK(reply_of(first).status == 200);
  auto second = f.send(http_post("/api/onepassword/retrieve", R"({"credential_type":"db_password"})"), kBatch);
  CHECK(reply_of(second).status == 200);  // a hit
  auto third = f.send(http_post("/api/onepassword/retrieve", R"({"credential_type":"db_password"})"), kBatch);
  const Reply& r = reply_of(third);
  CHECK(r.status == 429);
  CHECK(r.header("Retry-After").has_value());
  auto events = f.events();
  REQUIRE(events.size() == 3);
  CHECK(events[2].decision == Decision::deny);
  CHECK(events[2].code == "rate_limited");
  CHECK(events[2].service == "batch");
}

TEST_CASE("retrieve: a grant that cannot be audited is refused 503 and carries no value", "[api][handlers][retrieve]") {
  ApiLoopback f;
  chitty::audit::MemoryRecorder full(0);  // records nothing
  f.ctx.audit = &full;
  auto ex = f.send(http_post("/api/onepassword/retrieve", R"({"credential_type":"openai_api_key"})"), kApp);
  f.primary->answer("sk-never-sent");
  const Reply& r = reply_of(ex);
  CHECK(r.status == 503);
  CHECK(error_code(r) == "audit_unavailable");
  CHECK_FALSE(r.sensitive);
  CHECK_THAT(r.body, !Contains("sk-never-sent"));
  CHECK(f.events().empty());
  CHECK(full.recorded() == 0);
}

TEST_CASE("retrieve: a client gone before the fetch completes gets nothing, but the decision is recorded",
          "[api][handlers][retrieve]") {
  ApiLoopback f;
  auto ex = f.send(http_post("/api/onepassword/retrieve", R"({"credential_type":"openai_api_key"})"), kApp);
  f.hang_up();
  f.primary->answer("sk-late");
  CHECK_FALSE(ex->answered());
  CHECK(ex->answers == 0);
  Event ev = only_event(f);
  CHECK(ev.decision == Decision::allow);
  CHECK(ev.cache == "miss");
}

// ---------------------------------------------------------------------------
// GET /v1/secret

TEST_CASE("/v1/secret: the raw value as text/plain, recorded as action secret", "[api][handlers][secret]") {
  ApiLoopback f;
  auto ex = f.send(http_get("/v1/secret?ref=op://Infra/Postgres/password"), kApp);
  CHECK(ex->route == "/v1/secret");
  CHECK(ex->declared_sensitive);
  REQUIRE(f.primary->pending() == 1);
  f.primary->answer("pg-secret");
  const Reply& r = reply_of(ex);
  CHECK(r.status == 200);
  CHECK(r.content_type == "text/plain; charset=utf-8");
  CHECK(r.body == "pg-secret");
  CHECK(r.sensitive);
  CHECK(r.header("X-Cache") == "MISS");
  Event ev = only_event(f);
  CHECK(ev.decision == Decision::allow);
  CHECK(ev.action == "secret");
  CHECK(ev.ref == "op://infra/postgres/password");
}

TEST_CASE("/v1/secret: a binary value is application/octet-stream", "[api][handlers][secret]") {
  ApiLoopback f;
  auto ex = f.send(http_get("/v1/secret?ref=op://Infra/Blob/file"), kApp);
  f.primary->answer(std::string("\xff\x00\x01", 3));
  const Reply& r = reply_of(ex);
  CHECK(r.status == 200);
  CHECK(r.content_type == "application/octet-stream");
  CHECK(r.body == std::string("\xff\x00\x01", 3));
}

TEST_CASE("/v1/secret: refusals and malformed queries, each with one event", "[api][handlers][secret]") {
  ApiLoopback f;
  auto denied = f.send(http_get("/v1/secret?ref=op://Other/Item/field"), kApp);
  CHECK(reply_of(denied).status == 403);
  auto missing = f.send(http_get("/v1/secret?refresh=true"), kApp);
  const Reply& m = reply_of(missing);
  CHECK(m.status == 400);
  CHECK_THAT(json_of(m).find("error")->find("message")->text, Contains("ref=op://"));
  auto unknown = f.send(http_get("/v1/secret?ref=op://Infra/a/b&color=red"), kApp);
  CHECK(reply_of(unknown).status == 400);
  CHECK(f.primary->fetches == 0);
  auto events = f.events();
  REQUIRE(events.size() == 3);
  CHECK(events[0].code == "forbidden");
  CHECK(events[0].action == "secret");
  CHECK(events[1].code == "bad_request");
  CHECK(events[1].action == "retrieve");  // (a query that does not parse names no action of its own)
  CHECK(events[2].code == "bad_request");
}

// ---------------------------------------------------------------------------
// batch-retrieve

TEST_CASE("batch: per-item results, one event per item, the batch answered when the last fetch completes",
          "[api][handlers][batch]") {
  ApiLoopback f;
  auto ex = f.send(http_post("/api/onepassword/batch-retrieve",
                             R"({"requests":[{"credential_type":"openai_api_key"},)"
                             R"({"ref":"op://AI/Anthropic/api_key"},{"nope":1},)"
                             R"({"ref":"op://Infra/Postgres/password"}]})"),
                   kApp);
  CHECK(ex->route == "/api/onepassword/batch-retrieve");
  CHECK(ex->declared_sensitive);
  CHECK_FALSE(ex->answered());
  REQUIRE(f.primary->pending() == 2);
  f.primary->answer("sk-1");
  CHECK_FALSE(ex->answered());  // one item still waits
  f.primary->answer("pg-2");

  const Reply& r = reply_of(ex);
  CHECK(r.status == 200);
  CHECK(r.sensitive);
  Json body = json_of(r);
  CHECK_FALSE(body.find("success")->boolean);  // not every item succeeded
  const Json* results = body.find("results");
  REQUIRE(results != nullptr);
  REQUIRE(results->items.size() == 4);
  CHECK(results->items[0].find("success")->boolean);
  CHECK(text_at(results->items[0], {"credential", "value"}) == "sk-1");
  CHECK(text_at(results->items[0], {"index"}) == "0");
  CHECK(text_at(results->items[1], {"error", "code"}) == "forbidden");
  CHECK(text_at(results->items[2], {"error", "code"}) == "bad_request");
  CHECK(text_at(results->items[3], {"credential", "value"}) == "pg-2");

  auto events = f.events();
  REQUIRE(events.size() == 4);
  CHECK(events[0].decision == Decision::allow);
  CHECK(events[0].request_id == ex->request_id + "#0");
  CHECK(events[1].decision == Decision::deny);
  CHECK(events[1].code == "forbidden");
  CHECK(events[1].request_id == ex->request_id + "#1");
  CHECK(events[2].decision == Decision::deny);
  CHECK(events[2].code == "bad_request");
  CHECK(events[2].action == "batch-retrieve");
  CHECK(events[3].decision == Decision::allow);
  CHECK(events[3].ref == "op://infra/postgres/password");
}

TEST_CASE("batch: a body of the wrong shape is refused whole, with one event", "[api][handlers][batch]") {
  ApiLoopback f;
  std::string eleven = R"({"requests":[)";
  for (int i = 0; i < 11; ++i) eleven += std::string(i ? "," : "") + R"({"credential_type":"openai_api_key"})";
  eleven += "]}";
  auto big = f.send(http_post("/api/onepassword/batch-retrieve", eleven), kApp);
  const Reply& r = reply_of(big);
  CHECK(r.status == 400);
  CHECK(error_code(r) == "batch_too_large");
  auto empty = f.send(http_post("/api/onepassword/batch-retrieve", R"({"requests":[]})"), kApp);
  CHECK(reply_of(empty).status == 400);
  CHECK(f.primary->fetches == 0);
  auto events = f.events();
  REQUIRE(events.size() == 2);
  CHECK(events[0].code == "batch_too_large");
  CHECK(events[0].action == "batch-retrieve");
  CHECK(events[1].code == "bad_request");
}

TEST_CASE("batch: every item malformed is answered at once", "[api][handlers][batch]") {
  ApiLoopback f;
  auto ex = f.send(http_post("/api/onepassword/batch-retrieve", R"({"requests":[1,{"ref":2}]})"), kApp);
  const Reply& r = reply_of(ex);
  CHECK(r.status == 200);
  Json body = json_of(r);
  CHECK_FALSE(body.find("success")->boolean);
  REQUIRE(body.find("results")->items.size() == 2);
  auto events = f.events();
  REQUIRE(events.size() == 2);
  for (const auto& ev : events) CHECK(ev.code == "bad_request");
}

// ---------------------------------------------------------------------------
// service-token, integration-key, provision

TEST_CASE("service-token: the target's service token from the services vault", "[api][handlers][by-target]") {
  ApiLoopback f;
  auto ex = f.send(http_get("/api/onepassword/service-token/billing"), kApp);
  CHECK(ex->route == "/api/onepassword/service-token/{target}");
  REQUIRE(f.primary->pending() == 1);
  CHECK(f.primary->pending_key() == "op://chittyos services/billing/service_token");
  f.primary->answer("svc-token");
  const Reply& r = reply_of(ex);
  CHECK(r.status == 200);
  CHECK(text_at(json_of(r), {"credential", "value"}) == "svc-token");
  Event ev = only_event(f);
  CHECK(ev.decision == Decision::allow);
  CHECK(ev.action == "service-token");
}

TEST_CASE("service-token: another target is refused; a bad name or query is 400", "[api][handlers][by-target]") {
  ApiLoopback f;
  auto other = f.send(http_get("/api/onepassword/service-token/payroll"), kApp);
  CHECK(reply_of(other).status == 403);
  auto slash = f.send(http_get("/api/onepassword/service-token/a%2Fb"), kApp);
  const Reply& s = reply_of(slash);
  CHECK(s.status == 400);
  CHECK_THAT(json_of(s).find("error")->find("message")->text, Contains("no '/'"));
  auto query = f.send(http_get("/api/onepassword/service-token/billing?refresh=maybe"), kApp);
  CHECK(reply_of(query).status == 400);
  CHECK(f.primary->fetches == 0);
  auto events = f.events();
  REQUIRE(events.size() == 3);
  CHECK(events[0].code == "forbidden");
  CHECK(events[0].action == "service-token");
  CHECK(events[1].code == "bad_request");
  CHECK(events[2].code == "bad_request");
}

TEST_CASE("integration-key and provision go through the same pipeline", "[api][handlers][by-target]") {
  ApiLoopback f;
  auto key = f.send(http_get("/api/onepassword/integration-key/stripe"), kApp);
  CHECK(key->route == "/api/onepassword/integration-key/{integration}");
  CHECK(reply_of(key).status == 403);  // the app may not read the integrations vault
  auto provision = f.send(http_post("/api/credentials/provision", R"({"type":"openai_api_key"})"), kApp);
  CHECK(provision->route == "/api/credentials/provision");
  f.primary->answer("sk-prov");
  CHECK(reply_of(provision).status == 200);
  auto events = f.events();
  REQUIRE(events.size() == 2);
  CHECK(events[0].action == "integration-key");
  CHECK(events[0].code == "forbidden");
  CHECK(events[1].decision == Decision::allow);
}

// ---------------------------------------------------------------------------
// validate

TEST_CASE("validate: the status only, never the value, recorded as an allow without a cache state",
          "[api][handlers][validate]") {
  ApiLoopback f;
  auto ex = f.send(http_post("/api/credentials/validate", R"({"credential_type":"openai_api_key"})"), kApp);
  CHECK(ex->route == "/api/credentials/validate");
  CHECK_FALSE(ex->declared_sensitive);
  f.primary->answer("sk-secret-value");
  const Reply& r = reply_of(ex);
  CHECK(r.status == 200);
  CHECK_FALSE(r.sensitive);
  CHECK_THAT(r.body, !Contains("sk-secret-value"));
  Json body = json_of(r);
  CHECK(body.find("valid")->boolean);
  CHECK(text_at(body, {"status"}) == "active");
  CHECK(body.find("expires_at")->type == Json::Type::string);
  Event ev = only_event(f);
  CHECK(ev.decision == Decision::allow);
  CHECK(ev.action == "validate");
  CHECK(ev.code.empty());
  CHECK(ev.cache.empty());
}

TEST_CASE("validate: not found and revoked are statuses; refused by policy is 403; malformed is 400",
          "[api][handlers][validate]") {
  ApiLoopback f;
  auto missing = f.send(http_post("/api/credentials/validate", R"({"ref":"op://Infra/Gone/password"})"), kApp);
  f.primary->fail(chitty::upstream::FetchError::not_found, "no such item");
  const Reply& m = reply_of(missing);
  CHECK(m.status == 200);
  CHECK_FALSE(json_of(m).find("valid")->boolean);
  CHECK(text_at(json_of(m), {"status"}) == "unknown");

  auto denied = f.send(http_post("/api/credentials/validate", R"({"ref":"op://AI/Anthropic/api_key"})"), kApp);
  const Reply& d = reply_of(denied);
  CHECK(d.status == 403);
  CHECK(error_code(d) == "forbidden");

  auto bad = f.send(http_post("/api/credentials/validate", R"({"ref":"op://a/b/c","value":"x"})"), kApp);
  CHECK(reply_of(bad).status == 400);

  auto events = f.events();
  REQUIRE(events.size() == 3);
  CHECK(events[0].decision == Decision::allow);  // a status was told
  CHECK(events[0].code.empty());
  CHECK_FALSE(events[0].reason.empty());
  CHECK(events[1].decision == Decision::deny);
  CHECK(events[1].code == "forbidden");
  CHECK(events[2].decision == Decision::deny);
  CHECK(events[2].code == "bad_request");
  CHECK(events[2].action == "validate");
}

// ---------------------------------------------------------------------------
// emergency revoke, clear, unlock

namespace {

std::string revoke_body(std::string_view ref = "op://Infra/Postgres/password") {
  return R"({"ref":")" + std::string(ref) + R"(","reason":"leaked"})";
}
chitty::testing::HeaderList token(std::string_view t) { return {{"X-Emergency-Token", std::string(t)}}; }
const std::string kToken(ApiLoopback::kEmergencyToken);

}  // namespace

TEST_CASE("emergency revoke: without the token, or with a wrong one, 401 and one revoke event",
          "[api][handlers][emergency]") {
  ApiLoopback f;
  auto none = f.send(http_post("/api/onepassword/emergency-revoke", revoke_body()), kStranger);
  const Reply& n = reply_of(none);
  CHECK(n.status == 401);
  CHECK(error_code(n) == "unauthenticated");
  CHECK_THAT(json_of(n).find("error")->find("message")->text, Contains("X-Emergency-Token"));
  auto wrong = f.send(http_post("/api/onepassword/emergency-revoke", revoke_body(), token("not-the-token")), kStranger);
  const Reply& w = reply_of(wrong);
  CHECK(w.status == 401);
  CHECK(json_of(w).find("error")->find("message")->text == "wrong emergency token");
  CHECK(f.broker->revocations().list().empty());
  CHECK(f.persisted.empty());
  auto events = f.events();
  REQUIRE(events.size() == 2);
  for (const auto& ev : events) {
    CHECK(ev.kind == Kind::revoke);
    CHECK(ev.action == "revoke");
    CHECK(ev.decision == Decision::deny);
    CHECK(ev.code == "unauthenticated");
    CHECK(ev.uid == 5000);
  }
}

TEST_CASE("emergency revoke: not configured is 401 whatever is presented", "[api][handlers][emergency]") {
  LoopbackOptions o;
  o.emergency_token = false;
  ApiLoopback f(o);
  auto ex = f.send(http_post("/api/onepassword/emergency-revoke", revoke_body(), token(kToken)), kOps);
  const Reply& r = reply_of(ex);
  CHECK(r.status == 401);
  CHECK_THAT(json_of(r).find("error")->find("message")->text, Contains("not configured"));
  CHECK(only_event(f).code == "unauthenticated");
}

TEST_CASE("emergency revoke with the right token: saved, in force at once, cleared again", "[api][handlers][emergency]") {
  ApiLoopback f;
  // A value cached before the revocation.
  auto before = f.send(http_get("/v1/secret?ref=op://Infra/Postgres/password"), kApp);
  f.primary->answer("pg-secret");
  REQUIRE(reply_of(before).status == 200);

  auto ex = f.send(http_post("/api/onepassword/emergency-revoke", revoke_body(), token(kToken)), kStranger);
  CHECK(ex->route == "/api/onepassword/emergency-revoke");
  const Reply& r = reply_of(ex);  // the fakes resolve nothing: described at once
  CHECK(r.status == 200);
  Json body = json_of(r);
  CHECK(body.find("success")->boolean);
  CHECK(text_at(body, {"revocation", "kind"}) == "ref");
  CHECK(text_at(body, {"revocation", "reason"}) == "leaked");
  CHECK(text_at(body, {"revocations"}) == "1");
  REQUIRE(f.persisted.size() == 1);
  CHECK(f.persisted[0].list().size() == 1);
  CHECK(f.broker->revocations().list().size() == 1);
  {
    auto events = f.events();
    REQUIRE(events.size() == 2);
    const Event& ev = events[1];
    CHECK(ev.kind == Kind::revoke);
    CHECK(ev.action == "revoke");
    CHECK(ev.decision == Decision::allow);
    CHECK(ev.ref == "op://infra/postgres/password");
    CHECK(ev.revocations_generation == 1);
    CHECK_THAT(ev.reason, Contains("leaked"));
  }

  // The cached copy is gone and nothing is served.
  auto after = f.send(http_get("/v1/secret?ref=op://Infra/Postgres/password"), kApp);
  const Reply& a = reply_of(after);
  CHECK(a.status == 403);
  CHECK(error_code(a) == "revoked");
  CHECK(f.primary->fetches == 1);
  CHECK(f.events().back().code == "revoked");

  // Cleared: saved, then lifted.
  auto clear = f.send(http_post("/api/onepassword/emergency-revoke/clear", revoke_body(), token(kToken)), kStranger);
  CHECK(clear->route == "/api/onepassword/emergency-revoke/clear");
  const Reply& c = reply_of(clear);
  CHECK(c.status == 200);
  CHECK(text_at(json_of(c), {"cleared"}) == "1");
  CHECK(f.broker->revocations().list().empty());
  REQUIRE(f.persisted.size() == 2);
  CHECK(f.persisted[1].list().empty());
  const Event cleared = f.events().back();
  CHECK(cleared.kind == Kind::revoke);
  CHECK(cleared.action == "revoke-clear");
  CHECK(cleared.decision == Decision::allow);
  CHECK(cleared.revocations_generation == 2);

  auto served = f.send(http_get("/v1/secret?ref=op://Infra/Postgres/password"), kApp);
  f.primary->answer("pg-secret-2");
  CHECK(reply_of(served).body == "pg-secret-2");
}

TEST_CASE("emergency revoke: a revocation that cannot be saved is in force anyway, and 503 says so",
          "[api][handlers][emergency]") {
  ApiLoopback f;
  f.persist_fails = true;
  auto ex = f.send(http_post("/api/onepassword/emergency-revoke", R"({"all":true})", token(kToken)), kOps);
  const Reply& r = reply_of(ex);
  CHECK(r.status == 503);
  CHECK(error_code(r) == "storage_unavailable");
  CHECK(f.broker->revocations().list().size() == 1);
  Event ev = only_event(f);
  CHECK(ev.kind == Kind::revoke);
  CHECK(ev.decision == Decision::error);
  CHECK(ev.code == "storage_unavailable");
  // Clearing what cannot be saved leaves it in force.
  auto clear = f.send(http_post("/api/onepassword/emergency-revoke/clear", R"({"all":true})", token(kToken)), kOps);
  CHECK(reply_of(clear).status == 503);
  CHECK(f.broker->revocations().list().size() == 1);
}

TEST_CASE("emergency revoke: the right token with a malformed body or an unknown target", "[api][handlers][emergency]") {
  ApiLoopback f;
  auto bad = f.send(http_post("/api/onepassword/emergency-revoke", R"({"ref":"op://a/b/c","all":true})", token(kToken)),
                    kOps);
  CHECK(reply_of(bad).status == 400);
  auto unknown = f.send(http_post("/api/onepassword/emergency-revoke", R"({"credential_type":"nope"})", token(kToken)),
                        kOps);
  CHECK(reply_of(unknown).status == 404);
  CHECK(f.broker->revocations().list().empty());
  auto events = f.events();
  REQUIRE(events.size() == 2);
  CHECK(events[0].code == "bad_request");
  CHECK(events[1].code == "not_found");
  CHECK(events[1].kind == Kind::revoke);
}

TEST_CASE("emergency revoke: the failure budget per process, other processes, unlock by an admin, the hour",
          "[api][handlers][emergency]") {
  ApiLoopback f;
  const auto guesser = caller_with_uid(5000, 7000);
  for (int i = 0; i < 10; ++i) {
    auto ex = f.send(http_post("/api/onepassword/emergency-revoke", revoke_body(), token("guess")), guesser);
    CHECK(reply_of(ex).status == 401);
  }
  // Spent: even the right token is not checked now.
  auto locked = f.send(http_post("/api/onepassword/emergency-revoke", revoke_body(), token(kToken)), guesser);
  const Reply& l = reply_of(locked);
  CHECK(l.status == 429);
  CHECK(error_code(l) == "rate_limited");
  REQUIRE(l.header("Retry-After").has_value());
  CHECK(*l.header("Retry-After") == "3600");
  CHECK(f.broker->revocations().list().empty());
  {
    auto events = f.events();
    REQUIRE(events.size() == 11);
    CHECK(events[10].kind == Kind::revoke);
    CHECK(events[10].code == "rate_limited");
  }
  // Another process of the same uid keeps its own share.
  auto other = f.send(http_post("/api/onepassword/emergency-revoke/clear", revoke_body(), token(kToken)),
                      caller_with_uid(5000, 7001));
  CHECK(reply_of(other).status == 200);

  // Only an admin service unlocks.
  auto not_admin = f.send(http_post("/api/onepassword/emergency-revoke/unlock", ""), kApp);
  CHECK(not_admin->route == "/api/onepassword/emergency-revoke/unlock");
  CHECK(reply_of(not_admin).status == 403);
  CHECK(f.events().back().action == "revoke-unlock");
  CHECK(f.events().back().code == "forbidden");
  auto with_body = f.send(http_post("/api/onepassword/emergency-revoke/unlock", "{}"), kOps);
  CHECK(reply_of(with_body).status == 400);
  auto unlock = f.send(http_post("/api/onepassword/emergency-revoke/unlock", ""), kOps);
  const Reply& u = reply_of(unlock);
  CHECK(u.status == 200);
  CHECK(text_at(json_of(u), {"cleared"}) == "2");  // the process and its uid
  const Event unlocked = f.events().back();
  CHECK(unlocked.kind == Kind::revoke);
  CHECK(unlocked.decision == Decision::allow);
  CHECK(unlocked.service == "ops");
  auto again = f.send(http_post("/api/onepassword/emergency-revoke", revoke_body(), token(kToken)), guesser);
  CHECK(reply_of(again).status == 200);

  // Spent again, then an hour passes.
  for (int i = 0; i < 10; ++i) f.send(http_post("/api/onepassword/emergency-revoke", revoke_body(), token("x")), guesser);
  CHECK(reply_of(f.send(http_post("/api/onepassword/emergency-revoke", revoke_body(), token(kToken)), guesser)).status ==
        429);
  f.clock.advance(1h);
  CHECK(reply_of(f.send(http_post("/api/onepassword/emergency-revoke/clear", revoke_body(), token(kToken)), guesser))
            .status == 200);
}

TEST_CASE("emergency revoke: the per-uid budget spans processes", "[api][handlers][emergency]") {
  ApiLoopback f;
  // 60 failures from six processes of one uid (10 each).
  for (int p = 0; p < 6; ++p) {
    for (int i = 0; i < 10; ++i) {
      f.send(http_post("/api/onepassword/emergency-revoke", revoke_body(), token("guess")), caller_with_uid(5000, 8000 + p));
    }
  }
  auto fresh = f.send(http_post("/api/onepassword/emergency-revoke", revoke_body(), token(kToken)),
                      caller_with_uid(5000, 9000));
  const Reply& r = reply_of(fresh);
  CHECK(r.status == 429);
  CHECK_THAT(json_of(r).find("error")->find("message")->text, Contains("this uid"));
  // Another uid is unaffected.
  auto other_uid = f.send(http_post("/api/onepassword/emergency-revoke", revoke_body(), token(kToken)), kOps);
  CHECK(reply_of(other_uid).status == 200);
  CHECK(f.events().size() == 62);
}

// ---------------------------------------------------------------------------
// admin: audit read and insights

TEST_CASE("audit read: an admin service reads the events; others are refused with an event", "[api][handlers][admin]") {
  ApiLoopback f;
  f.send(http_post("/api/onepassword/retrieve", R"({"ref":"op://AI/Anthropic/api_key"})"), kApp);  // one deny
  auto refused = f.send(http_get("/api/credentials/audit"), kApp);
  CHECK(refused->route == "/api/credentials/audit");
  const Reply& n = reply_of(refused);
  CHECK(n.status == 403);
  CHECK_THAT(json_of(n).find("error")->find("message")->text, Contains("not an admin service"));
  auto stranger = f.send(http_get("/api/credentials/audit"), kStranger);
  CHECK(reply_of(stranger).status == 403);

  auto ex = f.send(http_get("/api/credentials/audit?limit=10&service=app"), kOps);
  const Reply& r = reply_of(ex);
  CHECK(r.status == 200);
  Json body = json_of(r);
  const Json* events = body.find("events");
  REQUIRE(events != nullptr);
  REQUIRE(events->items.size() == 2);  // app's deny and app's refused audit read
  CHECK(text_at(events->items[0], {"action"}) == "retrieve");
  CHECK(text_at(events->items[0], {"code"}) == "forbidden");
  CHECK(text_at(events->items[1], {"action"}) == "audit-read");
  CHECK(text_at(body, {"count"}) == "2");

  auto recorded = f.events();
  REQUIRE(recorded.size() == 4);
  CHECK(recorded[1].action == "audit-read");
  CHECK(recorded[1].decision == Decision::deny);
  CHECK(recorded[1].code == "forbidden");
  CHECK(recorded[2].service.empty());
  CHECK(recorded[3].action == "audit-read");
  CHECK(recorded[3].decision == Decision::allow);
  CHECK(recorded[3].service == "ops");
  CHECK_FALSE(f.ctx.audit_scan_running);

  auto bad = f.send(http_get("/api/credentials/audit?limit=0"), kOps);
  CHECK(reply_of(bad).status == 400);
  CHECK(f.events().back().code == "bad_request");
}

TEST_CASE("insights: an admin's summary of a service; unknown services are 404", "[api][handlers][admin]") {
  ApiLoopback f;
  auto a = f.send(http_post("/api/onepassword/retrieve", R"({"credential_type":"openai_api_key"})"), kApp);
  f.primary->answer("sk");
  REQUIRE(reply_of(a).status == 200);
  f.send(http_post("/api/onepassword/retrieve", R"({"credential_type":"openai_api_key"})"), kApp);  // a hit
  f.send(http_post("/api/onepassword/retrieve", R"({"ref":"op://AI/Anthropic/api_key"})"), kApp);  // a deny

  auto ex = f.send(http_get("/api/onepassword/insights/app"), kOps);
  CHECK(ex->route == "/api/onepassword/insights/{service}");
  const Reply& r = reply_of(ex);
  CHECK(r.status == 200);
  Json body = json_of(r);
  CHECK(text_at(body, {"service"}) == "app");
  CHECK(text_at(body, {"requests", "total"}) == "3");
  CHECK(text_at(body, {"requests", "allowed"}) == "2");
  CHECK(text_at(body, {"requests", "denied"}) == "1");
  CHECK(text_at(body, {"requests", "denied_by_reason", "forbidden"}) == "1");
  CHECK(text_at(body, {"cache", "hits"}) == "1");
  CHECK(text_at(body, {"cache", "misses"}) == "1");

  auto unknown = f.send(http_get("/api/onepassword/insights/nobody"), kOps);
  CHECK(reply_of(unknown).status == 404);
  auto not_admin = f.send(http_get("/api/onepassword/insights/app"), kApp);
  CHECK(reply_of(not_admin).status == 403);

  auto events = f.events();
  REQUIRE(events.size() == 6);
  CHECK(events[3].action == "insights");
  CHECK(events[3].decision == Decision::allow);
  CHECK(events[4].action == "insights");
  CHECK(events[4].code == "not_found");
  CHECK(events[5].code == "forbidden");
}

// ---------------------------------------------------------------------------
// /metrics and /health

TEST_CASE("/metrics: answers by route pattern, denials by code; the scrape records no event", "[api][handlers][metrics]") {
  ApiLoopback f;
  auto a = f.send(http_post("/api/onepassword/retrieve", R"({"credential_type":"openai_api_key"})"), kApp);
  f.primary->answer("sk-metrics-secret");
  REQUIRE(reply_of(a).status == 200);
  f.send(http_get("/api/onepassword/service-token/payroll"), kApp);  // forbidden
  auto ev_before = f.events().size();

  auto ex = f.send(http_get("/metrics"), kStranger);
  CHECK(ex->route == "/metrics");
  const Reply& r = reply_of(ex);
  CHECK(r.status == 200);
  CHECK(r.content_type == "text/plain; version=0.0.4; charset=utf-8");
  CHECK_THAT(r.body, Contains("chitty_requests_total{route=\"/api/onepassword/retrieve\",decision=\"allow\",status=\"200\"} 1\n"));
  // The label is the pattern, not the path asked for.
  CHECK_THAT(r.body, Contains("chitty_requests_total{route=\"/api/onepassword/service-token/{target}\",decision=\"deny\","
                              "status=\"403\"} 1\n"));
  CHECK_THAT(r.body, !Contains("payroll"));
  CHECK_THAT(r.body, Contains("chitty_denials_total{reason=\"forbidden\"} 1\n"));
  CHECK_THAT(r.body, Contains("chitty_cache_lookups_total{result=\"miss\"} 1\n"));
  CHECK_THAT(r.body, !Contains("sk-metrics-secret"));
  CHECK(f.events().size() == ev_before);

  // The scrape itself is counted, and seen by the next one.
  auto next = f.send(http_get("/metrics"), kStranger);
  CHECK_THAT(reply_of(next).body, Contains("chitty_requests_total{route=\"/metrics\",decision=\"none\",status=\"200\"} 1\n"));
}

TEST_CASE("/health and its aliases: the agent's state and the caller as it sees it; no event", "[api][handlers][health]") {
  ApiLoopback f;
  for (const char* path : {"/health", "/api/onepassword/health", "/api/credentials/health"}) {
    INFO(path);
    auto ex = f.send(http_get(path), kStranger);
    CHECK(ex->route == path);
    const Reply& r = reply_of(ex);
    CHECK(r.status == 200);
    Json body = json_of(r);
    CHECK(text_at(body, {"status"}) == "healthy");
    CHECK(text_at(body, {"mode"}) == "normal");
    CHECK(text_at(body, {"caller", "uid"}) == "5000");
    CHECK(text_at(body, {"caller", "exe"}) == "/usr/bin/stranger");
    CHECK(text_at(body, {"cache", "entries"}) == "0");
  }
  f.clock.advance(90s);
  CHECK(text_at(json_of(reply_of(f.send(http_get("/health"), kApp))), {"uptime_seconds"}) == "90");
  CHECK(f.events().empty());
}

TEST_CASE("the loopback's Peer::fixed caller is not re-checked against a process", "[api][handlers][identity]") {
  // The pid is one no process has; a socket Peer would withdraw it.
  auto who = caller_with_uid(5000, 999999);
  ApiLoopback f;
  auto ex = f.send(http_get("/health"), who);
  CHECK(text_at(json_of(reply_of(ex)), {"caller", "pid"}) == "999999");
  chitty::identity::Peer peer = chitty::identity::Peer::fixed(who);
  CHECK(peer.alive());
  CHECK(peer.current().pid.matches(999999));
  CHECK(peer.at_accept().exe.matches("/usr/bin/app"));
}
