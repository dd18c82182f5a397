// One request handed to a route handler, and the way to answer it.
//
// A Call may outlive its connection (a handler waiting on the upstream when
// the client hangs up): answering then is a no-op. A Call that is destroyed
// unanswered answers 500 internal_error itself (and logs it: it is a bug), so
// a pipelined connection can never stall on a forgotten request.
//
// A Call answers through a Responder: the Connection in the agent, a
// capturing one in tests (tests/fakes/api_loopback.hpp), so the handlers run
// on plain values without a socket.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "chitty/http/errors.hpp"
#include "chitty/http/request.hpp"
#include "chitty/http/response.hpp"
#include "chitty/http/router.hpp"
#include "chitty/identity/peer.hpp"

namespace chitty::server {

class Connection;  // (the Responder of the agent; server.hpp names it through this declaration)

// What a Call answers through: implemented by the Connection (and by test
// loopbacks). Requests are named by their sequence number on the responder.
// Thread: loop thread only.
class Responder {
 public:
  virtual ~Responder() = default;
  // The answer to request `seq` (each request is answered once).
  virtual void respond(std::uint64_t seq, http::Response response) = 0;
  // Request `seq` will (or may) be answered with a secret: it counts against
  // the connection's max_secret_responses from now on.
  virtual void expect_sensitive(std::uint64_t seq) = 0;
};

// Shared between a responder and its calls; the responder clears
// `responder` when it goes away (the connection when it closes), and calls
// that outlive it answer into nothing.
struct CallLink {
  Responder* responder = nullptr;
};

class Call {
 public:
  // `route`: the pattern of the route that matched (Router's Found::pattern);
  // it must outlive the call (the router does).
  Call(std::shared_ptr<CallLink> link, std::uint64_t seq, http::Request request,
       std::shared_ptr<const identity::Peer> peer, std::string request_id, http::PathParams params,
       std::string_view route);
  ~Call();
  Call(Call&& other) noexcept;
  Call& operator=(Call&& other) = delete;
  Call(const Call&) = delete;
  Call& operator=(const Call&) = delete;

  const http::Request& request() const noexcept { return request_; }
  // The caller as established at accept, with its pinned process.
  const identity::Peer& peer() const noexcept { return *peer_; }
  // The caller's identity re-checked now: facts derived from its pid are
  // withdrawn if the process that connected has exited. Use this for every
  // decision that depends on who is calling.
  identity::Identity caller() const { return peer_->current(); }
  const std::string& request_id() const noexcept { return request_id_; }
  const http::PathParams& params() const noexcept { return params_; }
  std::string_view param(std::string_view name) const noexcept;
  // The pattern of the route that matched ("/api/onepassword/service-token/{target}"):
  // what the handler's metrics are labelled with.
  std::string_view route() const noexcept { return route_; }

  // False once the client has gone away; answering is then pointless.
  bool connected() const noexcept;

  // Declares that the answer will (or may) hold a secret. Call it before
  // returning from the handler: from then on the request counts against
  // max_secret_responses, so a client cannot start more secret requests
  // than that without reading the answers.
  void will_hold_secret();

  // Answers the request. Only the first answer counts.
  void respond(http::Response response);
  // Answers with the SPEC's error body (and this call's request id).
  void fail(http::ErrorCode code, std::string_view message);

 private:
  std::shared_ptr<CallLink> link_;
  std::uint64_t seq_;
  http::Request request_;
  std::shared_ptr<const identity::Peer> peer_;
  std::string request_id_;
  http::PathParams params_;
  std::string_view route_;
  bool answered_ = false;
};

}  // namespace chitty::server
