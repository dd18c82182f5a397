#include "chitty/api/metrics.hpp"

#include <cstdio>

#include "chitty/audit/shipper.hpp"
#include "chitty/audit/spool.hpp"
#include "chitty/audit/spool_recorder.hpp"
#include "chitty/broker/broker.hpp"
#include "chitty/cache/cache.hpp"
#include "chitty/secure/arena.hpp"
#include "chitty/server/server.hpp"
#include "chitty/upstream/connect_provider.hpp"

namespace chitty::api {
namespace {

// A label value: backslash, quote and newline escaped.
std::string label(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

void head(std::string& out, std::string_view name, std::string_view type, std::string_view help) {
  out += "# HELP ";
  out += name;
  out += ' ';
  out += help;
  out += "\n# TYPE ";
  out += name;
  out += ' ';
  out += type;
  out += '\n';
}

void sample(std::string& out, std::string_view name, std::string_view labels, double value) {
  out += name;
  if (!labels.empty()) {
    out += '{';
    out += labels;
    out += '}';
  }
  out += ' ';
  out += number(value);
  out += '\n';
}

// A metric of one sample without labels.
void single(std::string& out, std::string_view name, std::string_view type, std::string_view help, double value) {
  head(out, name, type, help);
  sample(out, name, "", value);
}

}  // namespace

namespace {

template <typename Map>
typename Map::mapped_type& slot(Map& m, std::string_view key) {
  auto it = m.find(key);
  if (it == m.end()) it = m.emplace(std::string(key), typename Map::mapped_type{}).first;
  return it->second;
}

// (decision, status) pairs compared against a string_view decision.
struct AnswerKey {
  std::string_view decision;
  int status;
};
bool operator<(const std::pair<std::string, int>& a, const AnswerKey& b) {
  return a.first < b.decision || (a.first == b.decision && a.second < b.status);
}
bool operator<(const AnswerKey& a, const std::pair<std::string, int>& b) {
  return a.decision < b.first || (a.decision == b.first && a.status < b.second);
}

}  // namespace

void Metrics::observe(std::string_view route, std::string_view decision, int status, std::string_view code,
                      Duration latency) {
  RouteStats& r = slot(routes_, route);
  auto it = r.answers.find(AnswerKey{decision, status});
  if (it == r.answers.end()) it = r.answers.emplace(std::pair{std::string(decision), status}, 0).first;
  ++it->second;
  Histogram& h = r.latency;
  double seconds = std::chrono::duration<double>(latency).count();
  for (std::size_t i = 0; i < kBuckets.size(); ++i) {
    if (seconds <= kBuckets[i]) ++h.counts[i];
  }
  ++h.count;
  h.sum += seconds;
  if (!code.empty()) ++slot(denials_, code);
}

void Metrics::revocation(std::string_view action) { ++slot(revocations_, action); }

std::string Metrics::render(const Sources& s) const {
  std::string out;
  out.reserve(4096);

  head(out, "chitty_requests_total", "counter", "Requests answered, by route, decision and HTTP status.");
  for (const auto& [route, r] : routes_) {
    for (const auto& [key, n] : r.answers) {
      sample(out, "chitty_requests_total",
             "route=\"" + label(route) + "\",decision=\"" + label(key.first) + "\",status=\"" +
                 std::to_string(key.second) + "\"",
             static_cast<double>(n));
    }
  }
  head(out, "chitty_request_duration_seconds", "histogram", "Time from a request's arrival to its answer, by route.");
  for (const auto& [route, r] : routes_) {
    const Histogram& h = r.latency;
    std::string rl = "route=\"" + label(route) + "\"";
    for (std::size_t i = 0; i < kBuckets.size(); ++i) {
      sample(out, "chitty_request_duration_seconds_bucket", rl + ",le=\"" + number(kBuckets[i]) + "\"",
             static_cast<double>(h.counts[i]));
    }
    sample(out, "chitty_request_duration_seconds_bucket", rl + ",le=\"+Inf\"", static_cast<double>(h.count));
    sample(out, "chitty_request_duration_seconds_sum", rl, h.sum);
    sample(out, "chitty_request_duration_seconds_count", rl, static_cast<double>(h.count));
  }
  head(out, "chitty_denials_total", "counter", "Requests refused, by error code.");
  for (const auto& [code, n] : denials_) sample(out, "chitty_denials_total", "reason=\"" + label(code) + "\"", static_cast<double>(n));
  head(out, "chitty_revocations_total", "counter", "Emergency revocations made and cleared.");
  for (const auto& [action, n] : revocations_) {
    sample(out, "chitty_revocations_total", "action=\"" + label(action) + "\"", static_cast<double>(n));
  }

  if (s.gate != nullptr) {
    single(out, "chitty_rate_limited_total", "counter", "Requests refused because their service's bucket was empty.",
           static_cast<double>(s.gate->limited()));
  }
  if (s.broker != nullptr) {
    single(out, "chitty_revocations_active", "gauge", "Emergency revocations in force.",
           static_cast<double>(s.broker->revocations().list().size()));
    single(out, "chitty_fallback_mode", "gauge", "1 while the agent serves in fallback mode (upstream unavailable).",
           s.broker->mode() == cache::Mode::fallback ? 1 : 0);
    single(out, "chitty_fallback_seconds_total", "counter", "Seconds spent in fallback mode since start.",
           std::chrono::duration<double>(s.broker->fallback_time()).count());
    single(out, "chitty_upstream_fetches_total", "counter", "Fetches started (one per concurrent miss of a secret).",
           static_cast<double>(s.broker->fetches_started()));
  }
  if (s.cache != nullptr) {
    cache::Cache::Stats c = s.cache->stats();
    head(out, "chitty_cache_lookups_total", "counter", "Cache lookups by result.");
    sample(out, "chitty_cache_lookups_total", "result=\"hit\"", static_cast<double>(c.hits));
    sample(out, "chitty_cache_lookups_total", "result=\"stale\"", static_cast<double>(c.stale_hits));
    sample(out, "chitty_cache_lookups_total", "result=\"miss\"", static_cast<double>(c.misses));
    single(out, "chitty_cache_evictions_total", "counter", "Cached values evicted to stay within the caps.",
           static_cast<double>(c.evictions));
    single(out, "chitty_cache_entries", "gauge", "Values cached now.",
           static_cast<double>(c.entries));
    single(out, "chitty_cache_sealed_bytes", "gauge", "Locked bytes the sealed cache entries take.",
           static_cast<double>(c.locked_bytes));
  }
  if (s.arena != nullptr) {
    head(out, "chitty_locked_bytes", "gauge", "Locked memory of the secret arena, used and available.");
    sample(out, "chitty_locked_bytes", "state=\"used\"", static_cast<double>(s.arena->used()));
    sample(out, "chitty_locked_bytes", "state=\"available\"", static_cast<double>(s.arena->available()));
  }
  if (!s.connect.empty()) {
    head(out, "chitty_upstream_up", "gauge", "1 while the Connect server is available.");
    for (const auto* c : s.connect) {
      sample(out, "chitty_upstream_up", "upstream=\"" + label(c->options().name) + "\"", c->available() ? 1 : 0);
    }
    head(out, "chitty_upstream_state", "gauge", "The Connect server's state (1 for the current one).");
    for (const auto* c : s.connect) {
      for (auto h : {upstream::ConnectStatus::Health::unknown, upstream::ConnectStatus::Health::healthy,
                     upstream::ConnectStatus::Health::unreachable, upstream::ConnectStatus::Health::unauthorized,
                     upstream::ConnectStatus::Health::rate_limited}) {
        sample(out, "chitty_upstream_state",
               "upstream=\"" + label(c->options().name) + "\",state=\"" + std::string(upstream::connect_health_name(h)) +
                   "\"",
               c->status().health == h ? 1 : 0);
      }
    }
    head(out, "chitty_upstream_requests_total", "counter", "HTTP requests sent to the Connect server (probes included).");
    for (const auto* c : s.connect) {
      sample(out, "chitty_upstream_requests_total", "upstream=\"" + label(c->options().name) + "\"",
             static_cast<double>(c->status().requests));
    }
    head(out, "chitty_upstream_failures_total", "counter", "Availability failures of the Connect server.");
    for (const auto* c : s.connect) {
      sample(out, "chitty_upstream_failures_total", "upstream=\"" + label(c->options().name) + "\"",
             static_cast<double>(c->status().failures));
    }
  }
  if (s.spool != nullptr) {
    single(out, "chitty_audit_events_total", "counter", "Audit events written to the spool (the last sequence number).",
           static_cast<double>(s.spool->last_seq()));
    single(out, "chitty_audit_backlog_events", "gauge", "Audit events not yet acknowledged by the sink.",
           static_cast<double>(s.spool->backlog()));
    head(out, "chitty_audit_spool_bytes", "gauge", "Bytes in the audit spool, and its cap.");
    sample(out, "chitty_audit_spool_bytes", "state=\"used\"", static_cast<double>(s.spool->bytes()));
    sample(out, "chitty_audit_spool_bytes", "state=\"max\"", static_cast<double>(s.spool->options().max_bytes));
  }
  if (s.recorder != nullptr) {
    single(out, "chitty_audit_refused_total", "counter", "Events the spool could not take (requests refused: audit_unavailable).",
           static_cast<double>(s.recorder->refused()));
    single(out, "chitty_audit_aggregated_total", "counter", "Identical refusals counted into aggregate events.",
           static_cast<double>(s.recorder->aggregated()));
  }
  if (s.shipper != nullptr) {
    const audit::ShipperStatus& st = s.shipper->status();
    single(out, "chitty_audit_shipped_events_total", "counter", "Audit events the sink acknowledged.",
           static_cast<double>(st.events));
    single(out, "chitty_audit_sink_errors_total", "counter", "Failed batches to the audit sink.",
           static_cast<double>(st.errors));
    single(out, "chitty_audit_last_ship_success_timestamp_seconds", "gauge", "When the sink last took a batch (0: never).",
           st.last_success ? std::chrono::duration<double>(st.last_success->time_since_epoch()).count() : 0.0);
    auto oldest = s.shipper->oldest_unshipped();
    single(out, "chitty_audit_oldest_unshipped_timestamp_seconds", "gauge", "When the oldest unshipped event was written (0: none).",
           oldest ? std::chrono::duration<double>(oldest->time_since_epoch()).count() : 0.0);
  }
  if (s.server != nullptr) {
    const server::ServerStats& st = s.server->stats();
    single(out, "chitty_connections", "gauge", "Client connections open now.",
           static_cast<double>(st.connections));
    single(out, "chitty_connections_accepted_total", "counter", "Client connections accepted since start.",
           static_cast<double>(st.accepted));
    single(out, "chitty_connections_refused_total", "counter", "Connections refused by the global or per-uid cap.",
           static_cast<double>(st.rejected_busy + st.rejected_per_uid));
    single(out, "chitty_protocol_errors_total", "counter", "Requests the HTTP layer refused (malformed, too large, timed out).",
           static_cast<double>(st.protocol_errors));
  }
  return out;
}

}  // namespace chitty::api
