#include "chitty/audit/spool_recorder.hpp"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "chitty/base/random.hpp"
#include "chitty/base/units.hpp"
#include "chitty/log/journal.hpp"
#include "chitty/log/log.hpp"

namespace chitty::audit {
namespace {

constexpr std::string_view kMacKey = ",\"mac\":\"";
// What an event line is expected to take, for deciding where it would land
// (the exact size is checked again when it is written).
constexpr std::size_t kEstimate = 1024;

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

Result<void> SpoolRecorder::record(const Event& event) {
  if (closed_) return fail("the audit recorder is closed");
  Event e = event;
  bool refusal = e.decision == Decision::deny || e.decision == Decision::error;
  bool essential = refusal || e.kind == Kind::alert || e.kind == Kind::stop || e.kind == Kind::revoke;
  Spool::Room room = spool_.room(kEstimate);
  if (room != last_room_) {
    if (room == Spool::Room::reserve && last_room_ == Spool::Room::normal) {
      last_room_ = room;
      alert("the audit spool is in its reserve (" + format_size(spool_.bytes()) + " of " +
            format_size(spool_.options().max_bytes) + "; " + std::to_string(spool_.backlog()) +
            " events not yet shipped): only refusals are recorded, and allowed requests are refused, until the sink "
            "takes the backlog");
    } else if (room == Spool::Room::full) {
      last_room_ = room;
      log::error("audit", "ALERT: the audit spool is full: every request is refused (audit_unavailable)",
                 {{"spool_bytes", spool_.bytes()}, {"backlog", spool_.backlog()}});
    } else if (room == Spool::Room::normal) {
      last_room_ = room;
      log::info("audit", "the audit spool is below its reserve again", {{"spool_bytes", spool_.bytes()}});
    } else {
      last_room_ = room;
    }
  }
  if (room == Spool::Room::full) {
    ++refused_;
    return fail("the audit spool is full (" + format_size(spool_.bytes()) + " of " +
                format_size(spool_.options().max_bytes) + ")");
  }
  if (room == Spool::Room::reserve) {
    if (!essential) {
      ++refused_;
      return fail("the audit spool is in its reserve: only refusals are recorded until the sink takes the backlog");
    }
    if (e.kind == Kind::decision && refusal) {
      // Identical refusals within the window: the first is written, the
      // rest counted into one aggregate event.
      auto key = std::make_tuple(e.service, e.uid, e.ref, e.code, e.action);
      auto it = pending_.find(key);
      if (it != pending_.end()) {
        Event& agg = it->second.event;
        agg.count += 1;
        agg.at = e.at == WallTime{} ? clock_.wall_now() : e.at;
        ++aggregated_;
        return {};
      }
      Event agg = e;
      agg.kind = Kind::aggregate;
      agg.count = 0;  // the ones after this first
      agg.first_at = e.at == WallTime{} ? clock_.wall_now() : e.at;
      agg.request_id.clear();
      pending_.emplace(key, Pending{std::move(agg), clock_.now()});
    }
  }
  return write(e);
}

void SpoolRecorder::flush_aggregates(bool all) {
  MonoTime now = clock_.now();
  for (auto it = pending_.begin(); it != pending_.end();) {
    if (!all && now - it->second.opened < options_.aggregate_window) {
      ++it;
      continue;
    }
    Event agg = std::move(it->second.event);
    it = pending_.erase(it);
    if (agg.count == 0) continue;  // only the first came: it is written already
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
  std::vector<std::string> f;
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

std::vector<Event> SpoolRecorder::query(const Query& q) const {
  std::vector<Event> out;
  spool_.for_each_newest_first([&](std::string_view line) {
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

}  // namespace chitty::audit
