#include "connection.hpp"

#include <sys/ioctl.h>

#include <vector>

#include "chitty/base/wipe.hpp"
#include "chitty/log/log.hpp"
#include "chitty/server/server.hpp"

namespace chitty::server {
namespace {

// Output queued in libuv beyond which we stop reading from the client: a
// client that does not read its answers cannot make us buffer without end.
constexpr std::size_t kMaxQueuedOutput = 256 * 1024;
// After the last response of a connection: how long unread input is drained
// so that the client sees the response rather than a reset.
constexpr std::chrono::milliseconds kLingerTime{2000};
constexpr std::uint64_t kLingerMaxBytes = 1024 * 1024;

std::string_view deadline_name(http::Session::DeadlineKind k) {
  switch (k) {
    case http::Session::DeadlineKind::idle: return "idle";
    case http::Session::DeadlineKind::header: return "header";
    case http::Session::DeadlineKind::body: return "body";
    case http::Session::DeadlineKind::write: return "write";
  }
  return "unknown";
}

}  // namespace

struct Connection::WriteOp {
  uv_write_t req{};
  Connection* connection = nullptr;
  std::vector<http::OutChunk> chunks;
  std::vector<uv_buf_t> bufs;
};

Connection::Connection(Server& server, loop::Handle<uv_pipe_t> pipe, identity::Peer peer, std::uint64_t id,
                       bool service)
    : server_(&server), pipe_(std::move(pipe)), peer_(std::make_shared<const identity::Peer>(std::move(peer))), id_(id),
      service_(service), last_active_(server.clock_.now()), session_(server.session_ctx_, *this),
      timer_(server.loop_, [this] { on_timer(); }), link_(std::make_shared<CallLink>(CallLink{this})) {
  pipe_.get()->data = this;
}

Connection::~Connection() { link_->responder = nullptr; }

void Connection::start() {
  const identity::Identity& who = peer_->at_accept();
  log::debug("server", "connection accepted",
             {{"conn", id_}, {"uid", who.raw_uid}, {"gid", who.raw_gid}, {"pid", who.raw_pid},
              {"exe", who.exe.is_known() ? std::string_view(who.exe.value()) : std::string_view("unknown")},
              {"pidfd", identity::pidfd_source_name(who.pidfd_source)}});
  pump();
}

void Connection::on_alloc(uv_handle_t* h, std::size_t, uv_buf_t* buf) noexcept {
  auto* self = static_cast<Connection*>(h->data);
  // One read buffer for the whole server: reads are handled synchronously,
  // and the session copies what it keeps.
  buf->base = self->server_->read_buffer();
  buf->len = Server::kReadBufferSize;
}

void Connection::on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) noexcept {
  if (auto* self = static_cast<Connection*>(s->data)) self->read(nread, buf);
}

void Connection::read(ssize_t nread, const uv_buf_t* buf) {
  if (closing_) return;
  if (nread > 0) {
    auto n = static_cast<std::size_t>(nread);
    if (lingering_) {
      linger_discarded_ += n;
      secure_zero(buf->base, n);
      if (linger_discarded_ > kLingerMaxBytes) close("linger limit");
      return;
    }
    touch();
    {
      InSession guard(*this);
      session_.receive(std::span<const char>(buf->base, n));
    }
    // Whatever the client sent may include tokens; the session copied what it
    // needs into buffers that it wipes itself.
    secure_zero(buf->base, n);
    pump();
    return;
  }
  if (nread == 0) return;  // EAGAIN
  if (nread == UV_EOF) {
    peer_eof_ = true;
    if (lingering_) {
      close("done");
      return;
    }
    {
      InSession guard(*this);
      session_.receive_eof();
    }
    uv_read_stop(pipe_.stream());
    reading_ = false;
    pump();
    return;
  }
  log::debug("server", "read failed", {{"conn", id_}, {"error", uv_strerror(static_cast<int>(nread))}});
  close("read error");
}

void Connection::on_request(std::uint64_t seq, http::Request&& request, const std::string& request_id) {
  server_->dispatch(*this, seq, std::move(request), request_id);
}

void Connection::on_rejected(http::ErrorCode code, std::string_view message, const std::string& request_id) {
  ++server_->stats_.protocol_errors;
  if (code == http::ErrorCode::request_timeout) ++server_->stats_.timeouts;
  // A client can cause one per connection as fast as it likes: throttled, so
  // that the journal's rate limit never costs the audit chain-head lines.
  log::Throttle& throttle = server_->protocol_log_;
  if (throttle.allow(server_->clock_.now())) {
    log::info("server", "request refused",
              {{"conn", id_}, {"uid", uid()}, {"status", http::error_status(code)},
               {"code", http::error_code_name(code)}, {"reason", message}, {"request_id", request_id},
               {"suppressed", throttle.suppressed()}});
  }
}

void Connection::respond(std::uint64_t seq, http::Response response) {
  if (closing_) return;
  {
    InSession guard(*this);
    session_.respond(seq, std::move(response));
  }
  // A handler answering from inside on_request() runs under the session call
  // that dispatched it; that caller pumps once the session has returned, so
  // the connection never writes, closes or lingers underneath the session.
  if (in_session_ == 0) pump();
}

void Connection::expect_sensitive(std::uint64_t seq) {
  if (!closing_) session_.expect_sensitive(seq);
}

void Connection::pump() {
  if (closing_ || in_session_ > 0 || lingering_) return;
  if (session_.aborted()) {
    close("write timeout");
    return;
  }
  while (true) {
    flush();
    if (closing_) return;
    // Requests held back because answers were piling up can go on once the
    // socket has taken everything (nothing queued in libuv).
    if (writes_outstanding_ != 0 || !session_.can_resume()) break;
    InSession guard(*this);
    session_.resume();
  }
  if (session_.finished() && writes_outstanding_ == 0 && !session_.has_output()) {
    finish();
    return;
  }
  update_reading();
  arm_timer();
}

void Connection::flush() {
  if (!session_.has_output()) return;
  std::vector<http::OutChunk> chunks = session_.take_output();
  std::vector<uv_buf_t> bufs;
  bufs.reserve(chunks.size() * 2);
  for (auto& c : chunks) {
    bufs.push_back(uv_buf_init(c.head.data(), static_cast<unsigned>(c.head.size())));
    if (c.body) {
      auto bytes = c.body->bytes();
      if (!bytes.empty()) bufs.push_back(uv_buf_init(const_cast<char*>(bytes.data()), static_cast<unsigned>(bytes.size())));
    }
  }
  std::size_t total = 0;
  for (const auto& b : bufs) total += b.len;
  bytes_written_ += total;

  // Fast path: with nothing queued, write now. The usual answer fits the
  // socket buffer, and this skips libuv's write queue (and the epoll_ctl and
  // extra loop turn it costs per response).
  std::size_t done = 0;
  if (writes_outstanding_ == 0) {
    int n = uv_try_write(pipe_.stream(), bufs.data(), static_cast<unsigned>(bufs.size()));
    if (n < 0 && n != UV_EAGAIN) {
      log::debug("server", "write failed", {{"conn", id_}, {"error", uv_strerror(n)}});
      close("write error");
      return;
    }
    done = n > 0 ? static_cast<std::size_t>(n) : 0;
    if (done == total) {
      chunks.clear();  // bodies are released (and wiped, if secret) once written
      session_.output_flushed();
      touch();
      return;
    }
  }
  // The rest goes through libuv's queue; the op keeps the bytes alive.
  auto op = std::make_unique<WriteOp>();
  op->connection = this;
  op->chunks = std::move(chunks);
  for (auto& b : bufs) {
    if (done >= b.len) {
      done -= b.len;
      continue;
    }
    op->bufs.push_back(uv_buf_init(b.base + done, static_cast<unsigned>(b.len - done)));
    done = 0;
  }
  op->req.data = op.get();
  int rc = uv_write(&op->req, pipe_.stream(), op->bufs.data(), static_cast<unsigned>(op->bufs.size()),
                    &Connection::on_write);
  if (rc != 0) {
    log::debug("server", "write failed", {{"conn", id_}, {"error", uv_strerror(rc)}});
    close("write error");
    return;
  }
  ++writes_outstanding_;
  op.release();  // owned by libuv until on_write
}

void Connection::on_write(uv_write_t* req, int status) noexcept {
  std::unique_ptr<WriteOp> op(static_cast<WriteOp*>(req->data));
  Connection* self = op->connection;
  op.reset();  // bodies are released (and wiped, if secret) once written
  self->write_done(status);
}

void Connection::write_done(int status) {
  --writes_outstanding_;
  if (closing_) return;
  if (status < 0) {
    log::debug("server", "write failed", {{"conn", id_}, {"error", uv_strerror(status)}});
    close("write error");
    return;
  }
  // The client is reading: the write deadline counts from here.
  if (writes_outstanding_ == 0) {
    session_.output_flushed();
    touch();
  } else {
    session_.output_progress();
  }
  if (lingering_) return;
  pump();
}

void Connection::update_reading() {
  if (lingering_ || peer_eof_) return;
  bool want = session_.wants_read() && uv_stream_get_write_queue_size(pipe_.stream()) < kMaxQueuedOutput;
  if (want && !reading_) {
    if (uv_read_start(pipe_.stream(), &Connection::on_alloc, &Connection::on_read) == 0) reading_ = true;
  } else if (!want && reading_) {
    uv_read_stop(pipe_.stream());
    reading_ = false;
  }
}

void Connection::arm_timer() {
  auto d = session_.next_deadline();
  if (!d) {
    if (timer_at_) timer_.stop();
    timer_at_.reset();
    return;
  }
  // Keep-alive traffic moves the idle deadline later on every request. An
  // armed timer that fires earlier is left alone: it finds nothing due and
  // re-arms then, so a busy connection costs no timer operation per request.
  if (timer_at_ && *timer_at_ <= d->at) return;
  MonoTime now = server_->clock_.now();
  timer_.start(until(now, d->at) + std::chrono::milliseconds(1));  // libuv rounds down; never wake early
  timer_at_ = d->at + std::chrono::milliseconds(1);
}

void Connection::on_timer() {
  timer_at_.reset();
  if (closing_) return;
  if (lingering_) {
    close("linger timeout");
    return;
  }
  std::optional<http::Session::DeadlineKind> fired;
  {
    InSession guard(*this);
    fired = session_.on_deadline();
  }
  if (auto kind = fired) {
    if (*kind == http::Session::DeadlineKind::write) {
      ++server_->stats_.timeouts;
      log::info("server", "client does not read its responses; dropping the connection",
                {{"conn", id_}, {"uid", uid()}, {"timeout", deadline_name(*kind)}});
    } else {
      log::debug("server", "connection deadline passed", {{"conn", id_}, {"timeout", deadline_name(*kind)}});
    }
  }
  pump();
}

void Connection::finish() {
  if (lingering_ || closing_) return;
  // Nothing was ever sent, or the client already closed: no need to linger.
  if (bytes_written_ == 0 || peer_eof_) {
    close("done");
    return;
  }
  // Send EOF, then drain (and discard) what the client still sends, so it
  // reads our last response instead of a connection reset.
  lingering_ = true;
  timer_at_.reset();
  auto* req = new uv_shutdown_t{};
  req->data = nullptr;
  if (uv_shutdown(req, pipe_.stream(), &Connection::on_shutdown) != 0) {
    delete req;
    close("done");
    return;
  }
  if (!reading_) {
    if (uv_read_start(pipe_.stream(), &Connection::on_alloc, &Connection::on_read) == 0) reading_ = true;
  }
  timer_.start(kLingerTime);
}

void Connection::on_shutdown(uv_shutdown_t* req, int) noexcept { delete req; }

void Connection::touch() {
  if (server_ != nullptr) last_active_ = server_->clock_.now();
}

std::optional<Connection::Idle> Connection::idle_state() const noexcept {
  if (closing_ || in_session_ > 0 || writes_outstanding_ != 0) return std::nullopt;
  if (lingering_) return Idle::lingering;
  // Session::idle: no exchange open, no answer waiting or being written, no
  // request begun in the parser, no pipelined bytes held back.
  if (!session_.idle()) return std::nullopt;
  return Idle::keep_alive;
}

bool Connection::confirm_idle() const noexcept {
  auto state = idle_state();
  if (!state) return false;
  if (*state == Idle::lingering) return true;  // what it still sends is discarded anyway
  uv_os_fd_t fd = -1;
  if (uv_fileno(pipe_.base(), &fd) != 0) return false;
  int pending = 0;
  return ::ioctl(fd, FIONREAD, &pending) == 0 && pending == 0;
}

void Connection::drain() {
  if (closing_) return;
  if (lingering_) {
    close("shutdown");
    return;
  }
  {
    InSession guard(*this);
    session_.drain();
  }
  pump();
}

void Connection::close(std::string_view reason) {
  if (closing_) return;
  closing_ = true;
  link_->responder = nullptr;
  timer_.stop();
  log::debug("server", "connection closed", {{"conn", id_}, {"reason", reason}});
  if (server_ != nullptr) server_->closing(uid());
  pipe_.close([this] {
    if (server_ != nullptr) {
      server_->release(id_);  // destroys this connection
    } else {
      delete this;
    }
  });
}

void Connection::orphan() {
  server_ = nullptr;
  close("server destroyed");
}

}  // namespace chitty::server
