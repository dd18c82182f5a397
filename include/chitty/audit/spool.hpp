// The durable audit spool (docs/audit.md): append-only segment files of
// NDJSON lines in <state_dir>/audit/, one event per line.
//
//   segment-<first seq, 20 digits>.ndjson   the events, in order
//   shipped                                 the last seq the sink acknowledged
//
// An event is written (write(2), so it survives a crash of the process) before
// its answer is sent; fsync is batched by the owner (sync()). Segments rotate
// at segment_bytes and are deleted only once every event in them has been
// acknowledged by the sink. The total size is capped: past max_bytes -
// reserve_bytes only refusals and alerts are accepted, past max_bytes
// nothing — the caller then fails closed.
//
// Thread: loop thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "chitty/base/fd.hpp"
#include "chitty/base/result.hpp"

namespace chitty::audit {

struct SpoolOptions {
  std::string dir;
  std::uint64_t segment_bytes = 8 * 1024 * 1024;
  std::uint64_t max_bytes = 256 * 1024 * 1024;
  std::uint64_t reserve_bytes = 16 * 1024 * 1024;
};

// What opening found.
struct Recovery {
  std::uint64_t last_seq = 0;       // of the last complete event (0: none)
  std::string last_mac;             // its MAC (hex), "" when none
  std::uint64_t acknowledged = 0;   // the last seq the sink acknowledged
  std::size_t segments = 0;
  std::uint64_t bytes = 0;
  // A last line without its newline (the process or the machine died in the
  // middle of writing it): its bytes are moved to `torn_file` and the
  // segment cut back to its last complete line.
  std::uint64_t torn_bytes = 0;
  std::string torn_file;
  // Complete lines at the end that are not events (damage): skipped back
  // over to find the last event; reported, and left for verify to flag.
  std::size_t damaged_lines = 0;
};

// Finds the seq of a spool line without parsing all of it: the line must
// open as the recorder writes it, {"v":1,"id":"…","seq":N, (N without a
// leading zero); nullopt otherwise.
std::optional<std::uint64_t> line_seq(std::string_view line) noexcept;
// The MAC of a spool line (the trailing ,"mac":"<64 lower-case hex>"}), ""
// when absent.
std::string_view line_mac(std::string_view line) noexcept;

class Spool {
 public:
  [[nodiscard]] static Result<std::unique_ptr<Spool>> open(const SpoolOptions& options, Recovery& recovery);
  ~Spool();
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  enum class Room { normal, reserve, full };
  // Where a line of `bytes` would land.
  Room room(std::size_t bytes) const noexcept;

  // Appends `line` (without its newline) as event `seq`; rotates to a new
  // segment first when the active one is full. An error leaves the spool as
  // it was (a partial write is cut back).
  [[nodiscard]] Result<void> append(std::uint64_t seq, std::string_view line);
  // fdatasync of what was appended since the last sync (no-op if nothing).
  [[nodiscard]] Result<void> sync();
  // For an fdatasync off the loop thread: a duplicate of the active
  // segment's descriptor (the caller closes it), or -1 when nothing was
  // appended since the last sync. The spool counts as synced from here on;
  // a failed sync calls mark_dirty().
  [[nodiscard]] Result<int> take_sync_fd();
  void mark_dirty() noexcept { dirty_ = static_cast<bool>(fd_); }
  bool dirty() const noexcept { return dirty_; }

  // Reading for the shipper: complete lines after `after_seq`, at most
  // `max_lines` lines and `max_bytes` bytes (at least one line if any).
  struct Batch {
    std::vector<std::string> lines;
    std::uint64_t last_seq = 0;
  };
  [[nodiscard]] Result<Batch> read_after(std::uint64_t after_seq, std::size_t max_lines, std::size_t max_bytes);
  // The sink has every event up to `seq`: persist it, delete the segments
  // wholly covered (never the active one).
  [[nodiscard]] Result<void> acknowledge(std::uint64_t seq);

  // Every line, newest first, until `visit` returns false (queries).
  void for_each_newest_first(const std::function<bool(std::string_view line)>& visit) const;
  // The segment files, oldest first, for reading off the loop thread.
  std::vector<std::string> segment_paths() const;
  // Every complete line of `paths` (oldest first), newest first, until
  // `visit` returns false. Reads files only: safe on any thread while the
  // loop appends (a line not yet complete is skipped; a segment deleted
  // meanwhile is skipped).
  static void for_each_newest_first(const std::vector<std::string>& paths,
                                    const std::function<bool(std::string_view line)>& visit);

  std::uint64_t last_seq() const noexcept { return last_seq_; }
  std::uint64_t acknowledged() const noexcept { return acknowledged_; }
  std::uint64_t backlog() const noexcept { return last_seq_ > acknowledged_ ? last_seq_ - acknowledged_ : 0; }
  std::uint64_t bytes() const noexcept { return bytes_; }
  std::size_t segments() const noexcept { return segments_.size(); }
  const SpoolOptions& options() const noexcept { return options_; }

 private:
  struct Segment {
    std::string path;
    std::uint64_t first_seq = 0;
    std::uint64_t last_seq = 0;  // 0 when empty
    std::uint64_t bytes = 0;
  };
  Spool() = default;
  [[nodiscard]] Result<void> start_segment(std::uint64_t first_seq);
  [[nodiscard]] Result<void> recover_segment(Segment& s, bool newest, Recovery& r);
  [[nodiscard]] Result<void> write_shipped(std::uint64_t seq);

  SpoolOptions options_;
  std::vector<Segment> segments_;  // oldest first; the last is the active one
  UniqueFd fd_;                    // the active segment, O_APPEND
  std::uint64_t last_seq_ = 0;
  std::uint64_t acknowledged_ = 0;
  std::uint64_t bytes_ = 0;
  bool dirty_ = false;
  // The shipper's read position (a hint; rebuilt when it does not fit).
  std::size_t cursor_segment_ = 0;
  std::uint64_t cursor_offset_ = 0;
  std::uint64_t cursor_seq_ = 0;
};

}  // namespace chitty::audit
