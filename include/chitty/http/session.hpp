// The protocol state of one HTTP/1.1 connection, without any I/O.
//
// The server's Connection feeds it received bytes and writes out what it
// produces; everything in between is here, so it can be tested and fuzzed on
// values: parsing with limits, the smuggling guard, keep-alive, pipelining
// with responses in request order, Expect: 100-continue, the request cap per
// connection, drain on shutdown, and the idle/header/body/write deadlines.
//
// Thread: loop thread only. Not reentrant except where noted: a Handler may
// call respond() from inside on_request().
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "chitty/base/clock.hpp"
#include "chitty/base/wipe.hpp"
#include "chitty/http/errors.hpp"
#include "chitty/http/limits.hpp"
#include "chitty/http/request.hpp"
#include "chitty/http/response.hpp"

namespace chitty::http {

class RequestParser;

// State shared by every session of one server: limits, the clock, request ids
// and the Date header of the current second.
class SessionContext {
 public:
  SessionContext(const Limits& limits, const Clock& clock);

  const Limits& limits() const noexcept { return limits_; }
  // New limits (a reload): sessions read timeouts and caps from here, so they
  // apply at once; a session's parser keeps the limits it started with.
  void set_limits(const Limits& limits) { limits_ = limits; }
  const Clock& clock() const noexcept { return clock_; }

  // 16 lower-case hex digits: a 64-bit counter that starts at a random value
  // per process. Unique for the life of the process (it would take 2^64
  // requests to repeat), unpredictable across runs.
  std::string next_request_id();

  // The HTTP Date header value for now, formatted once per second.
  std::string_view date();

 private:
  Limits limits_;
  const Clock& clock_;
  std::uint64_t next_id_;
  std::int64_t date_second_ = -1;
  std::string date_;
};

// One response (or interim 100 Continue) ready to be written: the serialized
// head and the body's owner, which must live until the write completed.
struct OutChunk {
  std::string head;
  std::unique_ptr<Payload> body;
};

class Session {
 public:
  // Answers produced but not yet taken beyond which no new request of this
  // connection is started: a client pipelining small requests is slowed down
  // to the pace it reads at, not buffered.
  static constexpr std::size_t kMaxPendingOutput = 64 * 1024;

  class Handler {
   public:
    // A complete request, numbered `seq` on this connection. Answer it with
    // respond(seq, …), now or later; until then it counts against
    // max_pipelined_requests. `request_id` is also the X-Request-Id.
    virtual void on_request(std::uint64_t seq, Request&& request, const std::string& request_id) = 0;
    // The session refused a request itself (parse error, limit, timeout).
    virtual void on_rejected(ErrorCode code, std::string_view message, const std::string& request_id) {
      (void)code, (void)message, (void)request_id;
    }

   protected:
    ~Handler() = default;
  };

  Session(SessionContext& ctx, Handler& handler);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Input. receive() must only be called while wants_read() is true; bytes
  // that cannot be handled yet (pipeline full) are kept, not re-read.
  void receive(std::span<const char> data);
  void receive_eof();

  // A handler's answer to request `seq`. Answers to requests that were
  // already answered, or to unknown numbers, are dropped.
  void respond(std::uint64_t seq, Response response);

  // Shutdown: no new requests are started; requests already complete or
  // partially received are answered (with Connection: close).
  void drain();

  // Output, in request order.
  bool has_output() const noexcept { return !output_.empty(); }
  std::vector<OutChunk> take_output();
  // Everything taken so far has been written to the socket.
  void output_flushed();
  // Part of it was written: the client is reading, so the write deadline
  // starts again.
  void output_progress();

  // Requests were held back because answers were piling up unwritten; once
  // the output is taken (and the socket has it), resume() starts them.
  bool can_resume() const noexcept;
  void resume();

  bool wants_read() const noexcept;
  // No further request will be handled: close once the output is written.
  bool finished() const noexcept { return close_after_flush_; }
  // Close at once, without writing what is pending (write timeout).
  bool aborted() const noexcept { return aborted_; }
  std::size_t in_flight() const noexcept { return exchanges_.size(); }
  // Request `seq` will be answered with a secret (see Call::will_hold_secret):
  // it counts against max_secret_responses from now on.
  void expect_sensitive(std::uint64_t seq) noexcept;
  // Answers holding a secret — expected, made, or not yet written out.
  std::size_t sensitive_held() const noexcept;
  bool idle() const noexcept;

  enum class DeadlineKind { idle, header, body, write };
  struct Deadline {
    MonoTime at;
    DeadlineKind kind;
  };
  // The earliest time at which on_deadline() has something to do.
  std::optional<Deadline> next_deadline() const;
  // Acts on every deadline that has passed: a 408 for a slow head or body,
  // abort for a client that does not read, close for an idle connection.
  // Returns the kind that fired, if any.
  std::optional<DeadlineKind> on_deadline();

 private:
  struct Exchange {
    std::uint64_t seq = 0;
    std::string request_id;
    std::optional<Response> response;
    bool head_request = false;
    bool last = false;  // the connection closes after this response
    bool keep_alive_1_0 = false;
    bool sensitive = false;  // expected to be answered with a secret
  };

  std::size_t process(std::span<const char> input);
  void process_stash();
  void dispatch(Request&& request);
  void reject(ErrorCode code, std::string message);
  void collect_ready();
  void maybe_continue();
  void update_state();
  MonoTime now() const noexcept { return ctx_.clock().now(); }

  SessionContext& ctx_;
  Handler& handler_;
  std::unique_ptr<RequestParser> parser_;
  std::deque<Exchange> exchanges_;
  WipedBytes stash_;
  std::vector<OutChunk> output_;
  std::uint64_t next_seq_ = 0;
  std::uint64_t requests_ = 0;
  bool accepting_ = true;
  bool close_after_flush_ = false;
  bool peer_eof_ = false;
  bool draining_ = false;
  bool aborted_ = false;
  bool processing_ = false;
  std::size_t sensitive_taken_ = 0;  // taken by the connection, not yet flushed
  bool continue_sent_ = false;
  bool output_outstanding_ = false;
  std::size_t pending_output_bytes_ = 0;  // in output_, not yet taken
  MonoTime last_activity_;
  MonoTime head_started_;
  MonoTime body_started_;
  MonoTime output_since_;
};

}  // namespace chitty::http
