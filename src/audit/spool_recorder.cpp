#include "chitty/audit/spool_recorder.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <algorithm>

#include "chitty/base/random.hpp"
#include "chitty/base/units.hpp"
#include "chitty/log/journal.hpp"
#include "chitty/log/log.hpp"
#include "chitty/loop/work.hpp"

namespace chitty::audit {
namespace {

constexpr std::string_view kMacKey = ",\"mac\":\"";
// What an event line is expected to take, for deciding where it would land
// (the exact size is checked again when it is written).
constexpr std::size_t kEstimate = 1024;

// Refusals carry what the caller sent; these bound it in the trail.
constexpr std::size_t kMaxRefusalRef = 256;
constexpr std::size_t kMaxRefusalReason = 512;
// Reserve aggregates are written every this many windows.
constexpr int kReserveWindows = 6;

// Cuts `s` to at most `max` bytes (not inside a UTF-8 sequence) and says by
// how much.
void bound_text(std::string& s, std::size_t max) {
  if (s.size() <= max) return;
  std::size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  std::size_t dropped = s.size() - cut;
  s.resize(cut);
  s += "...(" + std::to_string(dropped) + " more bytes)";
}

std::string hex16(std::uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

struct SpoolRecorder::SyncState {
  SpoolRecorder* owner = nullptr;  // null once the recorder is closed
  bool in_flight = false;
  bool again = false;  // asked for while one was in flight
};

namespace {

struct SyncOp {
  uv_fs_t req{};
  int fd = -1;
  std::shared_ptr<void> state;
};

}  // namespace

void SpoolRecorder::sync_async() {
  unsynced_ = 0;
  if (sync_->in_flight) {
    sync_->again = true;
    return;
  }
  auto fd = spool_.take_sync_fd();
  if (!fd) {
    log::error("audit", "audit spool fsync failed", {{"reason", fd.error().message}});
    return;
  }
  if (*fd < 0) return;
  auto op = std::make_unique<SyncOp>();
  op->fd = *fd;
  op->state = sync_;
  op->req.data = op.get();
  if (int rc = uv_fs_fdatasync(loop_.raw(), &op->req, op->fd, &SpoolRecorder::on_synced); rc != 0) {
    // No request could be queued: sync here rather than not at all.
    uv_fs_req_cleanup(&op->req);
    int r = ::fdatasync(op->fd);
    ::close(op->fd);
    if (r != 0) {
      spool_.mark_dirty();
      log::error("audit", "audit spool fsync failed", {{"reason", std::string(std::strerror(errno))}});
    }
    return;
  }
  sync_->in_flight = true;
  op.release();  // owned by the request until on_synced
}

void SpoolRecorder::on_synced(uv_fs_t* req) noexcept {
  std::unique_ptr<SyncOp> op(static_cast<SyncOp*>(req->data));
  auto result = req->result;
  uv_fs_req_cleanup(req);
  ::close(op->fd);
  auto* st = static_cast<SyncState*>(op->state.get());
  st->in_flight = false;
  if (result < 0) {
    log::error("audit", "audit spool fsync failed", {{"reason", std::string(uv_strerror(static_cast<int>(result)))}});
    if (st->owner != nullptr) st->owner->spool_.mark_dirty();
  }
  if (st->again && st->owner != nullptr) {
    st->again = false;
    st->owner->sync_async();
  }
}

SpoolRecorder::SpoolRecorder(loop::Loop& loop, Spool& spool, const secure::MacKey& key, const Clock& clock,
                             Recovery recovery, RecorderOptions options)
    : loop_(loop), spool_(spool), key_(key), clock_(clock), options_(std::move(options)),
      timer_(loop, [this] { flush(); }), sync_(std::make_shared<SyncState>()) {
  sync_->owner = this;
  last_seq_ = recovery.last_seq;
  prev_hex_ = recovery.last_mac.empty() ? std::string(64, '0') : recovery.last_mac;
  mirrored_ = Head{last_seq_, prev_hex_};
  recovered_ = Head{recovery.last_seq, recovery.last_mac};
  id_prefix_ = random_u64();
  timer_.start(options_.fsync_interval, options_.fsync_interval);
  timer_.unref();
}

SpoolRecorder::~SpoolRecorder() { close(); }

void SpoolRecorder::close() {
  if (closed_) return;
  flush_aggregates(true);
  // Synchronous: everything written so far is on disk before the agent says
  // it stopped (a sync still in flight finishes on its own, harmlessly).
  sync_->owner = nullptr;
  spool_.mark_dirty();
  if (auto ok = spool_.sync(); !ok) log::error("audit", "audit spool fsync failed", {{"reason", ok.error().message}});
  // The final head, whatever the rate limit on mirroring.
  log::info("audit", "audit chain head", {{"seq", last_seq_}, {"mac", prev_hex_}});
  mirrored_ = Head{last_seq_, prev_hex_};
  closed_ = true;
  timer_.close();
}

Result<void> SpoolRecorder::write(Event& e) {
  e.host = options_.host;
  // A start names the head it continues from: a spool cut back behind a
  // head mirrored elsewhere shows in the verifier's report.
  if (e.kind == Kind::start && e.recovered_head.empty()) {
    e.recovered_head = std::to_string(recovered_.seq) + ":" + recovered_.mac;
  }
  e.seq = last_seq_ + 1;
  e.id = hex16(id_prefix_) + hex16(e.seq);
  if (e.at == WallTime{}) e.at = clock_.wall_now();
  std::string line = event_line(e, prev_hex_);
  secure::MacKey::Mac mac = key_.mac(line);
  std::string hex = secure::to_hex(mac);
  line.pop_back();  // the closing brace: the MAC goes last
  line += kMacKey;
  line += hex;
  line += "\"}";
  if (spool_.room(line.size()) == Spool::Room::full) {
    ++refused_;
    return fail("the audit spool is full (" + format_size(spool_.bytes()) + " of " +
                format_size(spool_.options().max_bytes) + ")");
  }
  if (auto ok = spool_.append(e.seq, line); !ok) return ok;
  last_seq_ = e.seq;
  prev_hex_ = std::move(hex);
  if (options_.fsync_events == 1) {
    // Every event on disk before its answer, as configured: on this thread.
    if (auto ok = spool_.sync(); !ok) {
      log::error("audit", "audit spool fsync failed", {{"reason", ok.error().message}});
      return ok;
    }
  } else if (++unsynced_ >= options_.fsync_events) {
    sync_async();
  }
  if (options_.journal_mirror) mirror(e, line);
  if (appended_) appended_();
  return {};
}

void SpoolRecorder::alert(const std::string& message) {
  log::error("audit", "ALERT: " + message, {{"spool_bytes", spool_.bytes()}, {"max_bytes", spool_.options().max_bytes},
                                            {"backlog", spool_.backlog()}});
  Event a;
  a.kind = Kind::alert;
  a.action = "audit-spool";
  a.decision = Decision::none;
  a.reason = message;
  a.at = clock_.wall_now();
  if (spool_.room(kEstimate) != Spool::Room::full) {
    if (auto ok = write(a); !ok) log::error("audit", "alert not recorded", {{"reason", ok.error().message}});
  }
}

Spool::Room SpoolRecorder::watch_room() {
  Spool::Room room = spool_.room(kEstimate);
  if (room == last_room_) return room;
  Spool::Room before = last_room_;
  last_room_ = room;
  if (room == Spool::Room::reserve && before == Spool::Room::normal) {
    alert("the audit spool is in its reserve (" + format_size(spool_.bytes()) + " of " +
          format_size(spool_.options().max_bytes) + "; " + std::to_string(spool_.backlog()) +
          " events not yet shipped): refusals are only counted, allowed decisions and state events go on, until the "
          "sink takes the backlog");
  } else if (room == Spool::Room::full) {
    log::error("audit", "ALERT: the audit spool is full: every request is refused (audit_unavailable)",
               {{"spool_bytes", spool_.bytes()}, {"backlog", spool_.backlog()}});
  } else if (room == Spool::Room::normal) {
    log::info("audit", "the audit spool is below its reserve again", {{"spool_bytes", spool_.bytes()}});
  }
  return room;
}

Result<void> SpoolRecorder::record(const Event& event) {
  if (closed_) return fail("the audit recorder is closed");
  Spool::Room room = watch_room();
  if (room == Spool::Room::full) {
    ++refused_;
    return fail("the audit spool is full (" + format_size(spool_.bytes()) + " of " +
                format_size(spool_.options().max_bytes) + ")");
  }
  // A request refused — a retrieval, an emergency route, an admin read — is
  // counted; state events (start, stop, reload, mode, alerts) never are.
  bool request = event.kind == Kind::decision || event.kind == Kind::revoke;
  bool refusal = request && (event.decision == Decision::deny || event.decision == Decision::error);
  if (refusal) return count_refusal(event, room);
  // Allowed decisions and state events: in full, the reserve included.
  Event e = event;
  return write(e);
}

Result<void> SpoolRecorder::count_refusal(const Event& refused, Spool::Room room) {
  // What a refused caller chose (a reference, the message quoting it) is cut
  // to a bound: an event it causes stays small.
  Event e = refused;
  bound_text(e.ref, kMaxRefusalRef);
  bound_text(e.reason, kMaxRefusalReason);
  WallTime at = e.at == WallTime{} ? clock_.wall_now() : e.at;
  auto add_to = [&](Pending& p) {
    Event& agg = p.event;
    agg.count += 1;
    agg.last_at = at;
    if (!agg.first_at) agg.first_at = at;
    if (!p.coarse && !e.ref.empty() && agg.refs.size() < kAggregateRefs &&
        std::find(agg.refs.begin(), agg.refs.end(), e.ref) == agg.refs.end()) {
      agg.refs.push_back(e.ref);
    }
    // The caller's identity as far as every refusal counted shares it.
    if (agg.pid != e.pid) agg.pid = -1;
    if (agg.exe != e.exe) agg.exe.clear();
    if (agg.unit != e.unit) agg.unit.clear();
    if (agg.container != e.container) agg.container.clear();
    if (agg.service != e.service) agg.service.clear();
    if (agg.channel != e.channel) agg.channel.clear();
    ++aggregated_;
  };
  auto open_aggregate = [&](const AggregateKey& key, bool first_written) -> Pending& {
    Event agg;
    agg.kind = Kind::aggregate;
    agg.action = e.action;
    agg.decision = e.decision;
    agg.code = e.code;
    agg.mode = e.mode;
    if (std::get<0>(key) != kAnyUid) {
      // One caller: who it is, as the first refusal showed.
      agg.uid = e.uid;
      agg.pid = e.pid;
      agg.exe = e.exe;
      agg.unit = e.unit;
      agg.container = e.container;
      agg.service = e.service;
      agg.channel = e.channel;
      agg.reason = "refusals after the first (" + e.code + ") from this caller within the aggregation window";
    } else {
      agg.reason = "refusals (" + e.code + ") counted without their details: the audit spool is in its reserve, or "
                   "more callers were refused than are counted one by one";
    }
    agg.count = 0;
    if (!first_written) agg.first_at = at;
    bool coarse = std::get<2>(key) == "*";
    if (coarse) {
      agg.action = "*";
      agg.reason = "refusals (" + e.code + ") counted without their details while the audit spool is in its reserve";
    }
    return pending_.emplace(key, Pending{std::move(agg), clock_.now(), coarse}).first->second;
  };

  AggregateKey mine{e.uid, e.code, e.action};
  if (auto it = pending_.find(mine); it != pending_.end()) {
    add_to(it->second);
    return {};
  }
  if (room == Spool::Room::normal && per_uid_keys_ < options_.max_aggregates) {
    // The first of its kind in this window: written in full (fail closed if
    // it cannot be), then the window counts the rest.
    Event first = e;
    if (auto ok = write(first); !ok) return ok;
    ++per_uid_keys_;
    open_aggregate(mine, true);
    return {};
  }
  // In the reserve, per code only, written at most every kReserveWindows
  // windows: refused callers can take very little of it.
  AggregateKey any{kAnyUid, e.code, room == Spool::Room::normal ? e.action : std::string("*")};
  auto it = pending_.find(any);
  Pending& p = it != pending_.end() ? it->second : open_aggregate(any, false);
  add_to(p);
  return {};
}

void SpoolRecorder::flush_aggregates(bool all) {
  MonoTime now = clock_.now();
  for (auto it = pending_.begin(); it != pending_.end();) {
    Duration window = it->second.coarse ? options_.aggregate_window * kReserveWindows : options_.aggregate_window;
    if (!all && now - it->second.opened < window) {
      ++it;
      continue;
    }
    Event agg = std::move(it->second.event);
    if (std::get<0>(it->first) != kAnyUid) --per_uid_keys_;
    it = pending_.erase(it);
    if (agg.count == 0) continue;  // only the first came: it is written already
    agg.at = clock_.wall_now();
    if (auto ok = write(agg); !ok) {
      log::error("audit", "aggregate event not recorded", {{"count", agg.count}, {"reason", ok.error().message}});
    }
  }
}

void SpoolRecorder::flush() {
  if (closed_) return;
  flush_aggregates(false);
  sync_async();
  MonoTime now = clock_.now();
  if (mirrored_.seq != last_seq_ && now - last_mirror_ >= std::chrono::seconds(1)) {
    // The head, elsewhere than the spool: cutting events off its tail shows.
    log::info("audit", "audit chain head", {{"seq", last_seq_}, {"mac", prev_hex_}});
    mirrored_ = Head{last_seq_, prev_hex_};
    last_mirror_ = now;
  }
}

void SpoolRecorder::mirror(const Event& e, std::string_view line) {
  // The journal's rate limit (10000 lines per 30 s by default) must never be
  // reached by the mirror: the chain head lines and alerts go the same way.
  // Past the budget an event is left out of the mirror (never out of the
  // spool); the next one mirrored says how many were.
  if (!mirror_throttle_.allow(clock_.now())) return;
  std::vector<std::string> f;
  if (mirror_throttle_.suppressed() > 0) {
    f.push_back("CHITTY_MIRROR_SKIPPED=" + std::to_string(mirror_throttle_.suppressed()));
  }
  f.push_back("MESSAGE=audit " + std::string(decision_name(e.decision)) + " " + e.action +
              (e.service.empty() ? "" : " service=" + e.service) + (e.ref.empty() ? "" : " ref=" + e.ref) +
              (e.code.empty() ? "" : " code=" + e.code));
  f.push_back(std::string("PRIORITY=") + (e.decision == Decision::error ? "3" : e.decision == Decision::deny ? "5" : "6"));
  f.push_back("SYSLOG_IDENTIFIER=chitty-agent");
  f.push_back("CHITTY_MODULE=audit");
  f.push_back("CHITTY_EVENT=" + std::string(line));
  f.push_back("CHITTY_KIND=" + std::string(kind_name(e.kind)));
  f.push_back("CHITTY_SEQ=" + std::to_string(e.seq));
  f.push_back("CHITTY_EVENT_ID=" + e.id);
  f.push_back("CHITTY_DECISION=" + std::string(decision_name(e.decision)));
  f.push_back("CHITTY_ACTION=" + e.action);
  if (!e.service.empty()) f.push_back("CHITTY_SERVICE=" + e.service);
  if (!e.ref.empty()) f.push_back("CHITTY_REF=" + e.ref);
  if (!e.code.empty()) f.push_back("CHITTY_CODE=" + e.code);
  if (!e.request_id.empty()) f.push_back("CHITTY_REQUEST_ID=" + e.request_id);
  f.push_back("CHITTY_MAC=" + prev_hex_);
  log::journal_send(f);
}

namespace {

// The query over segment files: pure reading and parsing, safe off the loop.
std::vector<Event> scan(const std::vector<std::string>& paths, const Query& q) {
  std::vector<Event> out;
  Spool::for_each_newest_first(paths, [&](std::string_view line) {
    auto e = parse_event(line);
    if (!e) return true;
    if (q.since && e->at < *q.since) return false;  // in time order: nothing older matches
    if (q.service && e->service != *q.service) return true;
    out.push_back(std::move(*e));
    return out.size() < q.limit;
  });
  std::reverse(out.begin(), out.end());
  return out;
}

}  // namespace

void SpoolRecorder::render_async(const Query& q, Render render, RenderDone done) const {
  std::vector<std::string> paths = spool_.segment_paths();
  loop::run_in_pool<std::string>(
      loop_, [paths = std::move(paths), q, render = std::move(render)] { return render(scan(paths, q)); },
      std::move(done));
}

std::vector<Event> SpoolRecorder::query(const Query& q) const { return scan(spool_.segment_paths(), q); }

std::optional<std::uint64_t> SpoolRecorder::recorded_revocations_generation(const Spool& spool) {
  std::optional<std::uint64_t> found;
  spool.for_each_newest_first([&](std::string_view line) {
    // Only the lines that can hold it are parsed (this runs at start).
    if (line.find("\"revocations_generation\":") == std::string_view::npos) return true;
    auto e = parse_event(line);
    if (!e || e->revocations_generation == 0) return true;
    found = e->revocations_generation;
    return false;
  });
  return found;
}

}  // namespace chitty::audit
