// Timestamps for people and protocols.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "chitty/base/clock.hpp"

namespace chitty {

// "2026-11-24T05:48:49.123Z" (UTC, milliseconds): logs and JSON bodies.
std::string format_rfc3339_ms(WallTime t);

// Parses RFC 3339 in UTC or with an offset: "2026-11-24T05:48:49Z",
// "2026-11-24T05:48:49.123+02:00"; nullopt when it is not one.
std::optional<WallTime> parse_rfc3339(std::string_view text);
// "Tue, 24 Nov 2026 05:48:49 GMT": the HTTP Date header (RFC 9110 §5.6.7).
std::string format_http_date(WallTime t);

}  // namespace chitty
