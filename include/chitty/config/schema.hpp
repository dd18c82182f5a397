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

// How a changed value is taken on by a running agent (SIGHUP): at once, or
// only at the next start (the reload keeps the running value and says so).
enum class Reload { live, restart };
std::string_view reload_name(Reload r) noexcept;  // "at once", "restart"

// What a key is bound to in the target struct: how a checked value is
// written into it, and — for a member bound with member() — how two targets
// compare, copy and show it (what a reload needs). `reload` is the key's
// reload behaviour: restart_only(member(...)) marks the keys that need a
// restart.
struct Binding {
  Binding() = default;
  Binding(std::function<void(void* target, const Value&)> setter)  // NOLINT: a setter alone
      : assign(std::move(setter)) {}
  std::function<void(void* target, const Value&)> assign;
  std::function<bool(const void* a, const void* b)> same;      // equal in both targets
  std::function<void(void* to, const void* from)> copy;        // to's member = from's
  std::function<std::string(const void* target)> show;         // for the log
  Reload reload = Reload::live;
};
// `b` with the reload behaviour "needs a restart".
Binding restart_only(Binding b);

struct Key {
  std::string_view name;
  Kind kind;
  std::string_view default_toml;  // the default as a TOML literal: "\"5m\"", "1024", "true"
  std::int64_t min = 0;
  std::int64_t max = 0;
  std::span<const std::string_view> choices = {};
  std::string_view doc;
  Binding bind;
  // Must be present (in every element of an array table); such keys have no
  // default_toml.
  bool required = false;

  Reload reload() const noexcept { return bind.reload; }
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

// Binds a key to a struct member (setter, comparison, copy, display).
template <typename Obj, typename Member>
Binding member(Member Obj::*m);

// A key of the running configuration that changed in a reloaded one.
struct Change {
  std::string key;      // dotted: "agent.socket"
  std::string running;  // the value in force
  std::string next;     // the value in the new file
  Reload reload = Reload::live;
};
// The keys of the non-array tables of `schema` whose values differ between
// `running` and `next` (roots of the schema's type), in schema order.
std::vector<Change> changes(const Schema& schema, void* running, void* next);
// For every restart-only key that differs, copies the running value into
// `next` (so `next` can be applied as a whole) and returns those changes.
std::vector<Change> hold_restart_keys(const Schema& schema, void* running, void* next);

// A reload of the agent's configuration, planned: what applies at once and
// what needs a restart (its running value kept in `next`, and logged).
struct ReloadPlan {
  std::vector<Change> applied;
  std::vector<Change> held;
  // "agent.idle_timeout emergency.token_file" ("" for none).
  static std::string keys(const std::vector<Change>& changes);
};
ReloadPlan plan_reload(const Config& running, Config& next);

}  // namespace chitty::config

#include "chitty/config/schema_bind.hpp"
