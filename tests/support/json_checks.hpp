// Catch2 helpers shared by the integration tests: a response body read as
// JSON (the test fails, showing the body, when it is not JSON), a member
// that must be there, and a reference percent-encoded for a query string.
// Header-only: include it after catch2/catch.hpp.
#pragma once

#include <cctype>
#include <string>
#include <string_view>

#include "json_reader.hpp"

namespace chitty::testing {

inline Json parse(const std::string& body) {
  INFO(body);
  auto j = read_json(body);
  REQUIRE(j);
  return *j;
}

inline const Json& at(const Json& j, std::string_view key) {
  const Json* v = j.find(key);
  INFO("missing key " << key);
  REQUIRE(v != nullptr);
  return *v;
}

// Percent-encodes a reference for /v1/secret?ref= (keeps / and :).
inline std::string encode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '/' || c == ':' || c == '-' || c == '_' || c == '.') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

}  // namespace chitty::testing
