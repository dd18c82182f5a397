#include "chitty/server/call.hpp"

#include <utility>

#include "chitty/log/log.hpp"

namespace chitty::server {

Call::Call(std::shared_ptr<CallLink> link, std::uint64_t seq, http::Request request,
           std::shared_ptr<const identity::Peer> peer, std::string request_id, http::PathParams params,
           std::string_view route)
    : link_(std::move(link)), seq_(seq), request_(std::move(request)), peer_(std::move(peer)),
      request_id_(std::move(request_id)), params_(std::move(params)), route_(route) {}

Call::Call(Call&& other) noexcept
    : link_(std::move(other.link_)), seq_(other.seq_), request_(std::move(other.request_)),
      peer_(std::move(other.peer_)),
      request_id_(std::move(other.request_id_)), params_(std::move(other.params_)), route_(other.route_),
      answered_(std::exchange(other.answered_, true)) {}

Call::~Call() {
  if (answered_ || !link_) return;
  log::error("server", "handler dropped a request without answering it",
             {{"request_id", request_id_}, {"path", request_.path()}});
  fail(http::ErrorCode::internal_error, "the request was not answered");
}

std::string_view Call::param(std::string_view name) const noexcept {
  return http::find_param(params_, name).value_or(std::string_view());
}

bool Call::connected() const noexcept { return link_ && link_->responder != nullptr; }

void Call::will_hold_secret() {
  if (!answered_ && link_ && link_->responder != nullptr) link_->responder->expect_sensitive(seq_);
}

void Call::respond(http::Response response) {
  if (answered_) return;
  answered_ = true;
  if (link_ && link_->responder != nullptr) link_->responder->respond(seq_, std::move(response));
}

void Call::fail(http::ErrorCode code, std::string_view message) {
  respond(http::error_response(code, message, request_id_));
}

}  // namespace chitty::server
