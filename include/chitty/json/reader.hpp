// Reading JSON request bodies — strictly: one value, well-formed UTF-8,
// nothing after it, no duplicate keys, bounded nesting. Errors say where
// ("at byte 17: missing a comma or '}'"). Request bodies name references,
// never values, so the document is held in plain memory.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "chitty/base/result.hpp"

namespace chitty::json {

struct Member;

struct Value {
  enum class Type { null, boolean, number, string, array, object };
  Type type = Type::null;
  bool boolean = false;
  double number = 0;
  std::optional<std::int64_t> integer;  // set when the number is an integer that fits
  std::string string;
  std::vector<Value> items;
  std::vector<Member> members;  // in document order

  const Value* find(std::string_view key) const noexcept;
};

// (A struct, not std::pair: a pair of an incomplete Value cannot be named
// inside Value itself.)
struct Member {
  std::string key;
  Value value;
};

std::string_view type_name(Value::Type t) noexcept;  // "string", "object"...

inline constexpr unsigned kMaxDepth = 32;

// Parses `text` (exactly one JSON value, optionally surrounded by whitespace).
[[nodiscard]] Result<Value> parse(std::string_view text);

}  // namespace chitty::json
