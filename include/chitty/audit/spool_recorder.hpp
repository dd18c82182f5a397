// The durable Recorder (docs/audit.md): each event gets a sequence number, a
// unique id and the host; its JSON line is chained to the previous one with
// an HMAC-SHA-256 under the chain key and appended to the spool before
// record() returns. fsync is batched (every `fsync_events` events, or every
// `fsync_interval`) and runs on libuv's thread pool, so the loop never waits
// for the disk; at close it is synchronous. The chain head (seq and MAC) is mirrored to the log —
// the journal under systemd — at most once a second and at stop; under
// systemd every event is also mirrored to the journal with CHITTY_* fields.
//
// Refusals are aggregated, always: within `aggregate_window` the first
// refusal of a (uid, code, action) is written in full and the rest are
// counted into one `aggregate` event (with the first and last times and some
// of the references named) written when the window ends. At most
// `max_aggregates` such keys are counted at once; beyond them refusals are
// only counted, per (code, action), and in the reserve per code, written
// every sixth window. What a refused caller sent is cut to a bound (a
// reference to 256 bytes, a reason to 512). So what callers who are refused
// can make the recorder write is bounded — at most 2 × max_aggregates +
// (codes × actions) events of a few KiB per window, whatever their number
// and however fast they ask (docs/audit.md) — and cannot push the spool
// into its reserve, let alone fill it, for everyone else.
//
// Spool pressure: the reserve (the last reserve_bytes before the cap) is for
// allowed decisions and state events; refusals are only counted there.
// Past the cap nothing is recorded and every request fails closed. Entering
// the reserve and reaching the cap are alerts.
//
// Thread: loop thread only.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <tuple>

#include "chitty/audit/audit.hpp"
#include "chitty/audit/spool.hpp"
#include "chitty/audit/verify.hpp"
#include "chitty/base/clock.hpp"
#include "chitty/log/log.hpp"
#include "chitty/loop/timer.hpp"
#include "chitty/secure/mac_key.hpp"

namespace chitty::audit {

struct RecorderOptions {
  std::uint32_t fsync_events = 256;
  std::chrono::milliseconds fsync_interval{200};
  Duration aggregate_window = std::chrono::seconds(10);
  std::size_t max_aggregates = 64;  // (uid, code, action) keys counted at once
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

  [[nodiscard]] Result<void> record(const Event& event) override;
  std::vector<Event> query(const Query& q) const override;
  // Reads the spool's segments on libuv's thread pool (they are append-only:
  // a line being written is not complete, and is skipped) and renders there,
  // so a read over a large spool never stalls the loop.
  void render_async(const Query& q, Render render, RenderDone done) const override;

  // Called after every event written (the shipper's kick).
  void on_appended(std::function<void()> f) { appended_ = std::move(f); }
  // Syncs, writes pending aggregates, mirrors the head. Called by the timer
  // and at stop. Idempotent.
  void flush();
  // Stops the timer (shutdown); flushes first.
  void close();

  Head head() const { return Head{last_seq_, prev_hex_}; }
  // The newest revocations generation the spool's events record (start and
  // revoke events), reading back from the newest; nullopt when none does.
  static std::optional<std::uint64_t> recorded_revocations_generation(const Spool& spool);
  // Where the next event would land.
  Spool::Room room() const noexcept { return spool_.room(1024); }
  std::uint64_t aggregated() const noexcept { return aggregated_; }
  std::uint64_t refused() const noexcept { return refused_; }

 private:
  [[nodiscard]] Result<void> write(Event& e);
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
  Head recovered_;  // what the spool held at open: the start event names it
  MonoTime last_mirror_{};
  Spool::Room last_room_ = Spool::Room::normal;
  bool closed_ = false;
  std::uint64_t aggregated_ = 0;
  std::uint64_t refused_ = 0;
  // Refusals being counted: by (uid, code, action); uid kAnyUid for the
  // ones counted per (code, action) only (the reserve, or too many keys).
  static constexpr std::int64_t kAnyUid = -2;
  using AggregateKey = std::tuple<std::int64_t, std::string, std::string>;
  struct Pending {
    Event event;
    MonoTime opened;
    bool coarse = false;  // the reserve's: per code only, no references, written less often
  };
  [[nodiscard]] Result<void> count_refusal(const Event& e, Spool::Room room);
  Spool::Room watch_room();
  std::map<AggregateKey, Pending> pending_;
  // At most 1000 events per 10 s mirrored to the journal (see mirror()).
  log::Throttle mirror_throttle_{1000, std::chrono::seconds(10)};
  std::size_t per_uid_keys_ = 0;  // entries of pending_ with a real uid
};

}  // namespace chitty::audit
