#include "chitty/http/session.hpp"

#include <algorithm>

#include "chitty/base/random.hpp"
#include "chitty/base/time_format.hpp"
#include "chitty/base/units.hpp"
#include "request_parser.hpp"

namespace chitty::http {

// ---------------------------------------------------------------------------
// SessionContext

SessionContext::SessionContext(const Limits& limits, const Clock& clock)
    : limits_(limits), clock_(clock), next_id_(random_u64()) {}

std::string SessionContext::next_request_id() {
  static constexpr char kHex[] = "0123456789abcdef";
  std::uint64_t v = next_id_++;
  std::string id(16, '0');
  for (int i = 15; i >= 0; --i) {
    id[static_cast<std::size_t>(i)] = kHex[v & 0xF];
    v >>= 4;
  }
  return id;
}

std::string_view SessionContext::date() {
  WallTime now = clock_.wall_now();
  auto second = std::chrono::duration_cast<std::chrono::seconds>(now.time_since_epoch()).count();
  if (second != date_second_) {
    date_second_ = second;
    date_ = format_http_date(now);
  }
  return date_;
}

// ---------------------------------------------------------------------------
// Session

Session::Session(SessionContext& ctx, Handler& handler)
    : ctx_(ctx), handler_(handler), parser_(std::make_unique<RequestParser>(ctx.limits())) {
  last_activity_ = now();
}

Session::~Session() = default;

bool Session::wants_read() const noexcept {
  return !aborted_ && !close_after_flush_ && !peer_eof_ && accepting_ && stash_.empty();
}

bool Session::idle() const noexcept {
  return exchanges_.empty() && output_.empty() && !output_outstanding_ && !parser_->in_message() && stash_.empty();
}

void Session::receive(std::span<const char> data) {
  last_activity_ = now();
  if (!accepting_ || data.empty()) return;  // after a refusal the rest is discarded
  if (stash_.empty()) {
    std::size_t used = process(data);
    if (accepting_ && used < data.size()) stash_.assign(data.begin() + static_cast<std::ptrdiff_t>(used), data.end());
  } else {
    stash_.insert(stash_.end(), data.begin(), data.end());
    process_stash();
  }
  maybe_continue();
  update_state();
}

void Session::receive_eof() {
  peer_eof_ = true;
  update_state();
}

void Session::process_stash() {
  if (stash_.empty() || processing_) return;
  std::size_t used = process(std::span<const char>(stash_.data(), stash_.size()));
  if (!accepting_) {
    stash_.clear();
  } else if (used > 0) {
    stash_.erase(stash_.begin(), stash_.begin() + static_cast<std::ptrdiff_t>(used));
  }
}

std::size_t Session::process(std::span<const char> input) {
  processing_ = true;
  std::size_t off = 0;
  while (off < input.size() && accepting_) {
    if (!parser_->in_message()) {
      // Between requests: start the next only if the pipeline has room and
      // the answers already made are not piling up unwritten.
      if (exchanges_.size() >= ctx_.limits().max_pipelined_requests) break;
      if (pending_output_bytes_ >= kMaxPendingOutput) break;
      // Nor while secrets wait for a client that does not read them: the
      // plaintext a connection can pin stays bounded.
      if (sensitive_held() >= ctx_.limits().max_secret_responses) break;
      head_started_ = now();
    }
    bool was_in_body = parser_->in_body();
    RequestParser::Outcome out = parser_->feed(input.subspan(off));
    off += out.consumed;
    if (out.status == RequestParser::Status::error) {
      const ParseError& e = parser_->error();
      reject(e.code, e.message);
      off = input.size();
      break;
    }
    if (out.status == RequestParser::Status::complete) {
      dispatch(parser_->take());
      continue;
    }
    if (!was_in_body && parser_->in_body()) body_started_ = now();
  }
  processing_ = false;
  return off;
}

void Session::dispatch(Request&& request) {
  Exchange ex;
  ex.seq = next_seq_++;
  ex.request_id = ctx_.next_request_id();
  ex.head_request = request.method() == Method::head;
  ex.keep_alive_1_0 = request.http_minor() == 0 && request.keep_alive();
  ++requests_;
  if (!request.keep_alive() || requests_ >= ctx_.limits().max_requests_per_connection || draining_) {
    ex.last = true;
    accepting_ = false;
  }
  continue_sent_ = false;
  std::uint64_t seq = ex.seq;
  std::string id = ex.request_id;  // a copy: the handler may answer (and pop) at once
  exchanges_.push_back(std::move(ex));
  handler_.on_request(seq, std::move(request), id);
}

void Session::reject(ErrorCode code, std::string message) {
  Exchange ex;
  ex.seq = next_seq_++;
  ex.request_id = ctx_.next_request_id();
  ex.response = error_response(code, message, ex.request_id);
  ex.last = true;
  accepting_ = false;
  stash_.clear();
  std::string id = ex.request_id;
  exchanges_.push_back(std::move(ex));
  handler_.on_rejected(code, message, id);
  collect_ready();
}

void Session::respond(std::uint64_t seq, Response response) {
  auto it = std::find_if(exchanges_.begin(), exchanges_.end(), [&](const Exchange& e) { return e.seq == seq; });
  if (it == exchanges_.end() || it->response) return;
  it->response = std::move(response);
  collect_ready();
  if (!processing_ && !stash_.empty()) process_stash();
  maybe_continue();
  update_state();
}

void Session::collect_ready() {
  while (!exchanges_.empty() && exchanges_.front().response) {
    Exchange& ex = exchanges_.front();
    bool close = ex.last || (draining_ && exchanges_.size() == 1 && !parser_->in_message());
    OutChunk chunk;
    chunk.head.reserve(256);
    HeadFields fields{ex.request_id, ctx_.date(), close, ex.keep_alive_1_0 && !close};
    serialize_head(*ex.response, fields, chunk.head);
    if (!ex.head_request) chunk.body = std::move(ex.response->body);
    pending_output_bytes_ += chunk.head.size() + (chunk.body ? chunk.body->bytes().size() : 0);
    output_.push_back(std::move(chunk));
    exchanges_.pop_front();
    if (close) {
      close_after_flush_ = true;
      accepting_ = false;
      stash_.clear();
      exchanges_.clear();  // nothing can follow a closing response
      break;
    }
  }
}

void Session::maybe_continue() {
  // The interim response may only go out when every earlier response has.
  if (!continue_sent_ && accepting_ && parser_->expects_continue() && exchanges_.empty()) {
    output_.push_back(OutChunk{"HTTP/1.1 100 Continue\r\n\r\n", nullptr});
    continue_sent_ = true;
  }
}

void Session::drain() {
  if (draining_) return;
  draining_ = true;
  stash_.clear();  // pipelined requests not yet started are not begun
  if (!parser_->in_message()) accepting_ = false;
  // An idle connection closes at once; one with answers pending closes after
  // the last of them (collect_ready marks it).
  if (exchanges_.empty() && !parser_->in_message()) close_after_flush_ = true;
  update_state();
}

void Session::update_state() {
  if (close_after_flush_) return;
  if (peer_eof_ && exchanges_.empty()) close_after_flush_ = true;
  if (draining_ && exchanges_.empty() && !parser_->in_message()) close_after_flush_ = true;
}

std::vector<OutChunk> Session::take_output() {
  if (!output_.empty() && !output_outstanding_) {
    output_outstanding_ = true;
    output_since_ = now();
  }
  pending_output_bytes_ = 0;
  for (const auto& c : output_) {
    if (c.body && c.body->sensitive()) ++sensitive_taken_;
  }
  std::vector<OutChunk> out = std::move(output_);
  output_.clear();
  return out;
}

void Session::output_flushed() {
  output_outstanding_ = false;
  sensitive_taken_ = 0;
  last_activity_ = now();
}

void Session::output_progress() {
  if (output_outstanding_) output_since_ = now();
}

bool Session::can_resume() const noexcept {
  return !stash_.empty() && accepting_ && !close_after_flush_ && pending_output_bytes_ < kMaxPendingOutput &&
         exchanges_.size() < ctx_.limits().max_pipelined_requests &&
         sensitive_held() < ctx_.limits().max_secret_responses;
}

void Session::expect_sensitive(std::uint64_t seq) noexcept {
  for (auto& e : exchanges_) {
    if (e.seq == seq) e.sensitive = true;
  }
}

std::size_t Session::sensitive_held() const noexcept {
  std::size_t n = sensitive_taken_;
  for (const auto& e : exchanges_) {
    if (e.response ? (e.response->body && e.response->body->sensitive()) : e.sensitive) ++n;
  }
  for (const auto& c : output_) {
    if (c.body && c.body->sensitive()) ++n;
  }
  return n;
}

void Session::resume() {
  if (!can_resume()) return;
  process_stash();
  maybe_continue();
  update_state();
}

std::optional<Session::Deadline> Session::next_deadline() const {
  if (aborted_) return std::nullopt;
  const Limits& l = ctx_.limits();
  std::optional<Deadline> best;
  auto consider = [&](MonoTime at, DeadlineKind kind) {
    if (!best || at < best->at) best = Deadline{at, kind};
  };
  if (output_outstanding_) consider(output_since_ + l.write_timeout, DeadlineKind::write);
  if (accepting_ && parser_->in_message()) {
    if (parser_->in_body()) {
      consider(body_started_ + l.body_timeout, DeadlineKind::body);
    } else {
      consider(head_started_ + l.header_timeout, DeadlineKind::header);
    }
  } else if (!close_after_flush_ && exchanges_.empty() && output_.empty() && !output_outstanding_) {
    consider(last_activity_ + l.idle_timeout, DeadlineKind::idle);
  }
  return best;
}

std::optional<Session::DeadlineKind> Session::on_deadline() {
  MonoTime t = now();
  const Limits& l = ctx_.limits();
  if (aborted_) return std::nullopt;
  if (output_outstanding_ && t >= output_since_ + l.write_timeout) {
    aborted_ = true;
    return DeadlineKind::write;
  }
  if (accepting_ && parser_->in_message()) {
    if (parser_->in_body() && t >= body_started_ + l.body_timeout) {
      reject(ErrorCode::request_timeout, "request body not received within " + format_duration(l.body_timeout));
      return DeadlineKind::body;
    }
    if (!parser_->in_body() && t >= head_started_ + l.header_timeout) {
      reject(ErrorCode::request_timeout, "request headers not received within " + format_duration(l.header_timeout));
      return DeadlineKind::header;
    }
    return std::nullopt;
  }
  if (!close_after_flush_ && exchanges_.empty() && output_.empty() && !output_outstanding_ &&
      t >= last_activity_ + l.idle_timeout) {
    close_after_flush_ = true;
    accepting_ = false;
    return DeadlineKind::idle;
  }
  return std::nullopt;
}

}  // namespace chitty::http
