#include "chitty/server/server.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <tuple>
#include <variant>

#include "chitty/base/units.hpp"
#include "chitty/log/log.hpp"
#include "connection.hpp"
#include "credential_connection.hpp"

namespace chitty::server {

ServerOptions options_from(const config::AgentConfig& a) {
  ServerOptions o;
  o.limits.max_header_bytes = a.max_header_bytes;
  o.limits.max_headers = a.max_headers;
  o.limits.max_uri_bytes = a.max_uri_bytes;
  o.limits.max_body_bytes = a.max_body_bytes;
  o.limits.max_requests_per_connection = a.max_requests_per_connection;
  o.limits.max_pipelined_requests = a.max_pipelined_requests;
  o.limits.max_secret_responses = a.max_secret_responses_per_connection;
  o.limits.idle_timeout = a.idle_timeout;
  o.limits.header_timeout = a.header_timeout;
  o.limits.body_timeout = a.body_timeout;
  o.limits.write_timeout = a.write_timeout;
  o.max_connections = a.max_connections;
  o.max_connections_per_uid = a.max_connections_per_uid;
  o.reserved_service_connections = a.reserved_service_connections;
  o.identity = identity::options_from_environment();
  return o;
}

Server::Server(loop::Loop& loop, const Clock& clock, ServerOptions options, const Router& router)
    : loop_(loop), clock_(clock), options_(options), router_(router), session_ctx_(options_.limits, clock_),
      grace_timer_(loop, [this] {
        log::warn("server", "shutdown deadline passed; closing remaining connections",
                  {{"connections", connections_.size()}});
        for (auto& [id, c] : connections_) c->close("shutdown deadline");
        // A LoadCredential= request not answered yet gets the unusable
        // credential (systemd reads it at once); one being written finishes.
        for (auto& [id, c] : credential_connections_) c->give_up(false);
      }),
      read_buffer_(new char[kReadBufferSize]) {}

Server::~Server() {
  // Normally empty after shutdown(). Whatever is left is handed to its own
  // close callback, which frees it after the server is gone.
  for (auto& [id, c] : connections_) c.release()->orphan();
  for (auto& [id, c] : credential_connections_) c.release()->orphan();
}

Result<void> Server::start(int listen_fd) {
  if (int rc = uv_pipe_init(loop_.raw(), listener_.get(), 0); rc != 0) {
    ::close(listen_fd);
    return fail(std::string("uv_pipe_init: ") + uv_strerror(rc));
  }
  if (int rc = uv_pipe_open(listener_.get(), listen_fd); rc != 0) {
    ::close(listen_fd);
    return fail(std::string("uv_pipe_open: ") + uv_strerror(rc));
  }
  listener_.get()->data = this;
  // The socket is already in listen(); libuv's listen only installs the watcher.
  if (int rc = uv_listen(listener_.stream(), 511, &Server::on_connection); rc != 0) {
    return fail(std::string("uv_listen: ") + uv_strerror(rc));
  }
  return {};
}

void Server::on_connection(uv_stream_t* listener, int status) noexcept {
  auto* self = static_cast<Server*>(listener->data);
  if (self == nullptr) return;
  if (status < 0) {
    log::warn("server", "accept failed", {{"error", uv_strerror(status)}});
    return;
  }
  self->accept_one();
}

void Server::accept_one() {
  loop::Handle<uv_pipe_t> pipe;
  // uv_pipe_init only initialises memory on Linux; it cannot fail here.
  if (uv_pipe_init(loop_.raw(), pipe.get(), 0) != 0) std::abort();
  if (int rc = uv_accept(listener_.stream(), pipe.stream()); rc != 0) {
    log::warn("server", "accept failed", {{"error", uv_strerror(rc)}});
    return;  // `pipe` closes itself
  }
  uv_os_fd_t fd = -1;
  uv_fileno(pipe.base(), &fd);
  auto creds = identity::peer_credentials(fd);
  if (!creds) {
    log::warn("server", "cannot read peer credentials; closing", {{"error", creds.error().message}});
    return;
  }
  ++stats_.accepted;
  // systemd's credential helper names what it wants in its address (one
  // getpeername() per connection; an ordinary client has no name). Such a
  // peer is answered before any cap or refusal here: refused, it must get
  // an unusable credential, never an HTTP error as its value nor a bare
  // close (which systemd takes for an empty credential).
  if (auto name = identity::abstract_peer_name(fd); name && identity::is_credential_address(*name)) {
    return accept_credential(std::move(pipe), fd, *creds, *name);
  }
  if (shutting_down_) {
    reject(std::move(pipe), http::ErrorCode::shutting_down, "the agent is shutting down");
    return;
  }
  const std::size_t cap = options_.max_connections;
  const std::size_t general = cap - reserved_slots();
  // Under pressure, room is made by closing an idle connection rather than
  // refusing the newcomer. Nothing idle and no slot at all: refuse before
  // reading /proc, so that a flood of refused connections stays cheap.
  std::vector<Connection*> candidates;
  if (open_ >= general) {
    candidates = reclaim_candidates();
    if (open_ >= cap && candidates.empty()) {
      ++stats_.rejected_busy;
      reject(std::move(pipe), http::ErrorCode::server_busy,
             "too many connections to the agent (" + std::to_string(cap) + "), none of them idle");
      return;
    }
  }
  auto held = per_uid_.find(creds->uid);
  const bool at_uid_cap = held != per_uid_.end() && held->second >= options_.max_connections_per_uid;
  // A uid at its cap recycles its own oldest idle connection (a pool of
  // workers that keeps connections open is not refused) — if it has one it
  // may take: a caller matching no service never closes a service's
  // connection, even of its own uid. Only then is the caller identified; a
  // uid at its cap with nothing idle is refused without a /proc read.
  auto refuse_uid = [&] {
    ++stats_.rejected_per_uid;
    reject(std::move(pipe), http::ErrorCode::too_many_connections,
           "too many connections from uid " + std::to_string(creds->uid) + " (" +
               std::to_string(options_.max_connections_per_uid) + "), none of them idle");
  };
  if (at_uid_cap && own_idle(creds->uid, std::nullopt) == nullptr) return refuse_uid();
  // Identified only past the caps that need no identity: those refusals
  // cost no /proc reads. Whether the caller may use the reserve needs it.
  identity::Peer peer = identity::Peer::identify(fd, *creds, options_.identity);
  const bool service = is_service_ && is_service_(peer.at_accept());
  if (at_uid_cap) {
    // Candidates are sorted non-services first: a non-service caller takes
    // the first idle one only if it is not a service's.
    Connection* own = own_idle(creds->uid, service);
    if (own == nullptr) return refuse_uid();
    ++stats_.reclaimed_idle;
    own->close("idle, closed to make room for the same uid");
    // (A slot of this uid is free now, and so is one of all: the global
    // checks below see one connection fewer.)
  }
  if (open_ >= (service ? cap : general)) {
    // A service may close any idle connection (another caller's first); a
    // non-service caller only another non-service one, so it swaps a slot
    // of its own kind and never eats into the reserve.
    Connection* victim = nullptr;
    for (Connection* c : candidates) {
      if (!service && c->service()) break;  // sorted: only services' connections follow
      if (c->confirm_idle()) {
        victim = c;
        break;
      }
    }
    if (victim == nullptr) {
      ++stats_.rejected_busy;
      std::string why = service || open_ >= cap
                            ? "too many connections to the agent (" + std::to_string(cap) + "), none of them idle"
                            : "the agent's last " + std::to_string(reserved_slots()) + " of " + std::to_string(cap) +
                                  " connections are kept for configured services, and no other connection is idle";
      reject(std::move(pipe), http::ErrorCode::server_busy, why);
      return;
    }
    ++stats_.reclaimed_idle;
    log::debug("server", "closing an idle connection to make room",
               {{"conn", victim->id()}, {"uid", victim->uid()}, {"for_uid", creds->uid}, {"for_service", service}});
    // Rate-limited like refusals: pressure is worth a line, not one per connection.
    ++reclaims_since_log_;
    if (MonoTime now = clock_.now(); now - last_reclaim_log_ >= std::chrono::seconds(10)) {
      log::info("server", "at the connection caps; closing idle connections to make room",
                {{"open", open_}, {"max_connections", cap}, {"reserved_for_services", reserved_slots()},
                 {"closed_since_last_report", reclaims_since_log_}});
      last_reclaim_log_ = now;
      reclaims_since_log_ = 0;
    }
    victim->close("idle, closed to make room");  // counts off at once; freed in its close callback
  }
  ++per_uid_[creds->uid];
  ++open_;
  std::uint64_t id = ++next_id_;
  auto conn = std::make_unique<Connection>(*this, std::move(pipe), std::move(peer), id, service);
  Connection* raw = conn.get();
  connections_.emplace(id, std::move(conn));
  stats_.connections = connection_count();
  raw->start();
}

void Server::accept_credential(loop::Handle<uv_pipe_t> pipe, int fd, const identity::Credentials& creds,
                               std::string_view name) {
  // A peer of another uid is never systemd's helper: within its uid's caps
  // it is answered (refused, audited); past them it gets nothing, before
  // any /proc read. uid 0 is not capped: systemd must always get an answer
  // (and root can exhaust the host without the agent's help).
  if (creds.uid != 0) {
    auto held = per_uid_.find(creds.uid);
    if (open_ >= options_.max_connections ||
        (held != per_uid_.end() && held->second >= options_.max_connections_per_uid)) {
      ++stats_.rejected_per_uid;
      pipe.close();
      return;
    }
  }
  identity::Peer helper = identity::Peer::identify(fd, creds, options_.identity);
  const identity::Identity& who = helper.at_accept();
  identity::CredentialRequest request;
  std::string refusal;
  if (auto parsed = identity::parse_credential_address(name)) {
    request = std::move(*parsed);
    refusal = identity::credential_helper_refusal(who, request.unit);
  } else {
    request = identity::credential_address_parts(name);
    refusal = "a LoadCredential= address that names no valid unit and credential ID";
  }
  std::uint64_t id = ++next_id_;
  log::debug("server", "LoadCredential= connection accepted",
             {{"conn", id}, {"uid", who.raw_uid}, {"pid", who.raw_pid}, {"unit", request.unit},
              {"credential", request.id},
              {"helper_unit", who.unit.is_known() ? std::string_view(who.unit.value()) : std::string_view("unknown")},
              {"trusted", refusal.empty()}});
  // Trusted, the request speaks for the unit; refused, it is recorded as
  // what it is: a process that bound a credential address.
  const bool trusted = refusal.empty();
  auto caller = std::make_shared<const identity::Peer>(
      trusted ? identity::Peer::attested(identity::credential_identity(who, request.unit)) : std::move(helper));
  ++per_uid_[creds.uid];
  ++open_;
  auto conn = std::make_unique<CredentialConnection>(*this, std::move(pipe), std::move(caller), creds.uid,
                                                     std::move(request), std::move(refusal), trusted, id);
  CredentialConnection* raw = conn.get();
  credential_connections_.emplace(id, std::move(conn));
  stats_.connections = connection_count();
  raw->start();
  if (shutting_down_) raw->drain();  // (accepted in the loop turn that began the shutdown)
}

std::uint32_t Server::reserved_slots() const noexcept {
  if (!is_service_) return 0;
  return std::min(options_.reserved_service_connections, options_.max_connections / 2);
}

Connection* Server::own_idle(uid_t uid, std::optional<bool> caller_is_service) const {
  for (Connection* c : reclaim_candidates()) {
    if (c->uid() != uid || !c->confirm_idle()) continue;
    if (caller_is_service == false && c->service()) return nullptr;  // (services sort last)
    return c;
  }
  return nullptr;
}

std::vector<Connection*> Server::reclaim_candidates() const {
  struct Candidate {
    Connection* c;
    bool service;
    bool keep_alive;  // lingering ones (already ending) go first
    MonoTime since;
  };
  std::vector<Candidate> found;
  for (const auto& [id, c] : connections_) {
    auto state = c->idle_state();
    if (!state) continue;
    found.push_back({c.get(), c->service(), *state == Connection::Idle::keep_alive, c->last_active()});
  }
  std::sort(found.begin(), found.end(), [](const Candidate& a, const Candidate& b) {
    return std::tie(a.service, a.keep_alive, a.since) < std::tie(b.service, b.keep_alive, b.since);
  });
  std::vector<Connection*> out;
  out.reserve(found.size());
  for (const auto& f : found) out.push_back(f.c);
  return out;
}

void Server::reject(loop::Handle<uv_pipe_t> pipe, http::ErrorCode code, std::string_view message) {
  std::string id = session_ctx_.next_request_id();
  http::Response r = http::error_response(code, message, id);
  if (code == http::ErrorCode::too_many_connections || code == http::ErrorCode::server_busy) {
    r.headers.emplace_back("Retry-After", "1");
  }
  std::string wire;
  http::serialize_head(r, http::HeadFields{id, session_ctx_.date(), true, false}, wire);
  auto body = r.body->bytes();
  wire.append(body.data(), body.size());
  // A fresh socket's send buffer takes this small answer at once; if it does
  // not, the client gets a bare close, which is the same refusal.
  uv_buf_t buf = uv_buf_init(wire.data(), static_cast<unsigned>(wire.size()));
  uv_try_write(pipe.stream(), &buf, 1);
  // Rate-limited warning: a flood of refused connections must not flood the log.
  ++rejects_since_log_;
  MonoTime now = clock_.now();
  if (now - last_reject_log_ >= std::chrono::seconds(10)) {
    log::warn("server", "refusing connections", {{"code", http::error_code_name(code)}, {"reason", message},
                                                 {"refused_since_last_report", rejects_since_log_}});
    last_reject_log_ = now;
    rejects_since_log_ = 0;
  }
  pipe.close();
}

void Server::dispatch(Connection& c, std::uint64_t seq, http::Request&& request, const std::string& request_id) {
  ++stats_.requests;
  auto routed = router_.route(request.method(), request.path());
  if (auto* found = std::get_if<Router::Found>(&routed)) {
    log::debug("server", "request", {{"conn", c.id()}, {"request_id", request_id},
                                     {"method", request.method_name()}, {"path", request.path()}});
    Call call(c.link(), seq, std::move(request), c.peer(), request_id, std::move(found->params), found->pattern);
    try {
      (*found->handler)(std::move(call));
    } catch (const std::exception& e) {
      // A handler bug; the moved-from Call in the handler's frame has already
      // answered 500 on unwinding.
      log::error("server", "handler threw", {{"request_id", request_id}, {"error", e.what()}});
    }
    return;
  }
  http::Response r;
  if (std::holds_alternative<http::RouteTable::NotFound>(routed)) {
    r = http::error_response(http::ErrorCode::not_found,
                             "no route for " + std::string(request.method_name()) + " " + std::string(request.path()),
                             request_id);
  } else if (auto* na = std::get_if<http::RouteTable::NotAllowed>(&routed)) {
    r = http::error_response(http::ErrorCode::method_not_allowed,
                             std::string(request.method_name()) + " is not allowed on " + std::string(request.path()) +
                                 "; allowed: " + na->allow,
                             request_id);
    r.headers.emplace_back("Allow", na->allow);
  } else if (auto* bad = std::get_if<http::RouteTable::BadPath>(&routed)) {
    r = http::error_response(http::ErrorCode::bad_request, bad->message, request_id);
  }
  c.respond(seq, std::move(r));
}

void Server::reconfigure(ServerOptions options) {
  options_ = std::move(options);
  session_ctx_.set_limits(options_.limits);
}

void Server::set_service_matcher(ServiceMatcher matcher) { is_service_ = std::move(matcher); }

void Server::set_credential_handler(CredentialHandler handler) { credential_handler_ = std::move(handler); }

void Server::closing(uid_t uid) {
  --open_;
  if (auto it = per_uid_.find(uid); it != per_uid_.end() && --it->second == 0) per_uid_.erase(it);
}

void Server::release(std::uint64_t id) {
  if (connections_.erase(id) == 0) credential_connections_.erase(id);
  stats_.connections = connection_count();
  maybe_done();
}

void Server::shutdown(std::chrono::milliseconds grace, std::function<void()> done) {
  if (shutting_down_) {
    // Second request: stop waiting.
    for (auto& [id, c] : connections_) c->close("forced shutdown");
    for (auto& [id, c] : credential_connections_) c->give_up(true);
    return;
  }
  shutting_down_ = true;
  done_ = std::move(done);
  listener_.close();
  log::info("server", "draining connections",
            {{"connections", connection_count()}, {"grace", format_duration(grace)}});
  std::vector<Connection*> open;
  for (auto& [id, c] : connections_) open.push_back(c.get());
  for (auto* c : open) c->drain();
  std::vector<CredentialConnection*> asking;
  for (auto& [id, c] : credential_connections_) asking.push_back(c.get());
  for (auto* c : asking) c->drain();
  if (!connections_.empty() || !credential_connections_.empty()) grace_timer_.start(grace);
  maybe_done();
}

void Server::maybe_done() {
  if (!shutting_down_ || !connections_.empty() || !credential_connections_.empty() || !done_) return;
  grace_timer_.close();
  auto done = std::move(done_);
  done_ = nullptr;
  done();
}

}  // namespace chitty::server
