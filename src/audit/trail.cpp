#include "chitty/audit/trail.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include "chitty/audit/verify.hpp"
#include "chitty/base/units.hpp"
#include "chitty/log/journal.hpp"
#include "chitty/log/log.hpp"

namespace chitty::audit {

Result<std::unique_ptr<Trail>> Trail::open(Deps deps, const config::AuditConfig& config, const std::string& state_dir) {
  std::unique_ptr<Trail> t(new Trail(std::move(deps)));
  if (auto r = t->open_key(config, state_dir); !r) return tl::unexpected(r.error());
  if (!config.durable) {
    log::warn("audit", "audit events are kept in memory only (audit.durable = false): they are lost at restart");
    return t;
  }
  if (auto r = t->open_spool(config, state_dir); !r) return tl::unexpected(r.error());
  if (auto r = t->open_sink(config); !r) return tl::unexpected(r.error());
  return t;
}

Trail::~Trail() { close(); }

// The chain key MACs the chain and the revocations file, so it is opened
// whether or not the trail is durable.
Result<void> Trail::open_key(const config::AuditConfig& config, const std::string& state_dir) {
  std::string key_file = config.chain_key_file;
  if (key_file.empty()) {
    key_file = state_dir + "/audit-chain.key";
    struct stat st {};
    if (::stat(key_file.c_str(), &st) != 0) {
      if (auto g = secure::MacKey::generate_file(key_file); !g) return fail("audit: " + g.error().message);
      log::warn("audit", "generated an audit chain key in the state directory; give it as a credential instead "
                         "(audit.chain_key_file) so that it does not sit beside the spool",
                {{"file", key_file}});
    }
  }
  auto key = secure::MacKey::from_file(deps_.arena, key_file);
  if (!key) return fail("audit: " + key.error().message);
  chain_key_ = std::move(*key);
  return {};
}

Result<void> Trail::open_spool(const config::AuditConfig& config, const std::string& state_dir) {
  SpoolOptions so;
  so.dir = state_dir + "/audit";
  so.max_bytes = config.max_spool_bytes;
  so.reserve_bytes = config.reserve_bytes;
  so.segment_bytes = config.segment_bytes;
  auto spool = Spool::open(so, recovery_);
  if (!spool) return fail("audit: " + spool.error().message);
  spool_ = std::move(*spool);
  log::info("audit", "audit spool open",
            {{"dir", so.dir}, {"last_seq", recovery_.last_seq}, {"acknowledged", recovery_.acknowledged},
             {"segments", recovery_.segments}, {"bytes", recovery_.bytes}});
  RecorderOptions ro;
  ro.fsync_events = config.fsync_events;
  ro.fsync_interval = config.fsync_interval;
  ro.aggregate_window = config.aggregate_window;
  ro.max_aggregates = config.aggregate_keys;
  ro.journal_mirror = config.journal_mirror && log::stderr_is_journal();
  char host[256] = {};
  ::gethostname(host, sizeof host - 1);
  ro.host = host;
  spool_recorder_ = std::make_unique<SpoolRecorder>(deps_.loop, *spool_, *chain_key_, deps_.clock, recovery_, ro);
  if (recovery_.torn_bytes > 0) {
    alert("recovered the audit spool: a torn last event of " + std::to_string(recovery_.torn_bytes) +
          " bytes (written when the agent or the machine stopped, its answer never sent) was moved to " +
          recovery_.torn_file);
  }
  if (recovery_.damaged_lines > 0) {
    alert("the audit spool ends with " + std::to_string(recovery_.damaged_lines) +
          " line(s) that are not events; the chain continues from the last event (verify reports the break)");
  }
  return {};
}

Result<void> Trail::open_sink(const config::AuditConfig& config) {
  if (config.sink.empty()) return {};
  if (auto ok = upstream::HttpClient::check_url(config.sink, config.allow_insecure_http, false); !ok) {
    return fail("audit.sink: " + ok.error().message);
  }
  if (!config.token_file.empty()) {
    auto t = upstream::Token::from_file(deps_.arena, deps_.sealer, config.token_file);
    if (!t) return fail("audit.token_file: " + t.error().message);
    sink_token_ = std::move(*t);
  }
  upstream::HttpClientOptions ho;
  ho.ca_file = config.ca_file;
  ho.allow_insecure_http = config.allow_insecure_http;
  ho.max_host_connections = 2;
  sink_http_ = std::make_unique<upstream::HttpClient>(deps_.loop, deps_.tasks, deps_.arena, deps_.clock, ho);
  ShipperOptions sh;
  sh.url = config.sink;
  sh.format = config.sink_format == "journal-export" ? SinkFormat::journal_export : SinkFormat::ndjson;
  sh.token = sink_token_.get();
  sh.batch_events = config.batch_events;
  sh.batch_bytes = config.batch_bytes;
  sh.interval = config.ship_interval;
  sh.timeout = config.sink_timeout;
  sh.backoff = config.retry_backoff;
  sh.max_backoff = config.retry_max_backoff;
  shipper_ = std::make_unique<Shipper>(deps_.loop, *sink_http_, *spool_, deps_.clock, sh, deps_.jitter);
  spool_recorder_->on_appended([this] { shipper_->kick(); });
  return {};
}

void Trail::state(Event e) {
  if (e.at == WallTime{}) e.at = deps_.clock.wall_now();
  if (e.mode.empty() && mode_) e.mode = mode_();
  if (auto r = recorder().record(e); !r) {
    log::error("audit", "state change not recorded", {{"action", e.action}, {"reason", r.error().message}});
  }
}

void Trail::state(Kind kind, std::string action, std::string reason, Decision decision, std::string code) {
  Event e;
  e.kind = kind;
  e.action = std::move(action);
  e.decision = decision;
  e.code = std::move(code);
  e.reason = std::move(reason);
  state(std::move(e));
}

void Trail::alert(std::string message) {
  log::error("audit", "ALERT: " + message);
  state(Kind::alert, "audit-spool", std::move(message));
}

void Trail::start() {
  if (shipper_) shipper_->start();
}

void Trail::close() {
  if (closed_) return;
  closed_ = true;
  if (spool_recorder_) spool_recorder_->close();
  if (shipper_) shipper_->close();
  if (sink_http_) sink_http_->close();
}

int verify_command(const std::string& path, const std::string& key_file, const std::optional<std::string>& head_text) {
  std::optional<Head> head;
  if (head_text) {
    head = parse_head(*head_text);
    if (!head) {
      std::fprintf(stderr, "--head must be SEQ:MAC (the \"audit chain head\" the agent logs), not %s\n",
                   head_text->c_str());
      return 2;
    }
  }
  secure::ArenaOptions ao;
  ao.capacity = 64 * 1024;
  ao.allow_unlocked = true;  // a short-lived tool; the key is wiped when it exits
  auto arena = secure::Arena::create(ao);
  if (!arena) {
    std::fprintf(stderr, "%s\n", arena.error().message.c_str());
    return 2;
  }
  auto key = secure::MacKey::from_file(**arena, key_file);
  if (!key) {
    std::fprintf(stderr, "%s\n", key.error().message.c_str());
    return 2;
  }
  VerifyReport r = verify_path(path, **key, head);
  if (r.ok) {
    std::printf("ok: %llu events, seq %llu to %llu, intact; head %llu:%s%s\n",
                static_cast<unsigned long long>(r.events), static_cast<unsigned long long>(r.first_seq),
                static_cast<unsigned long long>(r.last_seq), static_cast<unsigned long long>(r.last_seq),
                r.last_mac.c_str(),
                r.duplicates > 0 ? (" (" + std::to_string(r.duplicates) + " duplicate deliveries skipped)").c_str() : "");
    return 0;
  }
  std::printf("BROKEN: %s%s%s\n", r.problem.c_str(),
              r.break_line > 0 ? (" (" + (r.break_file.empty() ? std::string("line ") : r.break_file + ", line ") +
                                  std::to_string(r.break_line) + ")")
                                     .c_str()
                               : "",
              r.events > 0 ? ("; intact before it: " + std::to_string(r.events) + " events up to seq " +
                              std::to_string(r.last_seq))
                                 .c_str()
                           : "");
  return 1;
}

}  // namespace chitty::audit
