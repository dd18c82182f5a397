// One accepted client connection: the I/O shell around an http::Session.
//
// Lifetime: owned by the Server; destroyed only from the close callback of its
// pipe handle (deferred delete), so every libuv callback that can still arrive
// for it (cancelled writes, the close itself) finds it alive. It is the
// Responder its calls answer through; calls that outlive it see
// CallLink::responder == nullptr.
#pragma once

#include <uv.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "chitty/http/session.hpp"
#include "chitty/loop/handle.hpp"
#include "chitty/loop/timer.hpp"
#include "chitty/server/call.hpp"
#include "chitty/identity/peer.hpp"

namespace chitty::server {

class Server;

class Connection final : public http::Session::Handler, public Responder {
 public:
  // `service`: the caller matched a configured service at accept.
  Connection(Server& server, loop::Handle<uv_pipe_t> pipe, identity::Peer peer, std::uint64_t id, bool service);
  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  void start();
  // Shutdown: finish what has begun, then close.
  void drain();
  // Close now, dropping whatever is pending.
  void close(std::string_view reason);
  // The server is going away before this connection: close, and let the
  // close callback free the connection itself.
  void orphan();

  // Responder: answers go into the session (nothing once closing).
  void respond(std::uint64_t seq, http::Response response) override;
  void expect_sensitive(std::uint64_t seq) override;

  // Whether the connection may be closed to make room for a newcomer: no
  // request in progress (not even part of one), nothing unwritten, not
  // closing. `lingering`: it already answered its last request and only
  // waits for the client to read it.
  enum class Idle { keep_alive, lingering };
  std::optional<Idle> idle_state() const noexcept;
  // The last check (a syscall) before closing a connection idle_state()
  // named: a keep-alive connection whose socket holds bytes not read yet (a
  // request the loop has not seen) is not idle after all.
  bool confirm_idle() const noexcept;
  // The last time the client sent something or took an answer (or the accept).
  MonoTime last_active() const noexcept { return last_active_; }
  bool service() const noexcept { return service_; }

  const std::shared_ptr<const identity::Peer>& peer() const noexcept { return peer_; }
  uid_t uid() const noexcept { return peer_->at_accept().raw_uid; }
  std::uint64_t id() const noexcept { return id_; }
  const std::shared_ptr<CallLink>& link() const noexcept { return link_; }

 private:
  struct WriteOp;

  // http::Session::Handler
  void on_request(std::uint64_t seq, http::Request&& request, const std::string& request_id) override;
  void on_rejected(http::ErrorCode code, std::string_view message, const std::string& request_id) override;

  static void on_alloc(uv_handle_t* h, std::size_t suggested, uv_buf_t* buf) noexcept;
  static void on_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) noexcept;
  static void on_write(uv_write_t* req, int status) noexcept;
  static void on_shutdown(uv_shutdown_t* req, int status) noexcept;

  void read(ssize_t nread, const uv_buf_t* buf);
  void write_done(int status);
  void on_timer();

  // After anything happened: write what is ready, start/stop reading, re-arm
  // the deadline timer, close when finished.
  void pump();
  void flush();
  void update_reading();
  void arm_timer();
  void finish();
  void touch();

  Server* server_;  // nullptr once orphaned
  loop::Handle<uv_pipe_t> pipe_;
  std::shared_ptr<const identity::Peer> peer_;
  std::uint64_t id_;
  bool service_;
  MonoTime last_active_;
  http::Session session_;
  loop::Timer timer_;
  std::shared_ptr<CallLink> link_;
  std::uint32_t writes_outstanding_ = 0;
  std::uint64_t bytes_written_ = 0;
  bool reading_ = false;
  bool closing_ = false;
  bool lingering_ = false;
  bool peer_eof_ = false;
  // Depth of calls into the session on the stack (a handler may answer from
  // inside one); pump() only runs at depth 0.
  int in_session_ = 0;
  struct InSession {
    explicit InSession(Connection& c) : c_(c) { ++c_.in_session_; }
    ~InSession() { --c_.in_session_; }
    InSession(const InSession&) = delete;
    InSession& operator=(const InSession&) = delete;
    Connection& c_;
  };
  std::uint64_t linger_discarded_ = 0;
  std::optional<MonoTime> timer_at_;  // when the armed timer fires, if armed
};

}  // namespace chitty::server
