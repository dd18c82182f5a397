// Incremental HTTP/1.x request parser: llhttp 8.1 behind a strict pre-scan
// of the request head and the limits of http::Limits.
//
// llhttp 8.1 (Debian 12) accepts request-smuggling vectors (CVE-2023-30589,
// CVE-2024-27982, CVE-2025-23167 and relatives, docs/http.md). Every byte of a
// request head therefore passes HeadScanner before llhttp sees it, and the
// head is rejected on: a bare CR, a bare LF, obsolete line folding, whitespace
// between a field name and its colon, an empty field name, or a control
// character. Transfer-Encoding is refused outright (bodies need
// Content-Length), and so are duplicate Content-Length or Host fields.
#pragma once

#include <llhttp.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "chitty/http/errors.hpp"
#include "chitty/http/limits.hpp"
#include "chitty/http/request.hpp"

namespace chitty::http {

// Why a request was refused: the status/code to answer with and a message for
// the client (never containing request bytes).
struct ParseError {
  ErrorCode code = ErrorCode::bad_request;
  std::string message;
};

// The smuggling guard: a byte-level state machine over one request head.
class HeadScanner {
 public:
  enum class Verdict { more, head_complete, reject };

  // Scans bytes of the current head. Stops right after the blank line that
  // ends it (`consumed` tells where) or at the first violation.
  Verdict scan(std::span<const char> data, std::size_t& consumed);
  void reset() noexcept {
    state_ = State::start;
    bytes_ = 0;
    empty_lines_ = 0;
  }
  bool in_head() const noexcept { return state_ != State::done; }
  // The request line has begun (empty lines before it do not count: they are
  // what some clients send after a body, RFC 9112 §2.2).
  bool started() const noexcept { return state_ != State::start && state_ != State::preamble_cr; }
  const char* reason() const noexcept { return reason_; }
  void set_max_bytes(std::uint64_t n) noexcept { max_bytes_ = n; }
  bool too_long() const noexcept { return too_long_; }

 private:
  enum class State : std::uint8_t {
    start, preamble_cr, request_line, request_line_cr, line_start, name, value, value_cr, final_cr, done,
  };
  // One byte of the head: nullptr, or why the head is refused.
  const char* step(unsigned char c) noexcept;
  const char* go(State next) noexcept;  // moves on; nullptr
  // After a CR only an LF may come (then `next`); else `bare_cr`.
  const char* after_cr(unsigned char c, const char* bare_cr, State next) noexcept;

  State state_ = State::start;
  std::uint64_t bytes_ = 0;
  std::uint64_t max_bytes_ = 64 * 1024;
  std::uint32_t empty_lines_ = 0;
  const char* reason_ = "";
  bool too_long_ = false;
};

class RequestParser {
 public:
  explicit RequestParser(const Limits& limits);
  ~RequestParser() = default;
  RequestParser(const RequestParser&) = delete;
  RequestParser& operator=(const RequestParser&) = delete;

  enum class Status { need_more, complete, error };
  struct Outcome {
    Status status;
    std::size_t consumed;  // bytes of `data` used; the rest belongs to later requests
  };

  // Feeds bytes. Returns `complete` as soon as one request is whole (call
  // take() before feeding more), `need_more` when everything was consumed
  // without completing one, or `error` (sticky; see error()).
  Outcome feed(std::span<const char> data);

  // The completed request; the parser is then ready for the next one.
  Request take();

  const ParseError& error() const noexcept { return error_; }
  // Bytes of an unfinished request have been seen.
  bool in_message() const noexcept { return in_message_ || scanner_.started(); }
  // The unfinished request's headers are complete; its body is being read.
  bool in_body() const noexcept { return in_message_ && headers_done_; }
  // The unfinished request announced `Expect: 100-continue` and has a body
  // still to come.
  bool expects_continue() const noexcept { return in_body() && expect_continue_; }

 private:
  static int on_message_begin(llhttp_t* p) noexcept;
  static int on_url(llhttp_t* p, const char* at, std::size_t n) noexcept;
  static int on_header_field(llhttp_t* p, const char* at, std::size_t n) noexcept;
  static int on_header_field_complete(llhttp_t* p) noexcept;
  static int on_header_value(llhttp_t* p, const char* at, std::size_t n) noexcept;
  static int on_header_value_complete(llhttp_t* p) noexcept;
  static int on_headers_complete(llhttp_t* p) noexcept;
  static int on_body(llhttp_t* p, const char* at, std::size_t n) noexcept;
  static int on_message_complete(llhttp_t* p) noexcept;
  static const llhttp_settings_t& settings() noexcept;

  int begin();
  int url(const char* at, std::size_t n);
  // Adds n bytes of header names or values; past max_header_bytes, rejects.
  int count_header_bytes(std::size_t n);
  int field(const char* at, std::size_t n);
  int field_complete();
  int value(const char* at, std::size_t n);
  int value_complete();
  int headers_complete();
  int body(const char* at, std::size_t n);
  int message_complete();
  int reject(ErrorCode code, std::string message);
  void fail_from_llhttp(llhttp_errno_t err);

  const Limits limits_;  // a copy: cheap, and no lifetime to get wrong
  llhttp_t parser_{};
  HeadScanner scanner_;
  Request req_;
  ParseError error_;
  bool failed_ = false;
  bool paused_ = false;
  bool in_message_ = false;
  bool headers_done_ = false;
  bool in_field_ = false;
  bool in_value_ = false;
  bool expect_continue_ = false;
  std::uint64_t header_bytes_ = 0;
  std::uint32_t content_length_fields_ = 0;
  std::uint32_t host_fields_ = 0;
  bool connection_close_ = false;
  bool connection_keep_alive_ = false;
};

}  // namespace chitty::http
