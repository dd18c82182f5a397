// Percent-decoding of paths and query strings.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "chitty/base/result.hpp"

namespace chitty::http {

// Decodes %XX escapes (and '+' as space when `plus_is_space`, as in query
// strings). Fails on malformed escapes and on an encoded NUL.
[[nodiscard]] Result<std::string> percent_decode(std::string_view s, bool plus_is_space);

using QueryParams = std::vector<std::pair<std::string, std::string>>;

// Parses "a=1&b=x%20y&flag" into decoded pairs (a missing '=' gives an empty
// value). Empty components ("a=1&&b=2") are skipped.
[[nodiscard]] Result<QueryParams> parse_query(std::string_view raw);

}  // namespace chitty::http
