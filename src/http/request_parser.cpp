#include "request_parser.hpp"

#include <algorithm>
#include <limits>

#include "chitty/base/text.hpp"

namespace chitty::http {
namespace {

bool is_ctl(unsigned char c) noexcept { return c < 0x20 || c == 0x7F; }

// Empty lines tolerated before a request line: enough for the stray CRLF some
// clients send after a body, too few to keep a connection busy with nothing.
constexpr std::uint32_t kMaxEmptyLines = 4;

RequestParser& self(llhttp_t* p) noexcept { return *static_cast<RequestParser*>(p->data); }

std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

}  // namespace

// ---------------------------------------------------------------------------
// HeadScanner

HeadScanner::Verdict HeadScanner::scan(std::span<const char> data, std::size_t& consumed) {
  for (std::size_t i = 0; i < data.size(); ++i) {
    if (state_ == State::done) {
      consumed = i;
      return Verdict::head_complete;
    }
    if (++bytes_ > max_bytes_) {
      too_long_ = true;
      reason_ = "request head too large";
      return Verdict::reject;
    }
    if (const char* why = step(static_cast<unsigned char>(data[i]))) {
      reason_ = why;
      return Verdict::reject;
    }
    if (state_ == State::done) {
      consumed = i + 1;
      return Verdict::head_complete;
    }
  }
  consumed = data.size();
  return Verdict::more;
}

const char* HeadScanner::go(State next) noexcept {
  state_ = next;
  return nullptr;
}

const char* HeadScanner::after_cr(unsigned char c, const char* bare_cr, State next) noexcept {
  return c == '\n' ? go(next) : bare_cr;
}

const char* HeadScanner::step(unsigned char c) noexcept {
  switch (state_) {
    case State::start:  // before the request line; empty lines are tolerated (RFC 9112 §2.2)
      if (c == '\r') return go(State::preamble_cr);
      if (c == '\n') return "bare LF in request head (lines must end with CRLF)";
      if (c == ' ' || c == '\t') return "request line starts with whitespace";
      if (is_ctl(c)) return "control character in request line";
      return go(State::request_line);
    case State::preamble_cr:
      if (c != '\n') return "bare CR in request head";
      if (++empty_lines_ > kMaxEmptyLines) return "too many empty lines before the request line";
      return go(State::start);
    case State::request_line:
      if (c == '\r') return go(State::request_line_cr);
      if (c == '\n') return "bare LF in request line (lines must end with CRLF)";
      if (is_ctl(c)) return "control character in request line";
      return nullptr;
    case State::request_line_cr: return after_cr(c, "bare CR in request line", State::line_start);
    case State::line_start:
      if (c == '\r') return go(State::final_cr);
      if (c == '\n') return "bare LF in request head (lines must end with CRLF)";
      if (c == ' ' || c == '\t') return "obsolete line folding (a header line starting with whitespace) is not accepted";
      if (c == ':') return "empty header name";
      if (is_ctl(c)) return "control character in header name";
      return go(State::name);
    case State::name:
      if (c == ':') return go(State::value);
      if (c == ' ' || c == '\t') return "whitespace between header name and colon";
      if (c == '\r' || c == '\n') return "header line without a colon";
      if (is_ctl(c)) return "control character in header name";
      return nullptr;
    case State::value:
      if (c == '\r') return go(State::value_cr);
      if (c == '\n') return "bare LF in header value (lines must end with CRLF)";
      if (is_ctl(c) && c != '\t') return "control character in header value";
      return nullptr;
    case State::value_cr: return after_cr(c, "bare CR in header value", State::line_start);
    case State::final_cr: return after_cr(c, "bare CR at the end of the request head", State::done);
    case State::done: return nullptr;
  }
  return nullptr;
}

// ---------------------------------------------------------------------------
// RequestParser

const llhttp_settings_t& RequestParser::settings() noexcept {
  static const llhttp_settings_t s = [] {
    llhttp_settings_t v;
    llhttp_settings_init(&v);
    v.on_message_begin = &RequestParser::on_message_begin;
    v.on_url = &RequestParser::on_url;
    v.on_header_field = &RequestParser::on_header_field;
    v.on_header_field_complete = &RequestParser::on_header_field_complete;
    v.on_header_value = &RequestParser::on_header_value;
    v.on_header_value_complete = &RequestParser::on_header_value_complete;
    v.on_headers_complete = &RequestParser::on_headers_complete;
    v.on_body = &RequestParser::on_body;
    v.on_message_complete = &RequestParser::on_message_complete;
    return v;
  }();
  return s;
}

RequestParser::RequestParser(const Limits& limits) : limits_(limits) {
  llhttp_init(&parser_, HTTP_REQUEST, &settings());
  parser_.data = this;
  // Every leniency stays off (the 8.1 defaults); set explicitly so a future
  // default change cannot loosen us silently.
  llhttp_set_lenient_headers(&parser_, 0);
  llhttp_set_lenient_chunked_length(&parser_, 0);
  llhttp_set_lenient_keep_alive(&parser_, 0);
  llhttp_set_lenient_transfer_encoding(&parser_, 0);
  // Request line + header block, with room for separators: anything larger
  // is rejected by the scanner before llhttp is involved.
  scanner_.set_max_bytes(limits_.max_uri_bytes + limits_.max_header_bytes + 4 * limits_.max_headers + 1024);
}

int RequestParser::on_message_begin(llhttp_t* p) noexcept { return self(p).begin(); }
int RequestParser::on_url(llhttp_t* p, const char* at, std::size_t n) noexcept { return self(p).url(at, n); }
int RequestParser::on_header_field(llhttp_t* p, const char* at, std::size_t n) noexcept { return self(p).field(at, n); }
int RequestParser::on_header_field_complete(llhttp_t* p) noexcept { return self(p).field_complete(); }
int RequestParser::on_header_value(llhttp_t* p, const char* at, std::size_t n) noexcept { return self(p).value(at, n); }
int RequestParser::on_header_value_complete(llhttp_t* p) noexcept { return self(p).value_complete(); }
int RequestParser::on_headers_complete(llhttp_t* p) noexcept { return self(p).headers_complete(); }
int RequestParser::on_body(llhttp_t* p, const char* at, std::size_t n) noexcept { return self(p).body(at, n); }
int RequestParser::on_message_complete(llhttp_t* p) noexcept { return self(p).message_complete(); }

int RequestParser::reject(ErrorCode code, std::string message) {
  error_ = ParseError{code, std::move(message)};
  failed_ = true;
  return HPE_USER;
}

int RequestParser::begin() {
  req_ = Request();
  req_.data_.reserve(256);
  in_message_ = true;
  headers_done_ = false;
  in_field_ = in_value_ = false;
  expect_continue_ = false;
  header_bytes_ = 0;
  content_length_fields_ = host_fields_ = 0;
  connection_close_ = connection_keep_alive_ = false;
  return 0;
}

int RequestParser::url(const char* at, std::size_t n) {
  if (req_.target_.length == 0) req_.target_.offset = static_cast<std::uint32_t>(req_.data_.size());
  if (req_.target_.length + n > limits_.max_uri_bytes) {
    return reject(ErrorCode::uri_too_long,
                  "request target longer than " + std::to_string(limits_.max_uri_bytes) + " bytes");
  }
  req_.data_.insert(req_.data_.end(), at, at + n);
  req_.target_.length += static_cast<std::uint32_t>(n);
  return 0;
}

int RequestParser::count_header_bytes(std::size_t n) {
  header_bytes_ += n;
  if (header_bytes_ <= limits_.max_header_bytes) return 0;
  return reject(ErrorCode::headers_too_large,
                "request header fields larger than " + std::to_string(limits_.max_header_bytes) + " bytes");
}

int RequestParser::field(const char* at, std::size_t n) {
  if (int rc = count_header_bytes(n); rc != 0) return rc;
  if (!in_field_) {
    if (req_.headers_.size() >= limits_.max_headers) {
      return reject(ErrorCode::headers_too_large, "more than " + std::to_string(limits_.max_headers) + " header fields");
    }
    Request::Span name{static_cast<std::uint32_t>(req_.data_.size()), 0};
    req_.headers_.push_back({name, Request::Span{}});
    in_field_ = true;
  }
  req_.data_.insert(req_.data_.end(), at, at + n);
  req_.headers_.back().first.length += static_cast<std::uint32_t>(n);
  return 0;
}

int RequestParser::field_complete() {
  in_field_ = false;
  std::string_view name = req_.view(req_.headers_.back().first);
  if (iequals(name, "transfer-encoding")) {
    return reject(ErrorCode::bad_request,
                  "Transfer-Encoding is not accepted; send the body with a Content-Length header");
  }
  if (iequals(name, "content-length") && ++content_length_fields_ > 1) {
    return reject(ErrorCode::bad_request, "more than one Content-Length header");
  }
  if (iequals(name, "host") && ++host_fields_ > 1) {
    return reject(ErrorCode::bad_request, "more than one Host header");
  }
  return 0;
}

int RequestParser::value(const char* at, std::size_t n) {
  if (int rc = count_header_bytes(n); rc != 0) return rc;
  auto& v = req_.headers_.back().second;
  if (!in_value_) {
    v.offset = static_cast<std::uint32_t>(req_.data_.size());
    v.length = 0;
    in_value_ = true;
  }
  req_.data_.insert(req_.data_.end(), at, at + n);
  v.length += static_cast<std::uint32_t>(n);
  return 0;
}

int RequestParser::value_complete() {
  auto& [name_span, value_span] = req_.headers_.back();
  if (!in_value_) value_span = Request::Span{static_cast<std::uint32_t>(req_.data_.size()), 0};
  in_value_ = false;
  std::string_view raw = req_.view(value_span);
  std::string_view trimmed = trim_ows(raw);
  value_span.offset += static_cast<std::uint32_t>(trimmed.data() - raw.data());
  value_span.length = static_cast<std::uint32_t>(trimmed.size());

  std::string_view name = req_.view(name_span);
  if (iequals(name, "connection")) {
    // Own token parsing: llhttp 8.1 misses "close" followed by a tab.
    std::string_view rest = trimmed;
    while (!rest.empty()) {
      auto comma = rest.find(',');
      std::string_view token = trim_ows(rest.substr(0, comma));
      if (iequals(token, "close")) connection_close_ = true;
      if (iequals(token, "keep-alive")) connection_keep_alive_ = true;
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  } else if (iequals(name, "expect")) {
    if (!iequals(trimmed, "100-continue")) {
      return reject(ErrorCode::expectation_failed, "only \"Expect: 100-continue\" is supported");
    }
    expect_continue_ = true;
  }
  return 0;
}

int RequestParser::headers_complete() {
  headers_done_ = true;
  if (parser_.http_major != 1 || parser_.http_minor > 1) {
    return reject(ErrorCode::http_version_not_supported, "only HTTP/1.0 and HTTP/1.1 are supported");
  }
  req_.http_minor_ = parser_.http_minor;
  if (parser_.http_minor == 1 && host_fields_ == 0) {
    return reject(ErrorCode::bad_request, "HTTP/1.1 request without a Host header");
  }
  if ((parser_.flags & (F_TRANSFER_ENCODING | F_CHUNKED)) != 0) {
    return reject(ErrorCode::bad_request, "Transfer-Encoding is not accepted; send the body with a Content-Length header");
  }
  if ((parser_.flags & F_CONTENT_LENGTH) != 0 && parser_.content_length > limits_.max_body_bytes) {
    return reject(ErrorCode::too_large, "request body larger than " + std::to_string(limits_.max_body_bytes) + " bytes");
  }
  if ((parser_.flags & F_CONTENT_LENGTH) == 0 || parser_.content_length == 0) expect_continue_ = false;
  switch (parser_.method) {
    case HTTP_GET: req_.method_ = Method::get; break;
    case HTTP_HEAD: req_.method_ = Method::head; break;
    case HTTP_POST: req_.method_ = Method::post; break;
    case HTTP_PUT: req_.method_ = Method::put; break;
    case HTTP_DELETE: req_.method_ = Method::del; break;
    case HTTP_PATCH: req_.method_ = Method::patch; break;
    case HTTP_OPTIONS: req_.method_ = Method::options; break;
    default: req_.method_ = Method::other; break;
  }
  const char* name = llhttp_method_name(static_cast<llhttp_method_t>(parser_.method));
  req_.method_span_ = Request::Span{static_cast<std::uint32_t>(req_.data_.size()),
                                    static_cast<std::uint32_t>(std::char_traits<char>::length(name))};
  req_.data_.insert(req_.data_.end(), name, name + req_.method_span_.length);
  // No protocol upgrades (h2c, websocket, CONNECT tunnels): the request is
  // answered as plain HTTP/1.1, as RFC 9110 §7.8 allows.
  parser_.upgrade = 0;
  // Room for a typical body up front; larger ones grow as bytes arrive, so an
  // announced but never-sent body costs nothing.
  req_.body_.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(parser_.content_length, 4096)));
  return 0;
}

int RequestParser::body(const char* at, std::size_t n) {
  if (req_.body_.size() + n > limits_.max_body_bytes) {
    return reject(ErrorCode::too_large, "request body larger than " + std::to_string(limits_.max_body_bytes) + " bytes");
  }
  req_.body_.insert(req_.body_.end(), at, at + n);
  return 0;
}

int RequestParser::message_complete() {
  bool http11 = req_.http_minor_ == 1;
  // Our reading of Connection is stricter than llhttp 8.1's (it misses tokens
  // followed by a tab). Where the two differ, close: llhttp would otherwise
  // enter its closed state and silently swallow the next request.
  req_.keep_alive_ = !connection_close_ && (http11 || connection_keep_alive_) && llhttp_should_keep_alive(&parser_) != 0;
  in_message_ = false;
  headers_done_ = false;
  scanner_.reset();
  return HPE_PAUSED;  // one request at a time: the session decides when to go on
}

void RequestParser::fail_from_llhttp(llhttp_errno_t err) {
  failed_ = true;
  const char* reason = llhttp_get_error_reason(&parser_);
  std::string message = "malformed request";
  if (reason != nullptr && *reason != '\0') message += ": " + std::string(reason);
  ErrorCode code = ErrorCode::bad_request;
  if (err == HPE_INVALID_VERSION) code = ErrorCode::http_version_not_supported;
  error_ = ParseError{code, message};
}

RequestParser::Outcome RequestParser::feed(std::span<const char> data) {
  if (failed_) return {Status::error, 0};
  if (data.empty()) return {Status::need_more, 0};
  if (paused_) {
    llhttp_resume(&parser_);
    paused_ = false;
  }
  // Bytes of a head reach llhttp only after the scanner passed them.
  if (scanner_.in_head()) {
    std::size_t scanned = 0;
    if (scanner_.scan(data, scanned) == HeadScanner::Verdict::reject) {
      failed_ = true;
      error_ = ParseError{scanner_.too_long() ? ErrorCode::headers_too_large : ErrorCode::bad_request,
                          scanner_.reason()};
      return {Status::error, 0};
    }
  }
  llhttp_errno_t err = llhttp_execute(&parser_, data.data(), data.size());
  if (err == HPE_OK) return {Status::need_more, data.size()};
  if (err == HPE_PAUSED) {
    paused_ = true;
    auto consumed = static_cast<std::size_t>(llhttp_get_error_pos(&parser_) - data.data());
    return {Status::complete, std::min(consumed, data.size())};
  }
  if (!failed_) fail_from_llhttp(err);
  failed_ = true;
  return {Status::error, 0};
}

Request RequestParser::take() { return std::move(req_); }

}  // namespace chitty::http
