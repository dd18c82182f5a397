// Human units in configuration: durations ("300ms", "5m", "1h30m") and sizes
// ("512B", "64KiB", "8MiB", "1MB").
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "chitty/base/result.hpp"

namespace chitty {

// Parses a duration: one or more <integer><unit> groups with units
// ns, us, ms, s, m, h, d (e.g. "250ms", "5m", "1h30m"). Errors name the
// problem; a bare number without a unit is an error, not seconds.
[[nodiscard]] Result<std::chrono::nanoseconds> parse_duration(std::string_view text);

// Parses a size: <integer>[unit] with units B, KiB, MiB, GiB, TiB (powers of 1024)
// or KB, MB, GB (powers of 1000). A bare integer is bytes.
[[nodiscard]] Result<std::uint64_t> parse_size(std::string_view text);

// A rate: so many events per period ("100/h", "10/m", "5/s", "1000/d",
// "30/15m").
struct Rate {
  std::uint32_t count = 0;
  std::chrono::nanoseconds period{0};
  bool operator==(const Rate&) const = default;
};
// Parses "<count>/<unit or duration>": count 1..1e9, the period s, m, h, d
// or a duration ("15m"), at least 1 s.
[[nodiscard]] Result<Rate> parse_rate(std::string_view text);
std::string format_rate(const Rate& r);  // "100/h"

// Canonical short forms used in messages and docs: "1h30m", "250ms", "8MiB".
std::string format_duration(std::chrono::nanoseconds d);
std::string format_size(std::uint64_t bytes);

}  // namespace chitty
