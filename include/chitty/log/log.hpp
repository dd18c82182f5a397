// Logging facade: one structured record per event, with a level, the module
// topic and (for request-scoped events) the request id as a field.
//
// What may be logged: identifiers, counts, paths, references, error reasons.
// What may never be logged: secret values, tokens, request or response
// bodies. Anything that could carry secret bytes is passed as Redacted, which
// keeps only the length; the Value type has no constructor from secure
// buffers, so the compiler refuses the rest.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <variant>

#include "chitty/base/clock.hpp"

namespace chitty::log {

// alert: something an operator must act on now (journald priority 1); it is
// always written, whatever the configured level.
enum class Level { debug = 0, info = 1, warning = 2, error = 3, alert = 4 };

std::string_view level_name(Level l) noexcept;
// Accepts "debug", "info", "warning" (or "warn"), "error"; false otherwise.
[[nodiscard]] bool parse_level(std::string_view text, Level& out) noexcept;

// What the log may say about secret bytes: that they exist and how long they
// are. Construct with redact(); there is no way back to the bytes.
struct Redacted {
  std::size_t length = 0;
};
inline Redacted redact(std::span<const char> secret) noexcept { return Redacted{secret.size()}; }
inline Redacted redact(std::string_view secret) noexcept { return Redacted{secret.size()}; }

// Replaces the password of a URL's userinfo ("https://u:p@h/" -> "https://u:***@h/")
// so upstream URLs can be logged as configured.
std::string redact_url(std::string_view url);

// True for request/response header names whose values are credentials
// (Authorization, Cookie, X-Emergency-Token, X-Chitty-Step-Up, ...).
bool is_sensitive_header(std::string_view name) noexcept;

class Value {
 public:
  Value(std::string_view s) : v_(s) {}        // NOLINT(google-explicit-constructor)
  Value(const char* s) : v_(std::string_view(s)) {}  // NOLINT
  Value(const std::string& s) : v_(std::string_view(s)) {}  // NOLINT
  Value(bool b) : v_(b) {}                    // NOLINT
  Value(int i) : v_(static_cast<std::int64_t>(i)) {}  // NOLINT
  Value(long i) : v_(static_cast<std::int64_t>(i)) {}  // NOLINT
  Value(long long i) : v_(static_cast<std::int64_t>(i)) {}  // NOLINT
  Value(unsigned i) : v_(static_cast<std::uint64_t>(i)) {}  // NOLINT
  Value(unsigned long i) : v_(static_cast<std::uint64_t>(i)) {}  // NOLINT
  Value(unsigned long long i) : v_(static_cast<std::uint64_t>(i)) {}  // NOLINT
  Value(double d) : v_(d) {}                  // NOLINT
  Value(Redacted r) : v_(r) {}                // NOLINT

  using Variant = std::variant<std::string_view, std::int64_t, std::uint64_t, bool, double, Redacted>;
  const Variant& get() const noexcept { return v_; }

 private:
  Variant v_;
};

// How a sink writes a value: JSON (strings quoted and escaped, non-finite
// numbers null) or plain text (the journal's fields).
enum class ValueForm { json, plain };
void append_value(std::string& out, const Value& v, ValueForm form);

struct Field {
  std::string_view key;  // lower_snake_case; "request_id" is recognised by sinks
  Value value;
};

struct Record {
  WallTime time;
  Level level;
  std::string_view topic;    // the module: "server", "config", ...
  std::string_view message;  // a fixed sentence; variable parts go in fields
  std::span<const Field> fields;
};

// Where records go. Implementations must not throw and must write each record
// atomically with respect to other records.
class Sink {
 public:
  virtual ~Sink() = default;
  virtual void write(const Record& r) noexcept = 0;
};

// JSON lines on a file descriptor (stderr by default):
// {"ts":"…","level":"info","topic":"server","msg":"…","request_id":"…",…}
class JsonLinesSink final : public Sink {
 public:
  explicit JsonLinesSink(int fd = 2) : fd_(fd) {}
  void write(const Record& r) noexcept override;
  // The line written for a record (without the trailing newline); exposed for tests.
  static std::string format(const Record& r);

 private:
  int fd_;
};

// Process-wide logger configuration. Set at start-up before the loop runs.
void set_sink(std::unique_ptr<Sink> sink);
void set_level(Level l) noexcept;
Level level() noexcept;
inline bool enabled(Level l) noexcept { return static_cast<int>(l) >= static_cast<int>(level()); }

// Writes a record if `l` is enabled.
void write(Level l, std::string_view topic, std::string_view message,
           std::initializer_list<Field> fields = {}) noexcept;

inline void debug(std::string_view topic, std::string_view msg, std::initializer_list<Field> f = {}) noexcept {
  if (enabled(Level::debug)) write(Level::debug, topic, msg, f);
}
inline void info(std::string_view topic, std::string_view msg, std::initializer_list<Field> f = {}) noexcept {
  if (enabled(Level::info)) write(Level::info, topic, msg, f);
}
inline void warn(std::string_view topic, std::string_view msg, std::initializer_list<Field> f = {}) noexcept {
  if (enabled(Level::warning)) write(Level::warning, topic, msg, f);
}
inline void error(std::string_view topic, std::string_view msg, std::initializer_list<Field> f = {}) noexcept {
  if (enabled(Level::error)) write(Level::error, topic, msg, f);
}
inline void alert(std::string_view topic, std::string_view msg, std::initializer_list<Field> f = {}) noexcept {
  write(Level::alert, topic, msg, f);
}

// A line a client can cause (a refused request, a protocol error, a wrong
// token) is written through a Throttle: at most `burst` lines per `period`
// from one place; the rest are counted, and the next line that gets through
// says how many were held back (a "suppressed" field). No client can then
// make the agent log faster than the journal's rate limit takes, which would
// cost the lines that matter: the audit chain head, alerts (docs/audit.md).
//
// Thread: one thread (the loop's).
class Throttle {
 public:
  Throttle(std::uint32_t burst, Duration period) noexcept : burst_(burst), period_(period) {}
  // Whether a line may be written at `now`. When it may, suppressed() is the
  // number held back since the last one written (put it in the line).
  bool allow(MonoTime now) noexcept;
  std::uint64_t suppressed() const noexcept { return reported_; }

 private:
  std::uint32_t burst_;
  Duration period_;
  MonoTime window_start_{};
  std::uint32_t in_window_ = 0;
  std::uint64_t held_ = 0;      // since the last line written
  std::uint64_t reported_ = 0;  // what the line being written reports
  bool started_ = false;
};

}  // namespace chitty::log
