#include "chitty/log/log.hpp"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <mutex>

#include "chitty/base/text.hpp"
#include "chitty/base/time_format.hpp"

namespace chitty::log {
namespace {

std::atomic<int> g_level{static_cast<int>(Level::info)};
std::mutex g_mutex;
std::unique_ptr<Sink> g_sink;  // guarded by g_mutex; nullptr means JSON lines on stderr
SystemClock g_clock;

}  // namespace

void append_value(std::string& out, const Value& v, ValueForm form) {
  const bool json = form == ValueForm::json;
  std::visit(
      [&](const auto& x) {
        using T = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<T, std::string_view>) {
          if (!json) {
            out += x;
            return;
          }
          out += '"';
          append_json_escaped(out, x);
          out += '"';
        } else if constexpr (std::is_same_v<T, bool>) {
          out += x ? "true" : "false";
        } else if constexpr (std::is_same_v<T, std::int64_t>) {
          if (x < 0) {
            out += '-';
            append_decimal(out, static_cast<std::uint64_t>(-(x + 1)) + 1);
          } else {
            append_decimal(out, static_cast<std::uint64_t>(x));
          }
        } else if constexpr (std::is_same_v<T, std::uint64_t>) {
          append_decimal(out, x);
        } else if constexpr (std::is_same_v<T, double>) {
          if (json && !std::isfinite(x)) {
            out += "null";
          } else {
            char buf[32];
            int n = std::snprintf(buf, sizeof buf, "%.6g", x);
            out.append(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
          }
        } else if constexpr (std::is_same_v<T, Redacted>) {
          const char* quote = json ? "\"" : "";
          out += quote;
          out += "[redacted ";
          append_decimal(out, x.length);
          out += " bytes]";
          out += quote;
        }
      },
      v.get());
}

namespace {

void write_all(int fd, const std::string& s) noexcept {
  const char* p = s.data();
  std::size_t left = s.size();
  while (left > 0) {
    ssize_t n = ::write(fd, p, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      return;  // nowhere to report a failing log stream
    }
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

}  // namespace

std::string_view level_name(Level l) noexcept {
  switch (l) {
    case Level::debug: return "debug";
    case Level::info: return "info";
    case Level::warning: return "warning";
    case Level::error: return "error";
    case Level::alert: return "alert";
  }
  return "info";
}

bool parse_level(std::string_view text, Level& out) noexcept {
  if (text == "debug") out = Level::debug;
  else if (text == "info") out = Level::info;
  else if (text == "warning" || text == "warn") out = Level::warning;
  else if (text == "error") out = Level::error;
  else return false;
  return true;
}

std::string redact_url(std::string_view url) {
  // Without a scheme ("user:pass@host/x", a URL whose scheme was forgotten)
  // the authority starts at the beginning. The last '@' ends the userinfo
  // even when an unencoded password contains '/', '?' or '#': a URL with an
  // '@' in its path is over-redacted rather than a password leaked.
  auto scheme_end = url.find("://");
  auto authority_start = scheme_end == std::string_view::npos ? 0 : scheme_end + 3;
  auto at = url.rfind('@');
  if (at == std::string_view::npos || at < authority_start) return std::string(url);
  std::string_view userinfo = url.substr(authority_start, at - authority_start);
  std::string out(url.substr(0, authority_start));
  auto colon = userinfo.find(':');
  if (colon != std::string_view::npos && userinfo.substr(0, colon).find_first_of("/?#") == std::string_view::npos) {
    out += userinfo.substr(0, colon);
    out += ":***";
  } else {
    out += "***";  // a bare userinfo is a token more often than a user name
  }
  out += url.substr(at);
  return out;
}

bool is_sensitive_header(std::string_view name) noexcept {
  static constexpr std::string_view kNames[] = {
      "authorization", "proxy-authorization", "cookie", "set-cookie",
      "x-emergency-token", "x-chitty-step-up", "x-api-key", "x-auth-token",
  };
  for (auto n : kNames) {
    if (iequals(n, name)) return true;
  }
  return false;
}

std::string JsonLinesSink::format(const Record& r) {
  std::string line;
  line.reserve(160);
  line += "{\"ts\":\"";
  line += format_rfc3339_ms(r.time);
  line += "\",\"level\":\"";
  line += level_name(r.level);
  line += "\",\"topic\":\"";
  append_json_escaped(line, r.topic);
  line += "\",\"msg\":\"";
  append_json_escaped(line, r.message);
  line += '"';
  for (const auto& f : r.fields) {
    line += ",\"";
    append_json_escaped(line, f.key);
    line += "\":";
    append_value(line, f.value, ValueForm::json);
  }
  line += '}';
  return line;
}

void JsonLinesSink::write(const Record& r) noexcept {
  try {
    std::string line = format(r);
    line += '\n';
    write_all(fd_, line);
  } catch (...) {
    // Out of memory while logging: drop the line rather than the process.
  }
}

void set_sink(std::unique_ptr<Sink> sink) {
  std::lock_guard lock(g_mutex);
  g_sink = std::move(sink);
}

void set_level(Level l) noexcept { g_level.store(static_cast<int>(l), std::memory_order_relaxed); }

Level level() noexcept { return static_cast<Level>(g_level.load(std::memory_order_relaxed)); }

void write(Level l, std::string_view topic, std::string_view message,
           std::initializer_list<Field> fields) noexcept {
  if (!enabled(l)) return;
  Record r{g_clock.wall_now(), l, topic, message, std::span<const Field>(fields.begin(), fields.size())};
  std::lock_guard lock(g_mutex);
  if (g_sink) {
    g_sink->write(r);
  } else {
    JsonLinesSink(2).write(r);
  }
}

bool Throttle::allow(MonoTime now) noexcept {
  if (!started_ || now - window_start_ >= period_) {
    started_ = true;
    window_start_ = now;
    in_window_ = 0;
  }
  if (in_window_ >= burst_) {
    ++held_;
    return false;
  }
  ++in_window_;
  reported_ = held_;
  held_ = 0;
  return true;
}

}  // namespace chitty::log
