// A strict, independent JSON reader for tests that check what the agent
// writes (RFC 8259 grammar, well-formed UTF-8, no lone surrogate escapes,
// nothing after the value). Strings are decoded so tests compare what a client
// would read. Deliberately not rapidjson: an independent implementation.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace chitty::testing {

struct Json {
  enum class Type { null, boolean, number, string, array, object };
  Type type = Type::null;
  bool boolean = false;
  std::string text;  // the number literal, or the decoded string
  std::vector<Json> items;
  // A member: named like std::pair's fields, but a complete type once Json
  // is (a vector of pairs of an incomplete type is rejected by libc++ and
  // by clang with libstdc++).
  struct Member;
  std::vector<Member> members;

  const Json* find(std::string_view key) const;
};

struct Json::Member {
  std::string first;
  Json second;
};

inline const Json* Json::find(std::string_view key) const {
  for (const auto& [k, v] : members) {
    if (k == key) return &v;
  }
  return nullptr;
}

// The document, or nullopt if `text` is not exactly one valid JSON value.
std::optional<Json> read_json(std::string_view text);

}  // namespace chitty::testing
