#include "credential_connection.hpp"

#include <array>
#include <vector>

#include "chitty/base/wipe.hpp"
#include "chitty/log/log.hpp"
#include "chitty/server/server.hpp"

namespace chitty::server {
namespace {

// The poison's bytes: zeros, written from one static block many times over.
constexpr std::size_t kZeroBlock = 64 * 1024;
const std::array<char, kZeroBlock> kZeros{};

}  // namespace

struct CredentialConnection::WriteOp {
  uv_write_t req{};
  CredentialConnection* connection = nullptr;
  std::unique_ptr<http::Payload> body;  // released (and wiped, a secret's) once written
  std::vector<uv_buf_t> bufs;
};

CredentialConnection::CredentialConnection(Server& server, loop::Handle<uv_pipe_t> pipe,
                                           std::shared_ptr<const identity::Peer> peer, uid_t uid,
                                           identity::CredentialRequest request, std::string refusal, bool trusted,
                                           std::uint64_t id)
    : server_(&server), pipe_(std::move(pipe)), peer_(std::move(peer)), uid_(uid), request_(std::move(request)),
      refusal_(std::move(refusal)), trusted_(trusted), id_(id), timer_(server.loop_, [this] { on_timer(); }),
      link_(std::make_shared<CallLink>(CallLink{this})) {
  pipe_.get()->data = this;
}

CredentialConnection::~CredentialConnection() { link_->responder = nullptr; }

void CredentialConnection::start() {
  if (uv_read_start(pipe_.stream(), &CredentialConnection::on_alloc, &CredentialConnection::on_read) != 0) {
    close("read error");
    return;
  }
  reading_ = true;
  timer_.start(kEndOfInputWait);
}

void CredentialConnection::on_alloc(uv_handle_t* h, std::size_t, uv_buf_t* buf) noexcept {
  auto* self = static_cast<CredentialConnection*>(h->data);
  buf->base = self->server_->read_buffer();
  buf->len = Server::kReadBufferSize;
}

void CredentialConnection::on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) noexcept {
  if (auto* self = static_cast<CredentialConnection*>(s->data)) self->read(nread, buf);
}

void CredentialConnection::read(ssize_t nread, const uv_buf_t* buf) {
  if (closing_ || state_ != State::waiting) return;
  if (nread == 0) return;  // EAGAIN
  uv_read_stop(pipe_.stream());
  reading_ = false;
  timer_.stop();
  if (nread > 0) {
    secure_zero(buf->base, static_cast<std::size_t>(nread));
    return ask("a peer bound to a LoadCredential= address sent a request: systemd's credential helper sends "
               "nothing");
  }
  if (nread == UV_EOF) return ask(refusal_);
  log::debug("server", "read failed", {{"conn", id_}, {"error", uv_strerror(static_cast<int>(nread))}});
  close("read error");
}

void CredentialConnection::on_timer() {
  if (closing_) return;
  if (state_ == State::waiting) {
    if (reading_) uv_read_stop(pipe_.stream());
    reading_ = false;
    return ask("a peer bound to a LoadCredential= address did not shut its side down within " +
               std::to_string(kEndOfInputWait.count()) + " ms, as systemd's credential helper does at once");
  }
  // Writing: the reader stopped reading.
  log::info("server", "systemd's credential helper does not read; dropping the connection",
            {{"conn", id_}, {"unit", request_.unit}, {"credential", request_.id}});
  close("write timeout");
}

void CredentialConnection::ask(std::string refusal) {
  state_ = State::asked;
  if (server_ == nullptr || !server_->credential_handler_) return poison("no handler for LoadCredential= requests");
  ++server_->stats_.requests;
  ++server_->stats_.load_credential_requests;
  std::string request_id = server_->session_ctx_.next_request_id();
  Call call(link_, 1, http::Request{}, peer_, request_id, http::PathParams{}, "LoadCredential");
  CredentialAsk what{request_.unit, request_.id, std::move(refusal)};
  try {
    server_->credential_handler_(std::move(call), std::move(what));
  } catch (const std::exception& e) {
    // A handler bug; the Call has answered 500 on unwinding (and so poisoned).
    log::error("server", "handler threw", {{"request_id", request_id}, {"error", e.what()}});
  }
}

void CredentialConnection::respond(std::uint64_t, http::Response response) {
  if (closing_ || state_ != State::asked) return;
  if (response.status == 200 && response.body && response.body->sensitive()) return write(std::move(response.body));
  poison("refused (" + std::to_string(response.status) + ")");
}

void CredentialConnection::poison(std::string_view why) {
  log::debug("server", "LoadCredential= request refused; writing an unusable credential",
             {{"conn", id_}, {"unit", request_.unit}, {"credential", request_.id}, {"reason", why}});
  write(nullptr);
}

void CredentialConnection::write(std::unique_ptr<http::Payload> body) {
  state_ = State::writing;
  auto op = std::make_unique<WriteOp>();
  op->connection = this;
  if (body) {
    auto bytes = body->bytes();
    op->body = std::move(body);
    if (bytes.empty()) {  // an empty value: the credential is empty
      close("done");
      return;
    }
    op->bufs.push_back(uv_buf_init(const_cast<char*>(bytes.data()), static_cast<unsigned>(bytes.size())));
  } else {
    for (std::size_t left = kPoisonBytes; left > 0;) {
      std::size_t n = std::min(left, kZeroBlock);
      op->bufs.push_back(uv_buf_init(const_cast<char*>(kZeros.data()), static_cast<unsigned>(n)));
      left -= n;
    }
  }
  op->req.data = op.get();
  if (uv_write(&op->req, pipe_.stream(), op->bufs.data(), static_cast<unsigned>(op->bufs.size()),
               &CredentialConnection::on_write) != 0) {
    close("write error");
    return;
  }
  op.release();  // owned by libuv until on_write
  if (server_ != nullptr) {
    timer_.start(trusted_ ? std::chrono::duration_cast<std::chrono::milliseconds>(kHelperWriteTimeout)
                          : server_->options_.limits.write_timeout);
  }
}

void CredentialConnection::on_write(uv_write_t* req, int status) noexcept {
  std::unique_ptr<WriteOp> op(static_cast<WriteOp*>(req->data));
  CredentialConnection* self = op->connection;
  op.reset();  // the credential's buffer is wiped now
  if (self->closing_) return;
  // The helper hangs up on the poison as soon as it has read past its limit
  // (EPIPE here): that is the end of it as much as a complete write.
  if (status < 0) log::debug("server", "write ended", {{"conn", self->id_}, {"error", uv_strerror(status)}});
  self->close(status < 0 ? "write error" : "done");
}

void CredentialConnection::drain() {
  if (closing_) return;
  if (state_ == State::waiting) {
    if (reading_) uv_read_stop(pipe_.stream());
    reading_ = false;
    timer_.stop();
    poison("the agent is shutting down");
  }
}

void CredentialConnection::give_up(bool force) {
  if (closing_) return;
  if (state_ == State::writing) {
    if (force) close("forced shutdown");
    return;
  }
  if (reading_) uv_read_stop(pipe_.stream());
  reading_ = false;
  timer_.stop();
  // An answer that comes after this is dropped (respond() sees the state).
  poison("the agent's shutdown deadline passed before the answer");
}

void CredentialConnection::close(std::string_view reason) {
  if (closing_) return;
  closing_ = true;
  link_->responder = nullptr;
  timer_.stop();
  log::debug("server", "connection closed", {{"conn", id_}, {"reason", reason}});
  if (server_ != nullptr) server_->closing(uid_);
  pipe_.close([this] {
    if (server_ != nullptr) {
      server_->release(id_);  // destroys this connection
    } else {
      delete this;
    }
  });
}

void CredentialConnection::orphan() {
  server_ = nullptr;
  close("server destroyed");
}

}  // namespace chitty::server
