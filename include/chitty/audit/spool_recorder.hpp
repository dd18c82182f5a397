// The durable Recorder (docs/audit.md): each event gets a sequence number, a
// unique id and the host; its JSON line is chained to the previous one with
// an HMAC-SHA-256 under the chain key and appended to the spool before
// record() returns. fsync is batched (every `fsync_events` events, or every
// `fsync_interval`) and runs on libuv's thread pool, so the loop never waits
// for the disk; at close it is synchronous. The chain head (seq and MAC) is mirrored to the log —
// the journal under systemd — at most once a second and at stop; under
// systemd every event is also mirrored to the journal with CHITTY_* fields.
//
// Spool pressure: in the reserve (the last reserve_bytes before the cap)
// only refusals and alerts are recorded — allowed requests fail closed — and
// identical refusals within `aggregate_window` are counted into one
// aggregate event; past the cap nothing is recorded and every request fails
// closed. Entering the reserve and reaching the cap are alerts.
//
// Thread: loop thread only.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <tuple>

#include "chitty/audit/audit.hpp"
#include "chitty/audit/spool.hpp"
#include "chitty/audit/verify.hpp"
#include "chitty/base/clock.hpp"
#include "chitty/loop/timer.hpp"
#include "chitty/secure/mac_key.hpp"

namespace chitty::audit {

struct RecorderOptions {
  std::uint32_t fsync_events = 256;
  std::chrono::milliseconds fsync_interval{200};
  Duration aggregate_window = std::chrono::seconds(10);
  bool journal_mirror = false;  // mirror every event to journald (under systemd)
  std::string host;
};

class SpoolRecorder final : public Recorder {
 public:
  SpoolRecorder(loop::Loop& loop, Spool& spool, const secure::MacKey& key, const Clock& clock, Recovery recovery,
                RecorderOptions options);
  ~SpoolRecorder() override;  // syncs
  SpoolRecorder(const SpoolRecorder&) = delete;
  SpoolRecorder& operator=(const SpoolRecorder&) = delete;

  Result<void> record(const Event& event) override;
  std::vector<Event> query(const Query& q) const override;

  // Called after every event written (the shipper's kick).
  void on_appended(std::function<void()> f) { appended_ = std::move(f); }
  // Syncs, writes pending aggregates, mirrors the head. Called by the timer
  // and at stop. Idempotent.
  void flush();
  // Stops the timer (shutdown); flushes first.
  void close();

  Head head() const { return Head{last_seq_, prev_hex_}; }
  // Where the next event would land.
  Spool::Room room() const noexcept { return spool_.room(1024); }
  std::uint64_t aggregated() const noexcept { return aggregated_; }
  std::uint64_t refused() const noexcept { return refused_; }

 private:
  Result<void> write(Event& e);
  void alert(const std::string& message);
  void flush_aggregates(bool all);
  void mirror(const Event& e, std::string_view line);
  // fdatasync of the spool off the loop thread (one at a time; a request
  // while one runs is served when it completes).
  void sync_async();
  struct SyncState;
  static void on_synced(uv_fs_t* req) noexcept;

  loop::Loop& loop_;
  Spool& spool_;
  const secure::MacKey& key_;
  const Clock& clock_;
  RecorderOptions options_;
  loop::Timer timer_;
  std::function<void()> appended_;
  std::uint64_t last_seq_ = 0;
  std::string prev_hex_;
  std::uint32_t unsynced_ = 0;
  std::shared_ptr<SyncState> sync_;  // shared with a sync in flight, which may outlive this
  std::uint64_t id_prefix_ = 0;
  Head mirrored_;
  MonoTime last_mirror_{};
  Spool::Room last_room_ = Spool::Room::normal;
  bool closed_ = false;
  std::uint64_t aggregated_ = 0;
  std::uint64_t refused_ = 0;
  // Identical refusals being counted (reserve only): (service, uid, ref, code, action).
  struct Pending {
    Event event;
    MonoTime opened;
  };
  std::map<std::tuple<std::string, std::int64_t, std::string, std::string, std::string>, Pending> pending_;
};

}  // namespace chitty::audit
