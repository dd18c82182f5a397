// A declared configuration schema: tables of typed keys with defaults, bounds
// and documentation. The loader (TOML, one translation unit) walks a document
// against a schema, fills a target object through the keys' setters and
// collects every problem with its file:line.
//
// The schema is generic over the target type (type-erased through void*), so
// the agent's schema and the test schemas use the same engine.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "chitty/config/config.hpp"

namespace chitty::config {

enum class Kind {
  String,      // TOML string; `max` bounds its length when non-zero
  Path,        // TOML string holding an absolute path; `max` bounds its length
  Integer,     // TOML integer in [min, max]
  Boolean,     // TOML boolean
  Duration,    // TOML string like "300ms", "5m"; bounds in milliseconds
  Size,        // TOML string like "8MiB" or an integer of bytes; bounds in bytes
  FileMode,    // TOML string of octal digits ("0660") or an octal integer (0o660)
  Enum,        // TOML string, one of `choices`
  StringList,  // TOML array of strings
};

std::string_view kind_name(Kind k) noexcept;

// A value that passed its key's type and bound checks.
using Value = std::variant<std::string, std::int64_t, bool, std::chrono::nanoseconds, std::uint64_t,
                           std::uint32_t, std::vector<std::string>>;
// Per kind: String/Path/Enum -> std::string, Integer -> int64_t, Boolean -> bool,
// Duration -> nanoseconds, Size -> uint64_t, FileMode -> uint32_t,
// StringList -> vector<string>.

struct Key {
  std::string_view name;
  Kind kind;
  std::string_view default_toml;  // the default as a TOML literal: "\"5m\"", "1024", "true"
  std::int64_t min = 0;
  std::int64_t max = 0;
  std::span<const std::string_view> choices = {};
  std::string_view doc;
  std::function<void(void* target, const Value&)> assign;
  // Must be present (in every element of an array table); such keys have no
  // default_toml.
  bool required = false;
};

struct Table {
  std::string_view name;  // dotted: "agent", "upstream.onepassword"
  bool is_array = false;  // [[name]]: each element appended through `element`
  std::string_view doc;
  std::vector<Key> keys;
  // Maps the root object to the object this table's keys write into. For
  // arrays it appends a new element and returns it.
  std::function<void*(void* root)> element;
};

struct Schema {
  std::vector<Table> tables;
};

// The schema of chitty::config::Config.
const Schema& agent_schema();

// Location of each key that was present in the document, for cross-key
// diagnostics: "agent.socket" -> line/column.
struct Located {
  std::string key;  // dotted, with "[i]" for array elements: "service[2].uid"
  std::uint32_t line = 0;
  std::uint32_t column = 0;
};

// The engine. Applies the defaults of non-array tables first (so `root` ends
// up complete even for keys the document leaves out), then the document.
// Returns the diagnostics (empty on success) and the located keys.
struct LoadReport {
  std::vector<Diagnostic> diagnostics;
  std::vector<Located> locations;
  std::vector<std::string> failed_keys;  // present in the document but invalid
};
LoadReport load_into(const Schema& schema, void* root, std::string_view text, std::string_view source_name);

// Applies every key's default to `root` (non-array tables only). A default
// that does not satisfy its own key is a programming error and is reported.
std::vector<Diagnostic> apply_defaults(const Schema& schema, void* root);

// Setter helpers for schema declarations: bind a key to a struct member.
template <typename Obj, typename Member>
std::function<void(void*, const Value&)> member(Member Obj::*m);

}  // namespace chitty::config

#include "chitty/config/schema_bind.hpp"
