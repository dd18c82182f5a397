// Every decision the agent makes about a secret — allowed, refused, or
// failed — and every change of its state (revocations, mode changes,
// reloads, start and stop) is an audit event (docs/audit.md). Events go
// through one Recorder before the answer leaves; if an event cannot be
// recorded the request fails closed (503 audit_unavailable), so nothing is
// ever served unaudited. Events name references, never values.
//
// The durable Recorder (SpoolRecorder, spool_recorder.hpp) chains the events
// with a keyed MAC into an append-only spool and ships them to a sink; the
// MemoryRecorder keeps them in memory (tests, benchmarks).
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "chitty/base/clock.hpp"
#include "chitty/base/result.hpp"

namespace chitty::json {
class Writer;
}

namespace chitty::audit {

// Names: kKindNames in audit.cpp, in this order.
enum class Kind {
  decision,   // a request decided: allow, deny or error
  revoke,     // an emergency revocation made or cleared
  mode,       // normal <-> fallback
  reload,     // the configuration reloaded (or refused)
  start,      // the agent started
  stop,       // the agent stopped
  aggregate,  // refusals counted into one event (per uid, code and action, per window)
  alert,      // something an operator must look at (the spool is nearly full, the token refused)
  prefetch,   // a value fetched ahead of need (action: why); many in a minute are counted into one
};
std::string_view kind_name(Kind k) noexcept;

// How many distinct references an aggregate event lists.
inline constexpr std::size_t kAggregateRefs = 8;

// Names: kDecisionNames in audit.cpp, in this order.
enum class Decision {
  allow,  // served (or, for a state change, carried out)
  deny,   // refused by policy or because of the request (4xx)
  error,  // could not be carried out (5xx: upstream, memory, storage)
  none,   // state changes that decide nothing
};
std::string_view decision_name(Decision d) noexcept;

// A request's risk assessment as an event carries it (docs/risk.md).
struct Risk {
  int score = 0;
  std::string level;     // "low" | "medium" | "high" | "critical"
  std::string decision;  // the band: "allow" | "monitor" | "step_up" | "deny"
  bool step_up = false;  // served in the step-up band on the service's step-up token
  std::vector<std::pair<std::string, int>> factors;  // those that fired, with what each added
  bool operator==(const Risk&) const = default;
};

struct Event {
  Kind kind = Kind::decision;
  WallTime at{};
  std::string request_id;
  std::string action;      // "retrieve", "batch-retrieve", "validate", "revoke", ...
  std::string service;     // the attested service; "" when none matched
  std::int64_t uid = -1;   // -1 when unknown
  std::int64_t pid = -1;
  std::string exe;         // "" when unknown
  std::string unit;
  std::string container;
  std::string ref;         // canonical reference (or resolved key); "" when the request named none
  std::string credential_type;
  Decision decision = Decision::deny;
  std::string code;        // the error code of a refusal ("forbidden")
  std::string reason;      // what the client was told, without secret material
  std::string cache;       // "hit" | "stale" | "miss" | ""
  std::string source;      // "env" | "systemd-credential" | "1password" | ""
  std::string mode;        // "normal" | "fallback"
  std::int64_t latency_us = 0;
  std::string channel;     // "mcp" for a request through chittyctl's MCP server; "" otherwise
  bool withheld = false;   // allowed, but the value was withheld from the channel (masked only)
  std::optional<Risk> risk;            // decision: how the request was scored (none: not scored)
  std::uint64_t count = 1;             // aggregate (and prefetch): how many it stands for (not written one by one)
  std::optional<WallTime> first_at;    // aggregate: the first of them
  std::optional<WallTime> last_at;     // aggregate: the last of them
  std::vector<std::string> refs;       // aggregate: some of the references they named (at most kAggregateRefs)
  std::string recovered_head;          // start: the chain head recovered from the spool, "SEQ:MAC" ("0:" when new)
  // start, revoke: the generation of the revocations file in force after it
  // (0: not said). A copy of the file older than the newest one recorded is
  // a rollback (docs/operations.md).
  std::uint64_t revocations_generation = 0;

  // Set by the recorder.
  std::string id;
  std::uint64_t seq = 0;
  std::string host;
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
  [[nodiscard]] virtual Result<void> record(const Event& event) = 0;
  // Recorded events matching `q`, oldest first (at most q.limit, the newest).
  virtual std::vector<Event> query(const Query& q) const = 0;
  // The same without holding up the loop, for reads that may cover a large
  // spool: `render` turns the matching events into a text (an answer's
  // body) and `done` gets that text on the loop thread. The durable recorder
  // reads, parses and renders on the thread pool, so `render` must be a
  // pure function of its argument (no loop-thread state) and the events
  // never reach the loop. The default does it all at once, for recorders in
  // memory.
  using Render = std::function<std::string(const std::vector<Event>&)>;
  using RenderDone = std::function<void(std::string)>;
  virtual void render_async(const Query& q, Render render, RenderDone done) const { done(render(query(q))); }
};

// The most recent events in memory (a ring of `capacity`).
class MemoryRecorder final : public Recorder {
 public:
  explicit MemoryRecorder(std::size_t capacity = 4096) : capacity_(capacity) {}
  [[nodiscard]] Result<void> record(const Event& event) override;
  std::vector<Event> query(const Query& q) const override;
  // Oldest first.
  std::vector<Event> recent(std::size_t limit) const;
  std::uint64_t recorded() const noexcept { return recorded_; }

 private:
  std::size_t capacity_;
  std::deque<Event> events_;
  std::uint64_t recorded_ = 0;
};

// Every field of an event, as members of a JSON object the caller opened
// and closes (the schema of docs/audit.md, without "prev" and "mac"): what
// the spool line holds and what GET /api/credentials/audit answers.
void write_event_fields(json::Writer& w, const Event& e);
// The JSON line of an event without its MAC, ending in "prev":"<hex>"}
// (docs/audit.md has the schema). `prev` is the previous event's MAC.
std::string event_line(const Event& e, std::string_view prev_mac_hex);
// An event read back from a line (the spool, a stream); nullopt when the
// line is not an event.
std::optional<Event> parse_event(std::string_view line);

}  // namespace chitty::audit
