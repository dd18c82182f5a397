// The HTTP/1.1 server on a listening Unix socket: accepts connections within
// the global and per-uid caps, runs each through an http::Session, routes
// requests to handlers, and drains on shutdown.
//
// Fairness under pressure (docs/http.md): each uid holds at most
// max_connections_per_uid connections; the last reserved_service_connections
// slots are kept for callers the service matcher accepts; and when a
// newcomer finds no free slot it may take, the oldest idle keep-alive
// connection (no request in progress, nothing being written) is closed to
// make room rather than the newcomer refused. A connection with a request in
// flight is never closed for room.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <unordered_map>
#include <vector>

#include "chitty/base/clock.hpp"
#include "chitty/base/result.hpp"
#include "chitty/config/config.hpp"
#include "chitty/http/limits.hpp"
#include "chitty/http/router.hpp"
#include "chitty/log/log.hpp"
#include "chitty/http/session.hpp"
#include "chitty/loop/handle.hpp"
#include "chitty/loop/loop.hpp"
#include "chitty/loop/timer.hpp"
#include "chitty/identity/load_credential.hpp"
#include "chitty/identity/peer.hpp"
#include "chitty/server/call.hpp"

namespace chitty::server {

class CredentialConnection;  // (credential_connection.hpp, private to the module)

// A route handler. It must answer the Call exactly once, now or later.
using Handler = std::function<void(Call)>;
using Router = http::Router<Handler>;

// Whether a caller matches a configured [[service]]: such callers may take the
// reserved slots. The server knows no policy; the composition root supplies
// this. Called on the loop thread with the identity at accept; must be cheap
// and must not call back into the server.
using ServiceMatcher = std::function<bool(const identity::Identity&)>;

// A LoadCredential= request of systemd's credential helper (docs/systemd.md):
// the unit and credential ID its address names. `refusal` is set when the
// peer is not to be trusted with it (not uid 0, not in the unit it names,
// not speaking the protocol): the handler refuses it, audited. The Call's
// caller is the unit as systemd attests it (identity::credential_identity)
// — or, with a refusal, the process that connected.
struct CredentialAsk {
  std::string unit;
  std::string id;
  std::string refusal;
};
// Answers a LoadCredential= request: a 200 whose body is a secret payload
// is written as the credential; any other answer refuses it (the unit then
// fails to start).
using CredentialHandler = std::function<void(Call, CredentialAsk)>;

struct ServerOptions {
  http::Limits limits;
  identity::Options identity;
  std::uint32_t max_connections = 1024;
  std::uint32_t max_connections_per_uid = 128;
  // Of max_connections, the slots only callers accepted by the service
  // matcher may take. At most half of max_connections is held back; nothing
  // is held back while no matcher is installed.
  std::uint32_t reserved_service_connections = 64;
};

struct ServerStats {
  std::size_t connections = 0;
  std::uint64_t accepted = 0;
  std::uint64_t rejected_busy = 0;      // global cap, or only reserved slots left, and nothing idle to close
  std::uint64_t rejected_per_uid = 0;   // per-uid cap
  std::uint64_t reclaimed_idle = 0;     // idle connections closed to make room for a newcomer
  std::uint64_t requests = 0;
  std::uint64_t protocol_errors = 0;    // requests refused by the session
  std::uint64_t timeouts = 0;           // header/body/write timeouts
  std::uint64_t load_credential_requests = 0;  // LoadCredential= requests (also counted in `requests`)
};

// The options `[agent]` describes (with the identity options the
// environment sets for tests).
ServerOptions options_from(const config::AgentConfig& agent);

class Server {
 public:
  // `router` must outlive the server and not change while it runs.
  Server(loop::Loop& loop, const Clock& clock, ServerOptions options, const Router& router);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Starts accepting on `listen_fd` (a listening AF_UNIX stream socket; the
  // server takes ownership).
  [[nodiscard]] Result<void> start(int listen_fd);

  // Stops accepting at once, lets connections finish what they have begun,
  // and closes whatever is left after `grace`. `done` runs when the last
  // connection is gone. Calling it again forces the remaining connections
  // closed at once.
  void shutdown(std::chrono::milliseconds grace, std::function<void()> done);

  // New limits and caps (a configuration reload): caps and timeouts apply at
  // once, parser limits to connections accepted from now on. Connections
  // already open are not closed to meet lower caps.
  void reconfigure(ServerOptions options);

  // Installs (or, with an empty function, removes) the service matcher. It
  // is asked about every admitted caller once, at accept; a reload of the
  // policy behind it applies to connections accepted from then on.
  void set_service_matcher(ServiceMatcher matcher);

  // Installs the handler of systemd's LoadCredential= requests: connections
  // whose peer is bound to an abstract address of the helper's form
  // (identity::parse_credential_address) go to it instead of the HTTP
  // router. Without one they are refused.
  void set_credential_handler(CredentialHandler handler);

  const ServerStats& stats() const noexcept { return stats_; }

 private:
  friend class Connection;
  friend class CredentialConnection;

  static void on_connection(uv_stream_t* listener, int status) noexcept;
  void accept_one();
  void reject(loop::Handle<uv_pipe_t> pipe, http::ErrorCode code, std::string_view message);
  void dispatch(Connection& c, std::uint64_t seq, http::Request&& request, const std::string& request_id);
  // Slots non-service callers may not take (0 without a matcher).
  std::uint32_t reserved_slots() const noexcept;
  // Idle connections that may be closed for room, best victim first:
  // non-service before service, lingering before keep-alive, oldest first.
  std::vector<Connection*> reclaim_candidates() const;
  // The first idle connection of `uid` its caller may recycle: any, or —
  // once the caller is known not to be a service — only a non-service one.
  Connection* own_idle(uid_t uid, std::optional<bool> caller_is_service) const;
  // A connection of `uid` began to close: it no longer counts against the caps.
  void closing(uid_t uid);
  // Takes a connection from a peer bound to an address of the shape of
  // systemd's credential helper (`name`, without its NUL).
  void accept_credential(loop::Handle<uv_pipe_t> pipe, int fd, const identity::Credentials& creds,
                         std::string_view name);
  // Its pipe is closed: frees it.
  void release(std::uint64_t id);
  void maybe_done();
  std::size_t connection_count() const noexcept { return connections_.size() + credential_connections_.size(); }
  char* read_buffer() noexcept { return read_buffer_.get(); }

  loop::Loop& loop_;
  const Clock& clock_;
  ServerOptions options_;
  const Router& router_;
  http::SessionContext session_ctx_;
  loop::Handle<uv_pipe_t> listener_;
  loop::Timer grace_timer_;
  std::unordered_map<std::uint64_t, std::unique_ptr<Connection>> connections_;
  // systemd's credential helper: never idle, never reclaimed; counted in the caps.
  std::unordered_map<std::uint64_t, std::unique_ptr<CredentialConnection>> credential_connections_;
  CredentialHandler credential_handler_;
  std::unordered_map<uid_t, std::uint32_t> per_uid_;  // open connections (not closing) by uid
  std::size_t open_ = 0;                              // connections not closing: what the caps count
  ServiceMatcher is_service_;
  std::unique_ptr<char[]> read_buffer_;
  std::uint64_t next_id_ = 0;
  bool shutting_down_ = false;
  std::function<void()> done_;
  ServerStats stats_;
  MonoTime last_reject_log_{};
  std::uint64_t rejects_since_log_ = 0;
  MonoTime last_reclaim_log_{};
  // Protocol errors (malformed requests, timeouts) logged: 20 per 10 s.
  log::Throttle protocol_log_{20, std::chrono::seconds(10)};
  std::uint64_t reclaims_since_log_ = 0;

 public:
  static constexpr std::size_t kReadBufferSize = 64 * 1024;
};

}  // namespace chitty::server
