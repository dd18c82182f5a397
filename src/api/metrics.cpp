#include "chitty/api/metrics.hpp"

#include <algorithm>
#include <cstdio>

#include "chitty/audit/shipper.hpp"
#include "chitty/audit/spool.hpp"
#include "chitty/audit/spool_recorder.hpp"
#include "chitty/broker/broker.hpp"
#include "chitty/cache/cache.hpp"
#include "chitty/risk/engine.hpp"
#include "chitty/secure/arena.hpp"
#include "chitty/server/server.hpp"
#include "chitty/upstream/connect_provider.hpp"
#include "metric_table.hpp"

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
  std::snprintf(buf, sizeof buf, "%.15g", v);  // a Unix time to the microsecond
  return buf;
}

void head(std::string& out, Metric m) {
  const MetricInfo& i = info(m);
  out += "# HELP ";
  out += i.name;
  out += ' ';
  out += i.help;
  out += "\n# TYPE ";
  out += i.name;
  out += ' ';
  out += i.type;
  out += '\n';
}

// A sample of metric m (of its series `suffix`: "_bucket", "_sum", "_count"
// for a histogram) with labels (may be empty).
void sample(std::string& out, Metric m, std::string_view suffix, std::string_view labels, double value) {
  out += info(m).name;
  out += suffix;
  if (!labels.empty()) {
    out += '{';
    out += labels;
    out += '}';
  }
  out += ' ';
  out += number(value);
  out += '\n';
}

void sample(std::string& out, Metric m, std::string_view labels, double value) { sample(out, m, "", labels, value); }

// A metric of one sample without labels.
void single(std::string& out, Metric m, double value) {
  head(out, m);
  sample(out, m, "", value);
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

namespace {
risk::Band band_at(std::size_t i) { return static_cast<risk::Band>(i); }
}  // namespace

void Metrics::risk(int score, std::string_view decision) {
  for (std::size_t i = 0; i < risk_bands_.size(); ++i) {
    if (risk::band_name(band_at(i)) == decision) ++risk_bands_[i];
  }
  for (std::size_t i = 0; i < kRiskBuckets.size(); ++i) {
    if (score <= kRiskBuckets[i]) ++risk_buckets_[i];
  }
  ++risk_count_;
  risk_sum_ += static_cast<std::uint64_t>(std::max(score, 0));
}

std::string Metrics::render(const Sources& s) const {
  std::string out;
  out.reserve(4096);

  if (s.started_wall != WallTime{}) {
    single(out, Metric::start_time_seconds, std::chrono::duration<double>(s.started_wall.time_since_epoch()).count());
  }
  head(out, Metric::requests_total);
  for (const auto& [route, r] : routes_) {
    for (const auto& [key, n] : r.answers) {
      sample(out, Metric::requests_total,
             "route=\"" + label(route) + "\",decision=\"" + label(key.first) + "\",status=\"" +
                 std::to_string(key.second) + "\"",
             static_cast<double>(n));
    }
  }
  head(out, Metric::request_duration_seconds);
  for (const auto& [route, r] : routes_) {
    const Histogram& h = r.latency;
    std::string rl = "route=\"" + label(route) + "\"";
    for (std::size_t i = 0; i < kBuckets.size(); ++i) {
      sample(out, Metric::request_duration_seconds, "_bucket", rl + ",le=\"" + number(kBuckets[i]) + "\"",
             static_cast<double>(h.counts[i]));
    }
    sample(out, Metric::request_duration_seconds, "_bucket", rl + ",le=\"+Inf\"", static_cast<double>(h.count));
    sample(out, Metric::request_duration_seconds, "_sum", rl, h.sum);
    sample(out, Metric::request_duration_seconds, "_count", rl, static_cast<double>(h.count));
  }
  head(out, Metric::denials_total);
  for (const auto& [code, n] : denials_) sample(out, Metric::denials_total, "reason=\"" + label(code) + "\"", static_cast<double>(n));
  head(out, Metric::revocations_total);
  for (const auto& [action, n] : revocations_) {
    sample(out, Metric::revocations_total, "action=\"" + label(action) + "\"", static_cast<double>(n));
  }

  head(out, Metric::risk_decisions_total);
  for (std::size_t i = 0; i < risk_bands_.size(); ++i) {
    sample(out, Metric::risk_decisions_total, "decision=\"" + std::string(risk::band_name(band_at(i))) + "\"",
           static_cast<double>(risk_bands_[i]));
  }
  head(out, Metric::risk_score);
  for (std::size_t i = 0; i < kRiskBuckets.size(); ++i) {
    sample(out, Metric::risk_score, "_bucket", "le=\"" + std::to_string(kRiskBuckets[i]) + "\"",
           static_cast<double>(risk_buckets_[i]));
  }
  sample(out, Metric::risk_score, "_bucket", "le=\"+Inf\"", static_cast<double>(risk_count_));
  sample(out, Metric::risk_score, "_sum", "", static_cast<double>(risk_sum_));
  sample(out, Metric::risk_score, "_count", "", static_cast<double>(risk_count_));
  single(out, Metric::risk_alerts_total, static_cast<double>(risk_alerts_));

  if (s.gate != nullptr) {
    single(out, Metric::rate_limited_total, static_cast<double>(s.gate->limited()));
  }
  if (s.broker != nullptr) {
    single(out, Metric::revocations_active, static_cast<double>(s.broker->revocations().list().size()));
    single(out, Metric::fallback_mode, s.broker->mode() == cache::Mode::fallback ? 1 : 0);
    single(out, Metric::fallback_seconds_total, std::chrono::duration<double>(s.broker->fallback_time()).count());
    single(out, Metric::upstream_fetches_total, static_cast<double>(s.broker->fetches_started()));
  }
  if (s.cache != nullptr) {
    cache::Cache::Stats c = s.cache->stats();
    head(out, Metric::cache_lookups_total);
    sample(out, Metric::cache_lookups_total, "result=\"hit\"", static_cast<double>(c.hits));
    sample(out, Metric::cache_lookups_total, "result=\"stale\"", static_cast<double>(c.stale_hits));
    sample(out, Metric::cache_lookups_total, "result=\"miss\"", static_cast<double>(c.misses));
    single(out, Metric::cache_evictions_total, static_cast<double>(c.evictions));
    single(out, Metric::cache_entries, static_cast<double>(c.entries));
    single(out, Metric::cache_sealed_bytes, static_cast<double>(c.locked_bytes));
  }
  if (s.arena != nullptr) {
    head(out, Metric::locked_bytes);
    sample(out, Metric::locked_bytes, "state=\"used\"", static_cast<double>(s.arena->used()));
    sample(out, Metric::locked_bytes, "state=\"available\"", static_cast<double>(s.arena->available()));
  }
  if (!s.connect.empty()) {
    head(out, Metric::upstream_up);
    for (const auto* c : s.connect) {
      sample(out, Metric::upstream_up, "upstream=\"" + label(c->options().name) + "\"", c->available() ? 1 : 0);
    }
    head(out, Metric::upstream_state);
    for (const auto* c : s.connect) {
      for (auto h : {upstream::ConnectStatus::Health::unknown, upstream::ConnectStatus::Health::healthy,
                     upstream::ConnectStatus::Health::unreachable, upstream::ConnectStatus::Health::unauthorized,
                     upstream::ConnectStatus::Health::rate_limited}) {
        sample(out, Metric::upstream_state,
               "upstream=\"" + label(c->options().name) + "\",state=\"" + std::string(upstream::connect_health_name(h)) +
                   "\"",
               c->status().health == h ? 1 : 0);
      }
    }
    head(out, Metric::upstream_requests_total);
    for (const auto* c : s.connect) {
      sample(out, Metric::upstream_requests_total, "upstream=\"" + label(c->options().name) + "\"",
             static_cast<double>(c->status().requests));
    }
    head(out, Metric::upstream_failures_total);
    for (const auto* c : s.connect) {
      sample(out, Metric::upstream_failures_total, "upstream=\"" + label(c->options().name) + "\"",
             static_cast<double>(c->status().failures));
    }
  }
  if (s.prefetcher != nullptr) {
    head(out, Metric::prefetches_total);
    for (auto kind : {predict::Kind::refresh, predict::Kind::startup, predict::Kind::coaccess, predict::Kind::periodic}) {
      const predict::Prefetcher::Counts& c = s.prefetcher->counts(kind);
      const std::string k = "kind=\"" + std::string(predict::kind_name(kind)) + "\",outcome=\"";
      for (auto [outcome, n] : {std::pair{"issued", c.issued}, {"used", c.used}, {"wasted", c.wasted},
                                {"failed", c.failed}, {"skipped", c.skipped}}) {
        sample(out, Metric::prefetches_total, k + outcome + "\"", static_cast<double>(n));
      }
    }
    single(out, Metric::upstream_reads_last_hour, static_cast<double>(s.prefetcher->upstream_reads_last_hour()));
  }
  if (s.spool != nullptr) {
    single(out, Metric::audit_events_total, static_cast<double>(s.spool->last_seq()));
    single(out, Metric::audit_backlog_events, static_cast<double>(s.spool->backlog()));
    head(out, Metric::audit_spool_bytes);
    sample(out, Metric::audit_spool_bytes, "state=\"used\"", static_cast<double>(s.spool->bytes()));
    sample(out, Metric::audit_spool_bytes, "state=\"max\"", static_cast<double>(s.spool->options().max_bytes));
  }
  if (s.recorder != nullptr) {
    single(out, Metric::audit_refused_total, static_cast<double>(s.recorder->refused()));
    single(out, Metric::audit_aggregated_total, static_cast<double>(s.recorder->aggregated()));
  }
  if (s.shipper != nullptr) {
    const audit::ShipperStatus& st = s.shipper->status();
    single(out, Metric::audit_shipped_events_total, static_cast<double>(st.events));
    single(out, Metric::audit_sink_errors_total, static_cast<double>(st.errors));
    single(out, Metric::audit_last_ship_success_timestamp_seconds, st.last_success ? std::chrono::duration<double>(st.last_success->time_since_epoch()).count() : 0.0);
    auto oldest = s.shipper->oldest_unshipped();
    single(out, Metric::audit_oldest_unshipped_timestamp_seconds, oldest ? std::chrono::duration<double>(oldest->time_since_epoch()).count() : 0.0);
  }
  if (s.server != nullptr) {
    const server::ServerStats& st = s.server->stats();
    single(out, Metric::connections, static_cast<double>(st.connections));
    single(out, Metric::connections_accepted_total, static_cast<double>(st.accepted));
    single(out, Metric::connections_refused_total, static_cast<double>(st.rejected_busy + st.rejected_per_uid));
    single(out, Metric::protocol_errors_total, static_cast<double>(st.protocol_errors));
  }
  return out;
}

}  // namespace chitty::api
