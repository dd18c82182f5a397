// Risk scoring (docs/risk.md): every request scored 0-100 from weighted
// factors, before any value is unsealed, and the score's band decides —
// allow, allow with enhanced monitoring, step-up, deny. Soft factors compare
// the request with the service's own history (its baseline: references,
// callers, hours, rate), learnt online from what it was served; hard factors
// need no history. Baselines hold references, names, hours and counts,
// never a value.
//
// Pure: time comes from the injected clock; nothing here reads the system.
// Thread: loop thread only.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "chitty/base/clock.hpp"
#include "chitty/base/result.hpp"

namespace chitty::risk {

// What can make a request risky. Names: engine.cpp, in this order.
enum class Factor : std::uint8_t {
  identity_partial,     // the caller's executable, unit or container could not be established
  service_mismatch,     // the service the caller claims is not the one it is
  purpose_not_allowed,  // the stated purpose is not allowed for the credential's category
  first_access,         // the service never read this reference before
  new_references,       // several references new to the service within the hour (reading outside its set)
  new_executable,       // a caller executable the service was never seen with
  new_unit,             // a systemd unit the service was never seen with
  new_uid,              // a uid the service was never seen with
  unusual_hour,         // an hour of the day the service is rarely active in
  unusual_hour_activity,  // several requests at such hours within minutes (not one stray job)
  burst,                // this minute's requests far above the service's busiest minute
  enumeration,          // many distinct references, or many not_found/forbidden, in a short window
  recently_revoked,     // the reference was revoked, or its revocation cleared, recently
};
constexpr std::size_t kFactors = static_cast<std::size_t>(Factor::recently_revoked) + 1;
std::string_view factor_name(Factor f) noexcept;  // "identity_partial", ...
// Soft factors compare with the service's history: they do not count while
// the service is learning (a new service's every read is a "first").
bool is_soft(Factor f) noexcept;

// SPEC §6: 0-29 allow, 30-49 allow with enhanced monitoring, 50-69 step-up
// (denied without the service's step-up token), 70-100 deny and alert.
enum class Band : std::uint8_t { allow, monitor, step_up, deny };
std::string_view band_name(Band b) noexcept;   // "allow", "monitor", "step_up", "deny"
std::string_view level_name(Band b) noexcept;  // "low", "medium", "high", "critical"
Band band_of(int score) noexcept;

struct Options {
  // Points each factor adds when it fires; the score is their sum, at most
  // 100. Defaults: docs/risk.md.
  std::array<int, kFactors> weights{20, 100, 40, 10, 30, 25, 15, 25, 15, 20, 35, 75, 50};
  // A service learns until both hold: this long since its first request,
  // and this many requests served. Both 0: no service learns, not even
  // one never served.
  Duration learning_period = std::chrono::hours(24);
  std::uint32_t learning_requests = 100;
  // Enumeration: within `enumeration_window`, at least `enumeration_refs`
  // distinct references new to the caller (never served to the service;
  // every reference is new to a caller that is no service; not judged while
  // a service learns), or `enumeration_failures` answers not_found/forbidden
  // already in the window.
  Duration enumeration_window = std::chrono::seconds(10);
  std::uint32_t enumeration_refs = 8;
  std::uint32_t enumeration_failures = 5;
  // New references: `novelty_refs` distinct references new to the service
  // within `novelty_window`, this one included.
  Duration novelty_window = std::chrono::hours(1);
  std::uint32_t novelty_refs = 3;
  // Unusual-hour activity: `odd_hours_requests` requests at unusual hours
  // within `odd_hours_window`, this one included.
  Duration odd_hours_window = std::chrono::minutes(10);
  std::uint32_t odd_hours_requests = 3;
  // Burst: this minute's requests above both `burst_min` and `burst_factor`
  // times the service's busiest minute so far.
  std::uint32_t burst_min = 60;
  double burst_factor = 5.0;
  // Unusual hour: an hour of the day (UTC) holding less than this share of
  // what the service was served — judged once it has been served for
  // `hours_learning_period` (a whole week, so that a week's rhythm is in).
  double unusual_hour_share = 0.01;
  Duration hours_learning_period = std::chrono::hours(24 * 7);
  // Recently revoked: a revocation put in force or cleared this recently.
  Duration revoked_within = std::chrono::hours(24);
  // Bounds on what is kept. Past them the least recently seen are forgotten.
  std::size_t max_services = 256;
  std::size_t max_refs_per_service = 512;
  std::size_t max_callers_per_service = 32;  // executables, units and uids, each
  std::size_t max_revoked = 1024;
  // The purposes each catalog category may be read for ([[risk.category]]):
  // a request stating another scores purpose_not_allowed.
  std::vector<std::pair<std::string, std::vector<std::string>>> category_purposes;
};

// Whether `purpose`, stated for a credential of `category`, is one the
// category's [[risk.category]] entry lists. A category without an entry, and
// a request stating no purpose, pass: there is nothing to judge.
bool purpose_allowed(const Options& o, std::string_view category, std::string_view purpose);

// What the engine is told of a request (before any value is unsealed).
struct Request {
  std::string_view service;  // the attested service; empty: the caller is none
  std::string_view ref;      // the reference as a cache key
  std::optional<std::int64_t> uid;
  std::string_view exe;      // empty: not established
  std::string_view unit;     // empty: none or not established
  bool identity_partial = false;
  bool service_mismatch = false;
  bool purpose_not_allowed = false;
  // When it came, if the caller read the clock already (the broker has);
  // left at zero, the engine reads its clock.
  MonoTime at{};
  WallTime wall_at{};
};

// How the request was answered (what the engine learns from).
enum class Outcome : std::uint8_t {
  served,     // a value was served in the allow band: the service's baseline learns it
  monitored,  // served in the monitor band: its hour and minute are learnt, not its reference or caller
              // (a flagged caller or reference must not become usual by being served)
  not_found,  // the reference does not exist (counts towards enumeration)
  forbidden,  // policy refused it (counts towards enumeration)
  refused,    // refused for another reason (risk, rate limit, revocation): learnt from not at all
};

struct Fired {
  Factor factor;
  int weight;  // what it added: 0 for a soft factor while the service learns
};

struct Assessment {
  int score = 0;  // 0-100
  Band band = Band::allow;
  bool learning = false;     // the service is in its learning period
  std::vector<Fired> fired;  // in Factor order
  MonoTime at{};             // when it was assessed
  WallTime wall_at{};
};

// What the engine knows of one service (GET /api/onepassword/insights).
struct Insight {
  bool known = false;  // the service was scored or served since the baselines began
  bool learning = true;
  std::optional<WallTime> first_served;
  std::uint64_t served = 0;
  std::uint32_t peak_minute = 0;          // its busiest ordinary minute
  std::array<std::uint64_t, 24> hours{};  // served per hour of the day (UTC)
  std::vector<std::pair<std::string, std::uint64_t>> refs;  // the most read first (at most `limit`)
  std::vector<std::string> exes, units, uids;               // most recently seen first
};

class Engine {
 public:
  Engine(Options options, const Clock& clock);
  ~Engine();
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Scores a request. Learns nothing from it (record() does) but lets the
  // short windows (enumeration, this minute) move on with the clock.
  Assessment assess(const Request& r);
  // How the request was answered: the windows count it, and when a value
  // was served the service's baseline learns from it.
  void record(const Request& r, Outcome outcome);
  // The same, counted at the time `a` (its assessment) was made: the
  // request's own time, and no clock read.
  void record(const Request& r, Outcome outcome, const Assessment& a);
  // The service's baseline; `limit` references at most.
  Insight insight(std::string_view service, std::size_t limit = 20) const;
  // An emergency revocation of `ref` was put in force or cleared now.
  void revoked(std::string_view ref);

  void set_options(Options o);  // a reload; baselines are kept
  const Options& options() const noexcept { return options_; }

  // The services' baselines as text (docs/risk.md, "The baselines file"):
  // references, names, hours and counts, no value; the short windows and
  // callers that are no service are not kept. parse() replaces the
  // baselines with the text's, or leaves them as they were and names the
  // line it refuses; it checks no MAC (the caller does, around it).
  std::string serialize() const;
  [[nodiscard]] Result<void> parse(std::string_view text);

 private:
  void record_at(const Request& r, Outcome outcome, MonoTime now, WallTime wall);

  struct State;
  Options options_;
  const Clock& clock_;
  std::unique_ptr<State> state_;
};

}  // namespace chitty::risk
