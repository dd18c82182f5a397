// The API without a socket (STYLE.md: "an in-process loopback fixture feeds
// request bytes through parser → router → handler → serializer"): request
// bytes go through the real http::RequestParser and the server::Router with
// the real api handlers registered; the handler answers through a Call bound
// to a capturing server::Responder, and the answer is serialised with
// http::serialize_head. Behind the handlers: a Broker on a real arena,
// sealer and cache, FakeProvider sources completed by hand, a ManualClock,
// an audit::MemoryRecorder, api::Metrics and an emergency token.
//
// A handler may answer later (a fetch waiting on the fake upstream): send()
// returns the Exchange at once, and its reply is filled in when the test
// completes the fetch (primary->answer(…)).
//
// Header-only; tests include it with src/http's private headers
// (http_private_inc, for the RequestParser).
#pragma once

#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "chitty/api/credentials.hpp"
#include "chitty/api/health.hpp"
#include "chitty/api/metrics.hpp"
#include "chitty/api/observed.hpp"
#include "chitty/audit/audit.hpp"
#include "chitty/base/text.hpp"
#include "chitty/broker/broker.hpp"
#include "chitty/cache/cache.hpp"
#include "chitty/catalog/catalog.hpp"
#include "chitty/http/errors.hpp"
#include "chitty/http/limits.hpp"
#include "chitty/http/response.hpp"
#include "chitty/identity/peer.hpp"
#include "chitty/policy/policy.hpp"
#include "chitty/secure/arena.hpp"
#include "chitty/secure/sealer.hpp"
#include "chitty/server/call.hpp"
#include "chitty/server/server.hpp"
#include "chitty/upstream/token.hpp"
#include "fake_provider.hpp"
#include "manual_clock.hpp"
#include "request_parser.hpp"

namespace chitty::testing {

// One answer as the loopback captured it.
struct Reply {
  int status = 0;
  std::string content_type;
  std::vector<std::pair<std::string, std::string>> headers;  // as the handler set them
  std::string head;  // status line and header block, as serialize_head writes them
  std::string body;  // read through the Payload (a secret's locked buffer included)
  bool sensitive = false;  // the payload says it holds a secret

  // The first header the handler set with this name (case-insensitive).
  std::optional<std::string> header(std::string_view name) const {
    for (const auto& [k, v] : headers) {
      if (iequals(k, name)) return v;
    }
    return std::nullopt;
  }
};

// One request sent through the loopback.
struct Exchange {
  std::uint64_t seq = 0;
  std::string request_id;
  std::string route;               // the pattern the router matched ("" when none did)
  bool declared_sensitive = false;  // Call::will_hold_secret() reached the responder
  int answers = 0;                 // answers that reached the responder (a Call answers once)
  std::optional<Reply> reply;      // set once answered

  bool answered() const noexcept { return reply.has_value(); }
};

// The Responder a loopback's calls answer through: captures each answer
// (serialised like the connection would) into its Exchange.
class CapturingResponder final : public server::Responder {
 public:
  void expect(const std::shared_ptr<Exchange>& ex) { open_[ex->seq] = ex; }

  void respond(std::uint64_t seq, http::Response response) override {
    auto it = open_.find(seq);
    if (it == open_.end()) throw std::logic_error("an answer for a request the loopback did not send");
    Exchange& ex = *it->second;
    ++ex.answers;
    if (ex.reply) return;  // the first answer counts (the session keeps one)
    Reply r;
    r.status = response.status;
    r.content_type = response.content_type;
    r.headers = response.headers;
    http::serialize_head(response, http::HeadFields{ex.request_id, "", false, false}, r.head);
    if (response.body) {
      auto bytes = response.body->bytes();
      r.body.assign(bytes.data(), bytes.size());
      r.sensitive = response.body->sensitive();
    }
    ex.reply = std::move(r);
  }

  void expect_sensitive(std::uint64_t seq) override {
    if (auto it = open_.find(seq); it != open_.end()) it->second->declared_sensitive = true;
  }

 private:
  std::map<std::uint64_t, std::shared_ptr<Exchange>> open_;
};

// A caller as the kernel would describe a host process.
inline identity::Identity caller_with_uid(uid_t uid, pid_t pid = 4242, std::string exe = "/usr/bin/app") {
  identity::Identity id;
  id.raw_uid = uid;
  id.raw_gid = uid;
  id.raw_pid = pid;
  id.uid = identity::Fact<uid_t>::known(uid);
  id.gid = identity::Fact<gid_t>::known(uid);
  id.pid = identity::Fact<pid_t>::known(pid);
  id.start_time = 777;
  id.exe = identity::Fact<std::string>::known(std::move(exe));
  id.unit = identity::Fact<std::string>::known("");
  id.container = identity::Fact<std::string>::known("");
  return id;
}

// Request bytes.
using HeaderList = std::vector<std::pair<std::string, std::string>>;
inline std::string http_get(std::string_view target, const HeaderList& headers = {}) {
  std::string out = "GET " + std::string(target) + " HTTP/1.1\r\nHost: localhost\r\n";
  for (const auto& [k, v] : headers) out += k + ": " + v + "\r\n";
  return out + "\r\n";
}
inline std::string http_post(std::string_view target, std::string_view body, const HeaderList& headers = {}) {
  std::string out = "POST " + std::string(target) + " HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n";
  for (const auto& [k, v] : headers) out += k + ": " + v + "\r\n";
  out += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
  out.append(body);
  return out;
}

struct LoopbackOptions {
  // The bucket callers without a [[service]] share.
  Rate unknown_callers{3, std::chrono::hours(1)};
  // An emergency token is configured ([emergency] token_file).
  bool emergency_token = true;
};

class ApiLoopback {
 public:
  static constexpr std::string_view kEmergencyToken = "loopback-emergency-token-0123456789";

  // The callers the policy knows: "app" (uid 1000) reads the OpenAI key by
  // type, anything under op://Infra/ and the billing service token; "ops"
  // (uid 3000) is an admin service with no grants; "batch" (uid 2000) reads
  // db_password and has a bucket of 2 an hour. Any other uid matches no
  // service and shares options.unknown_callers.
  explicit ApiLoopback(LoopbackOptions options = {}) {
    secure::ArenaOptions ao;
    ao.capacity = 4 << 20;
    arena = std::move(*secure::Arena::create(ao));
    sealer = std::move(*secure::Sealer::create(*arena));
    cache = std::make_unique<::chitty::cache::Cache>(*arena, *sealer, clock, cache::Options{});
    primary = std::make_unique<FakeProvider>(*arena, "1password");
    env = std::make_unique<FakeProvider>(*arena, "env", false);
    ::chitty::broker::Sources sources;
    sources.primaries.push_back(primary.get());
    sources.fallbacks.push_back(env.get());
    broker = std::make_unique<::chitty::broker::Broker>(*cache, sources, rules, gate, clock);

    auto cat = catalog::Catalog::build({
        {"openai_api_key", "op://AI/OpenAI/api_key", "OPENAI_API_KEY", "", "ai", ""},
        {"db_password", "op://Infra/Postgres/password", "", "", "", ""},
    });
    if (!cat) throw std::runtime_error(cat.error().message);
    rules.set_catalog(std::make_shared<const catalog::Catalog>(std::move(*cat)));
    auto spec = [](std::string name, std::int64_t uid, std::vector<std::string> allow) {
      policy::ServiceSpec s;
      s.name = std::move(name);
      s.uid = uid;
      s.allow = std::move(allow);
      s.rate_limit = Rate{1000000, std::chrono::hours(1)};
      return s;
    };
    policy::ServiceSpec ops = spec("ops", 3000, {});
    ops.admin = true;
    policy::ServiceSpec limited = spec("batch", 2000, {"type:db_password"});
    limited.rate_limit = Rate{2, std::chrono::hours(1)};
    auto pol = policy::Policy::build(
        {spec("app", 1000, {"type:openai_api_key", "op://Infra/**", "op://ChittyOS Services/billing/service_token"}),
         limited, ops},
        options.unknown_callers);
    if (!pol) throw std::runtime_error(pol.error().message);
    rules.set_policy(std::make_shared<const policy::Policy>(std::move(*pol)));

    if (options.emergency_token) {
      // Taken (and scrubbed) from the environment at once.
      ::setenv("CHITTY_LOOPBACK_EMERGENCY_TOKEN", std::string(kEmergencyToken).c_str(), 1);
      auto t = upstream::Token::from_env(*arena, *sealer, "CHITTY_LOOPBACK_EMERGENCY_TOKEN");
      if (!t) throw std::runtime_error(t.error().message);
      emergency_token = std::move(*t);
    }

    ctx.broker = broker.get();
    ctx.rules = &rules;
    ctx.gate = &gate;
    ctx.audit = &audit;
    ctx.arena = arena.get();
    ctx.metrics = &metrics;
    ctx.clock = &clock;
    ctx.emergency_token = emergency_token.get();
    ctx.persist_revocations = [this](const policy::Revocations& r) -> Result<std::uint64_t> {
      if (persist_fails) return fail("the disk is full");
      persisted.push_back(r);
      return static_cast<std::uint64_t>(persisted.size());
    };

    observed.clock = &clock;
    observed.started = clock.now();
    observed.started_wall = clock.wall_now();
    observed.cache = cache.get();
    observed.arena = arena.get();
    observed.sealer = sealer.get();
    observed.broker = broker.get();
    observed.gate = &gate;

    api::register_health_routes(router, observed);
    api::register_metrics_route(router, ctx, observed);
    api::register_credential_routes(router, ctx);
    api::register_emergency_routes(router, ctx);
    api::register_admin_routes(router, ctx);
  }

  ~ApiLoopback() {
    // Calls still held (a fetch never completed) answer into nothing.
    link_->responder = nullptr;
  }
  ApiLoopback(const ApiLoopback&) = delete;
  ApiLoopback& operator=(const ApiLoopback&) = delete;

  // Parses `raw` (exactly one whole request), routes it and runs its
  // handler for caller `who`. The reply is there at once, or after the test
  // completes the fetch the handler waits on.
  std::shared_ptr<Exchange> send(std::string_view raw, const identity::Identity& who) {
    http::RequestParser parser(limits);
    auto out = parser.feed(std::span<const char>(raw.data(), raw.size()));
    auto ex = std::make_shared<Exchange>();
    ex->seq = ++seq_;
    ex->request_id = "loopback-" + std::to_string(ex->seq);
    responder_.expect(ex);
    if (out.status == http::RequestParser::Status::error) {
      responder_.respond(ex->seq, http::error_response(parser.error().code, parser.error().message, ex->request_id));
      return ex;
    }
    if (out.status != http::RequestParser::Status::complete || out.consumed != raw.size()) {
      throw std::logic_error("the loopback takes exactly one whole request");
    }
    http::Request request = parser.take();
    auto routed = router.route(request.method(), request.path());
    auto* found = std::get_if<server::Router::Found>(&routed);
    if (found == nullptr) {
      // What the server answers itself (server.cpp's dispatch), in short.
      http::ErrorCode code = std::holds_alternative<http::RouteTable::NotFound>(routed) ? http::ErrorCode::not_found
                             : std::holds_alternative<http::RouteTable::NotAllowed>(routed)
                                 ? http::ErrorCode::method_not_allowed
                                 : http::ErrorCode::bad_request;
      responder_.respond(ex->seq, http::error_response(code, "not routed", ex->request_id));
      return ex;
    }
    ex->route = std::string(found->pattern);
    auto peer = std::make_shared<const identity::Peer>(identity::Peer::fixed(who));
    server::Call call(link_, ex->seq, std::move(request), std::move(peer), ex->request_id, std::move(found->params),
                      found->pattern);
    (*found->handler)(std::move(call));
    return ex;
  }

  // The client goes away: calls answer into nothing from now on.
  void hang_up() { link_->responder = nullptr; }

  // Audit events recorded so far, oldest first.
  std::vector<::chitty::audit::Event> events() const { return audit.recent(1u << 20); }

  // The parts, in the order they are built (and destroyed in reverse).
 private:
  CapturingResponder responder_;
  std::shared_ptr<server::CallLink> link_ = std::make_shared<server::CallLink>(server::CallLink{&responder_});
  std::uint64_t seq_ = 0;

 public:
  http::Limits limits;
  ManualClock clock;
  policy::Rules rules;
  policy::Gate gate{rules, clock};
  std::unique_ptr<secure::Arena> arena;
  std::unique_ptr<secure::Sealer> sealer;
  std::unique_ptr<::chitty::cache::Cache> cache;
  std::unique_ptr<FakeProvider> primary;
  std::unique_ptr<FakeProvider> env;
  std::unique_ptr<::chitty::broker::Broker> broker;
  ::chitty::audit::MemoryRecorder audit;
  api::Metrics metrics;
  std::unique_ptr<upstream::Token> emergency_token;
  // What persist_revocations wrote; with persist_fails it fails instead.
  std::vector<policy::Revocations> persisted;
  bool persist_fails = false;
  api::CredentialsContext ctx;
  api::Observed observed;
  server::Router router;
};

}  // namespace chitty::testing
