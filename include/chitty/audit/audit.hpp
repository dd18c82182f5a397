// Every decision the agent makes about a secret — allowed or refused — goes
// through one Recorder before the answer leaves. If the event cannot be
// recorded the request fails closed (503 audit_unavailable), so nothing is
// ever served unaudited. Events name references, never values.
//
// This issue keeps events in memory (MemoryRecorder); the audit issue adds the
// durable keyed chain and the upstream sink behind the same interface.
#pragma once

#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <vector>

#include "chitty/base/clock.hpp"
#include "chitty/base/result.hpp"

namespace chitty::audit {

enum class Decision { allow, deny };
std::string_view decision_name(Decision d) noexcept;

struct Event {
  WallTime at{};
  std::string request_id;
  std::string action;      // "retrieve"
  std::string service;     // the attested service; "" when none matched
  std::int64_t uid = -1;   // -1 when unknown
  std::int64_t pid = -1;
  std::string exe;         // "" when unknown
  std::string ref;         // canonical reference; "" when the request named none
  std::string credential_type;
  Decision decision = Decision::deny;
  std::string code;        // the error code of a refusal ("forbidden")
  std::string reason;      // what the client was told, without secret material
  std::string cache;       // "hit" | "stale" | "miss" | ""
  std::string source;      // "env" | "systemd-credential" | "1password" | ""
  std::string mode;        // "normal" | "fallback"
  std::int64_t latency_us = 0;
};

// Which recorded events to read back (GET /api/credentials/audit, insights).
struct Query {
  std::optional<std::string> service;  // only this service's events
  std::optional<WallTime> since;       // only events at or after
  std::size_t limit = 100;             // the newest this many
};

class Recorder {
 public:
  virtual ~Recorder() = default;
  // Records `event`; an error means it could not be, and the decision it
  // describes must not take effect.
  virtual Result<void> record(const Event& event) = 0;
  // Recorded events matching `q`, oldest first (at most q.limit, the newest).
  virtual std::vector<Event> query(const Query& q) const = 0;
};

// The most recent events in memory (a ring of `capacity`).
class MemoryRecorder final : public Recorder {
 public:
  explicit MemoryRecorder(std::size_t capacity = 4096) : capacity_(capacity) {}
  Result<void> record(const Event& event) override;
  std::vector<Event> query(const Query& q) const override;
  // Oldest first.
  std::vector<Event> recent(std::size_t limit) const;
  std::uint64_t recorded() const noexcept { return recorded_; }

 private:
  std::size_t capacity_;
  std::deque<Event> events_;
  std::uint64_t recorded_ = 0;
};

}  // namespace chitty::audit
