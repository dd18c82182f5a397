#include "chitty/base/units.hpp"

#include <array>
#include <limits>

#include "chitty/base/text.hpp"

namespace chitty {
namespace {

struct Unit {
  std::string_view name;
  std::uint64_t factor;
};

// Longest names first so "ms" is not read as "m" followed by garbage.
constexpr std::array<Unit, 7> kDurationUnits{{
    {"ns", 1ULL},
    {"us", 1'000ULL},
    {"ms", 1'000'000ULL},
    {"s", 1'000'000'000ULL},
    {"m", 60ULL * 1'000'000'000ULL},
    {"h", 3'600ULL * 1'000'000'000ULL},
    {"d", 86'400ULL * 1'000'000'000ULL},
}};

constexpr std::array<Unit, 8> kSizeUnits{{
    {"B", 1ULL},
    {"KiB", 1ULL << 10},
    {"MiB", 1ULL << 20},
    {"GiB", 1ULL << 30},
    {"KB", 1'000ULL},
    {"MB", 1'000'000ULL},
    {"GB", 1'000'000'000ULL},
    {"TiB", 1ULL << 40},
}};

bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool mul_overflows(std::uint64_t a, std::uint64_t b) {
  return b != 0 && a > std::numeric_limits<std::uint64_t>::max() / b;
}

std::string quoted(std::string_view s) {
  std::string out = "\"";
  append_json_escaped(out, s);
  out += '"';
  return out;
}

}  // namespace

[[nodiscard]] Result<std::chrono::nanoseconds> parse_duration(std::string_view text) {
  if (text.empty()) return fail("empty duration; write a number with a unit, like \"5m\" or \"300ms\"");
  constexpr std::uint64_t kMax = static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max());
  std::uint64_t total = 0;
  std::size_t i = 0;
  while (i < text.size()) {
    std::size_t start = i;
    while (i < text.size() && is_digit(text[i])) ++i;
    if (i == start) {
      return fail("invalid duration " + quoted(text) + ": expected a number at position " +
                  std::to_string(start + 1) + " (units: ns, us, ms, s, m, h, d)");
    }
    std::uint64_t number = 0;
    if (!parse_u64(text.substr(start, i - start), number)) {
      return fail("invalid duration " + quoted(text) + ": number too large");
    }
    std::size_t unit_start = i;
    while (i < text.size() && !is_digit(text[i])) ++i;
    std::string_view unit_name = text.substr(unit_start, i - unit_start);
    if (unit_name.empty()) {
      return fail("invalid duration " + quoted(text) +
                  ": missing unit after the number (units: ns, us, ms, s, m, h, d)");
    }
    const Unit* unit = nullptr;
    for (const auto& u : kDurationUnits) {
      if (u.name == unit_name) unit = &u;
    }
    if (unit == nullptr) {
      return fail("invalid duration " + quoted(text) + ": unknown unit " + quoted(unit_name) +
                  " (units: ns, us, ms, s, m, h, d)");
    }
    if (mul_overflows(number, unit->factor) || number * unit->factor > kMax - total) {
      return fail("invalid duration " + quoted(text) + ": too long");
    }
    total += number * unit->factor;
  }
  return std::chrono::nanoseconds(static_cast<std::int64_t>(total));
}

[[nodiscard]] Result<std::uint64_t> parse_size(std::string_view text) {
  if (text.empty()) return fail("empty size; write a number with a unit, like \"8MiB\"");
  std::size_t i = 0;
  while (i < text.size() && is_digit(text[i])) ++i;
  if (i == 0) {
    return fail("invalid size " + quoted(text) + ": expected a number (units: B, KiB, MiB, GiB, TiB, KB, MB, GB)");
  }
  std::uint64_t number = 0;
  if (!parse_u64(text.substr(0, i), number)) return fail("invalid size " + quoted(text) + ": number too large");
  std::string_view unit_name = text.substr(i);
  if (unit_name.empty()) return number;
  for (const auto& u : kSizeUnits) {
    if (u.name == unit_name) {
      if (mul_overflows(number, u.factor)) return fail("invalid size " + quoted(text) + ": too large");
      return number * u.factor;
    }
  }
  return fail("invalid size " + quoted(text) + ": unknown unit " + quoted(unit_name) +
              " (units: B, KiB, MiB, GiB, TiB, KB, MB, GB)");
}

std::string format_duration(std::chrono::nanoseconds d) {
  auto ns = static_cast<std::uint64_t>(d.count() < 0 ? 0 : d.count());
  if (ns == 0) return "0s";
  std::string out;
  // Whole hours/minutes/seconds when exact; otherwise the largest sub-second unit.
  if (ns % 1'000'000'000ULL == 0) {
    std::uint64_t s = ns / 1'000'000'000ULL;
    std::uint64_t h = s / 3600, m = (s / 60) % 60, sec = s % 60;
    if (h) { append_decimal(out, h); out += 'h'; }
    if (m) { append_decimal(out, m); out += 'm'; }
    if (sec) { append_decimal(out, sec); out += 's'; }
    return out;
  }
  if (ns % 1'000'000ULL == 0) { append_decimal(out, ns / 1'000'000ULL); out += "ms"; return out; }
  if (ns % 1'000ULL == 0) { append_decimal(out, ns / 1'000ULL); out += "us"; return out; }
  append_decimal(out, ns);
  out += "ns";
  return out;
}

std::string format_size(std::uint64_t bytes) {
  std::string out;
  if (bytes != 0 && bytes % (1ULL << 30) == 0) { append_decimal(out, bytes >> 30); out += "GiB"; }
  else if (bytes != 0 && bytes % (1ULL << 20) == 0) { append_decimal(out, bytes >> 20); out += "MiB"; }
  else if (bytes != 0 && bytes % (1ULL << 10) == 0) { append_decimal(out, bytes >> 10); out += "KiB"; }
  else { append_decimal(out, bytes); out += 'B'; }
  return out;
}

[[nodiscard]] Result<Rate> parse_rate(std::string_view text) {
  std::size_t slash = text.find('/');
  if (slash == std::string_view::npos) {
    return fail("\"" + std::string(text) + "\" is not a rate; write it as COUNT/PERIOD, e.g. \"100/h\"");
  }
  std::uint64_t count = 0;
  if (!parse_u64(text.substr(0, slash), count) || count == 0 || count > 1'000'000'000) {
    return fail("the count of \"" + std::string(text) + "\" must be a whole number from 1 to 1000000000");
  }
  std::string_view unit = text.substr(slash + 1);
  std::chrono::nanoseconds period{0};
  if (unit == "s") {
    period = std::chrono::seconds(1);
  } else if (unit == "m") {
    period = std::chrono::minutes(1);
  } else if (unit == "h") {
    period = std::chrono::hours(1);
  } else if (unit == "d") {
    period = std::chrono::hours(24);
  } else {
    auto d = parse_duration(unit);
    if (!d) return fail("the period of \"" + std::string(text) + "\": " + d.error().message);
    period = *d;
  }
  if (period < std::chrono::seconds(1)) return fail("the period of \"" + std::string(text) + "\" is under 1s");
  if (period > std::chrono::hours(24 * 31)) return fail("the period of \"" + std::string(text) + "\" is over 31d");
  return Rate{static_cast<std::uint32_t>(count), period};
}

std::string format_rate(const Rate& r) {
  std::string unit;
  if (r.period == std::chrono::seconds(1)) {
    unit = "s";
  } else if (r.period == std::chrono::minutes(1)) {
    unit = "m";
  } else if (r.period == std::chrono::hours(1)) {
    unit = "h";
  } else if (r.period == std::chrono::hours(24)) {
    unit = "d";
  } else {
    unit = format_duration(r.period);
  }
  return std::to_string(r.count) + "/" + unit;
}

}  // namespace chitty
