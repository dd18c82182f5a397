#include "chitty/audit/shipper.hpp"

#include <algorithm>

#include "chitty/audit/audit.hpp"
#include "chitty/base/units.hpp"
#include "chitty/log/log.hpp"

namespace chitty::audit {
namespace {

// One journal export field: NAME=value, or the binary form when the value
// holds a newline.
void export_field(std::string& out, std::string_view name, std::string_view value) {
  if (value.find('\n') == std::string_view::npos) {
    out += name;
    out += '=';
    out += value;
    out += '\n';
    return;
  }
  out += name;
  out += '\n';
  std::uint64_t n = value.size();
  for (int i = 0; i < 8; ++i) out += static_cast<char>((n >> (8 * i)) & 0xff);
  out += value;
  out += '\n';
}

}  // namespace

std::string journal_export_entry(std::string_view line) {
  std::string out;
  auto e = parse_event(line);
  if (e) {
    auto usec = std::chrono::duration_cast<std::chrono::microseconds>(e->at.time_since_epoch()).count();
    export_field(out, "__REALTIME_TIMESTAMP", std::to_string(usec));
    export_field(out, "MESSAGE", "audit " + std::string(decision_name(e->decision)) + " " + e->action +
                                     (e->service.empty() ? "" : " service=" + e->service) +
                                     (e->ref.empty() ? "" : " ref=" + e->ref) + (e->code.empty() ? "" : " code=" + e->code));
    export_field(out, "PRIORITY", e->decision == Decision::error ? "3" : e->decision == Decision::deny ? "5" : "6");
    export_field(out, "SYSLOG_IDENTIFIER", "chitty-agent");
    export_field(out, "CHITTY_MODULE", "audit");
    export_field(out, "CHITTY_KIND", kind_name(e->kind));
    export_field(out, "CHITTY_SEQ", std::to_string(e->seq));
    export_field(out, "CHITTY_EVENT_ID", e->id);
    export_field(out, "CHITTY_DECISION", decision_name(e->decision));
    export_field(out, "CHITTY_ACTION", e->action);
    if (!e->service.empty()) export_field(out, "CHITTY_SERVICE", e->service);
    if (!e->ref.empty()) export_field(out, "CHITTY_REF", e->ref);
    if (!e->code.empty()) export_field(out, "CHITTY_CODE", e->code);
    if (!e->host.empty()) export_field(out, "CHITTY_HOST", e->host);
  }
  export_field(out, "CHITTY_EVENT", line);
  out += '\n';  // an empty line ends the entry
  return out;
}

Shipper::Shipper(loop::Loop& loop, upstream::HttpClient& http, Spool& spool, const Clock& clock, ShipperOptions options,
                 std::function<double()> random)
    : http_(http), spool_(spool), clock_(clock), options_(std::move(options)), random_(std::move(random)),
      timer_(loop, [this] {
        scheduled_ = false;
        ship();
      }) {}

void Shipper::start() {
  if (spool_.backlog() > 0) {
    log::info("audit", "shipping the audit backlog left from before", {{"events", spool_.backlog()}, {"sink", options_.url}});
  }
  schedule(std::chrono::milliseconds(0));
}

void Shipper::close() noexcept {
  if (closed_) return;
  closed_ = true;
  timer_.close();
  if (status_.in_flight) http_.cancel(request_);
}

void Shipper::schedule(std::chrono::milliseconds delay) {
  if (closed_ || scheduled_ || status_.in_flight) return;
  MonoTime now = clock_.now();
  if (now < retry_at_) delay = std::max(delay, until(now, retry_at_));
  scheduled_ = true;
  timer_.start(delay);
}

void Shipper::kick() { schedule(options_.interval); }

void Shipper::ship() {
  if (closed_ || status_.in_flight || spool_.backlog() == 0) return;
  auto batch = spool_.read_after(spool_.acknowledged(), options_.batch_events, options_.batch_bytes);
  if (!batch) {
    status_.last_error = batch.error().message;
    log::error("audit", "cannot read the audit spool to ship it", {{"reason", batch.error().message}});
    return schedule(std::chrono::seconds(1));
  }
  if (batch->lines.empty()) return;
  upstream::HttpRequest req;
  req.url = options_.url;
  req.method = "POST";
  req.timeout = options_.timeout;
  req.connect_timeout = std::min(options_.timeout, std::chrono::milliseconds(2000));
  req.max_body = 64 * 1024 - 1;
  if (options_.format == SinkFormat::ndjson) {
    req.content_type = "application/x-ndjson";
    for (const auto& l : batch->lines) {
      req.body += l;
      req.body += '\n';
    }
  } else {
    req.content_type = "application/vnd.fdo.journal";
    for (const auto& l : batch->lines) req.body += journal_export_entry(l);
  }
  secure::SecureBuffer bearer;
  if (options_.token != nullptr) {
    bearer = options_.token->bearer();
    req.authorization = &bearer;
  }
  status_.in_flight = true;
  std::uint64_t last = batch->last_seq;
  std::size_t count = batch->lines.size();
  request_ = http_.send(std::move(req), [this, last, count](upstream::HttpResult r) { on_result(last, count, std::move(r)); });
}

void Shipper::on_result(std::uint64_t last_seq, std::size_t count, upstream::HttpResult r) {
  status_.in_flight = false;
  if (closed_) return;
  std::string problem;
  if (!r) {
    problem = std::string(upstream::http_error_name(r.error().kind)) + ": " + r.error().message;
  } else if (r->status < 200 || r->status >= 300) {
    problem = "HTTP " + std::to_string(r->status);
  }
  if (problem.empty()) {
    if (auto ok = spool_.acknowledge(last_seq); !ok) {
      // The sink has them; the spool will offer them again (at-least-once).
      log::error("audit", "the sink took a batch but the spool could not record it", {{"reason", ok.error().message}});
    }
    if (status_.consecutive_failures > 0) {
      log::info("audit", "audit sink reachable again", {{"sink", options_.url}, {"backlog", spool_.backlog()}});
    }
    status_.consecutive_failures = 0;
    status_.last_success = clock_.wall_now();
    status_.last_error.clear();
    ++status_.batches;
    status_.events += count;
    retry_at_ = MonoTime{};
    if (spool_.backlog() > 0) schedule(std::chrono::milliseconds(0));
    return;
  }
  ++status_.errors;
  ++status_.consecutive_failures;
  status_.last_failure = clock_.wall_now();
  status_.last_error = problem;
  Duration period = options_.backoff;
  for (std::uint64_t i = 1; i < status_.consecutive_failures && period < options_.max_backoff; ++i) period *= 2;
  period = std::min(period, options_.max_backoff);
  double j = random_ ? random_() : 0.5;
  period = std::chrono::duration_cast<Duration>(period * (0.5 + j));  // 50–150%
  retry_at_ = clock_.now() + period;
  if (status_.consecutive_failures == 1 || status_.consecutive_failures % 10 == 0) {
    log::warn("audit", "audit sink failed; the events stay in the spool and are retried",
              {{"sink", options_.url}, {"reason", problem}, {"backlog", spool_.backlog()},
               {"retry_in", format_duration(std::chrono::duration_cast<std::chrono::milliseconds>(period))}});
  }
  schedule(std::chrono::milliseconds(0));
}

std::optional<WallTime> Shipper::oldest_unshipped() const {
  if (spool_.backlog() == 0) return std::nullopt;
  auto b = const_cast<Spool&>(spool_).read_after(spool_.acknowledged(), 1, 64 * 1024);
  if (!b || b->lines.empty()) return std::nullopt;
  auto e = parse_event(b->lines.front());
  if (!e) return std::nullopt;
  return e->at;
}

}  // namespace chitty::audit
