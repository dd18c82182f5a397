// The only translation unit that includes toml++ (it is slow to compile and
// its types must not leak): parses a document and walks it against a Schema.
//
// Debian's toml++ is a shared library built with exceptions, so parse errors
// arrive as toml::parse_error; they are caught here and never leave this file.
#include <toml++/toml.h>

#include <cerrno>
#include <cstring>
#include <optional>

#include <algorithm>
#include <fstream>
#include <sstream>

#include "chitty/base/units.hpp"
#include "chitty/config/schema.hpp"

namespace chitty::config {
namespace {

std::string_view node_type_name(const toml::node& n) {
  switch (n.type()) {
    case toml::node_type::string: return "a string";
    case toml::node_type::integer: return "an integer";
    case toml::node_type::floating_point: return "a float";
    case toml::node_type::boolean: return "a boolean";
    case toml::node_type::table: return "a table";
    case toml::node_type::array: return "an array";
    case toml::node_type::date: return "a date";
    case toml::node_type::time: return "a time";
    case toml::node_type::date_time: return "a date-time";
    default: return "nothing";
  }
}

std::string quote(std::string_view s) { return "\"" + std::string(s) + "\""; }

// Edit distance for "did you mean" suggestions; names are short.
std::size_t distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      std::size_t subst = prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, subst});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string suggestion(std::string_view name, const std::vector<std::string_view>& candidates) {
  std::string_view best;
  std::size_t best_d = 3;  // suggest only close matches
  for (auto c : candidates) {
    std::size_t d = distance(name, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  return best.empty() ? std::string() : "; did you mean " + quote(best) + "?";
}

std::string bounds_text(const Key& k) {
  switch (k.kind) {
    case Kind::Duration:
      return format_duration(std::chrono::milliseconds(k.min)) + " and " +
             format_duration(std::chrono::milliseconds(k.max));
    case Kind::Size:
      return format_size(static_cast<std::uint64_t>(k.min)) + " and " + format_size(static_cast<std::uint64_t>(k.max));
    default: return std::to_string(k.min) + " and " + std::to_string(k.max);
  }
}

[[nodiscard]] tl::expected<Value, std::string> convert(const toml::node& n, const Key& k) {
  auto wrong_type = [&](std::string_view expected) {
    return tl::unexpected("expected " + std::string(expected) + ", got " + std::string(node_type_name(n)));
  };
  switch (k.kind) {
    case Kind::String:
    case Kind::Path: {
      if (!n.is_string()) return wrong_type(k.kind == Kind::Path ? "a path string" : "a string");
      const std::string& s = n.as_string()->get();
      if (s.find('\0') != std::string::npos) return tl::unexpected(std::string("must not contain NUL bytes"));
      if (k.max > 0 && s.size() > static_cast<std::size_t>(k.max)) {
        return tl::unexpected("is " + std::to_string(s.size()) + " bytes long; at most " + std::to_string(k.max) +
                              " are allowed");
      }
      if (k.kind == Kind::Path && (s.empty() || s.front() != '/')) {
        return tl::unexpected("must be an absolute path, got " + quote(s));
      }
      return Value(s);
    }
    case Kind::Integer: {
      if (!n.is_integer()) return wrong_type("an integer");
      std::int64_t v = **n.as_integer();
      if (v < k.min || v > k.max) {
        return tl::unexpected(std::to_string(v) + " is out of range; must be between " + bounds_text(k));
      }
      return Value(v);
    }
    case Kind::Boolean: {
      if (!n.is_boolean()) return wrong_type("true or false");
      return Value(**n.as_boolean());
    }
    case Kind::Duration: {
      if (!n.is_string()) return wrong_type("a duration string with a unit, like \"5s\" or \"300ms\",");
      auto d = parse_duration(n.as_string()->get());
      if (!d) return tl::unexpected(d.error().message);
      if (*d < std::chrono::milliseconds(k.min) || *d > std::chrono::milliseconds(k.max)) {
        return tl::unexpected(quote(n.as_string()->get()) + " is out of range; must be between " + bounds_text(k));
      }
      return Value(*d);
    }
    case Kind::Size: {
      std::uint64_t bytes = 0;
      if (n.is_integer()) {
        std::int64_t v = **n.as_integer();
        if (v < 0) return tl::unexpected(std::string("a size cannot be negative"));
        bytes = static_cast<std::uint64_t>(v);
      } else if (n.is_string()) {
        auto s = parse_size(n.as_string()->get());
        if (!s) return tl::unexpected(s.error().message);
        bytes = *s;
      } else {
        return wrong_type("a size like \"64KiB\" or a number of bytes,");
      }
      if (bytes < static_cast<std::uint64_t>(k.min) || bytes > static_cast<std::uint64_t>(k.max)) {
        return tl::unexpected(format_size(bytes) + " is out of range; must be between " + bounds_text(k));
      }
      return Value(bytes);
    }
    case Kind::FileMode: {
      std::uint64_t mode = 0;
      if (n.is_string()) {
        const std::string& s = n.as_string()->get();
        if (s.empty() || s.size() > 4 || !std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '7'; })) {
          return tl::unexpected("expected an octal file mode like \"0660\", got " + quote(s));
        }
        for (char c : s) mode = mode * 8 + static_cast<std::uint64_t>(c - '0');
      } else if (n.is_integer()) {
        std::int64_t v = **n.as_integer();
        // 0o660 and 432 are the same integer; only the octal spelling says
        // the author meant permission bits.
        if (n.as_integer()->flags() != toml::value_flags::format_as_octal) {
          return tl::unexpected("mode " + std::to_string(v) +
                                " is not written in octal; write it as a string (\"0660\") or in TOML octal (0o660)");
        }
        mode = static_cast<std::uint64_t>(v);
      } else {
        return wrong_type("an octal file mode like \"0660\",");
      }
      if (mode > static_cast<std::uint64_t>(k.max)) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%04llo", static_cast<unsigned long long>(mode));
        return tl::unexpected("mode " + std::string(buf) +
                              " is out of range (setuid, setgid and sticky bits are not allowed)");
      }
      return Value(static_cast<std::uint32_t>(mode));
    }
    case Kind::Enum: {
      if (!n.is_string()) return wrong_type("a string");
      const std::string& s = n.as_string()->get();
      for (auto c : k.choices) {
        if (c == s) return Value(s);
      }
      std::string list;
      for (auto c : k.choices) list += (list.empty() ? "" : ", ") + std::string(c);
      return tl::unexpected(quote(s) + " is not one of: " + list);
    }
    case Kind::StringList: {
      if (!n.is_array()) return wrong_type("an array of strings");
      std::vector<std::string> out;
      for (const auto& e : *n.as_array()) {
        if (!e.is_string()) {
          return tl::unexpected("expected an array of strings, but an element is " + std::string(node_type_name(e)));
        }
        out.push_back(e.as_string()->get());
      }
      return Value(std::move(out));
    }
  }
  return tl::unexpected(std::string("unsupported key kind"));
}

// Applies the defaults of one table's keys to `target`; keys without a
// default (required or optional ones) are left as the struct has them.
void apply_table_defaults(const Table& t, void* target, std::vector<Diagnostic>& out) {
  for (const auto& k : t.keys) {
    if (k.default_toml.empty()) continue;
    std::string doc = "v = " + std::string(k.default_toml);
    std::string where = "<default of " + std::string(t.name) + "." + std::string(k.name) + ">";
    toml::table parsed;
    try {
      parsed = toml::parse(std::string_view(doc), std::string_view("<default>"));
    } catch (const toml::parse_error& e) {
      out.push_back(Diagnostic{where, 0, 0, std::string(e.description())});
      continue;
    }
    auto v = convert(*parsed.get("v"), k);
    if (!v) {
      out.push_back({where, 0, 0, v.error()});
      continue;
    }
    k.bind.assign(target, *v);
  }
}


class Walker {
 public:
  Walker(const Schema& schema, void* root, std::string_view source) : schema_(schema), root_(root), source_(source) {}

  void walk(const toml::table& tbl, const std::string& prefix) {
    for (const auto& [key, node] : tbl) {
      std::string full = prefix.empty() ? std::string(key.str()) : prefix + "." + std::string(key.str());
      if (const Table* spec = find_table(full)) {
        apply_table(*spec, node, full, key);
      } else if (node.is_table() && is_table_prefix(full)) {
        walk(*node.as_table(), full);
      } else {
        std::vector<std::string_view> names;
        for (const auto& t : schema_.tables) names.push_back(t.name);
        std::string what = node.is_table() || node.is_array_of_tables() ? "unknown section " : "unknown key ";
        add(key.source(), what + quote(full) + suggestion(full, names));
      }
    }
  }

  LoadReport report;

 private:
  const Table* find_table(std::string_view name) const {
    for (const auto& t : schema_.tables) {
      if (t.name == name) return &t;
    }
    return nullptr;
  }

  bool is_table_prefix(std::string_view name) const {
    for (const auto& t : schema_.tables) {
      if (t.name.size() > name.size() && t.name.starts_with(name) && t.name[name.size()] == '.') return true;
    }
    return false;
  }

  void apply_table(const Table& spec, const toml::node& node, const std::string& full, const toml::key& key) {
    if (spec.is_array) {
      if (!node.is_array_of_tables()) {
        add(key.source(), quote(full) + " must be written as [[" + full + "]] tables, got " +
                              std::string(node_type_name(node)));
        return;
      }
      std::size_t i = 0;
      for (const auto& elem : *node.as_array()) {
        void* target = spec.element(root_);
        apply_table_defaults(spec, target, report.diagnostics);
        std::string display = full + "[" + std::to_string(i) + "]";
        apply_keys(spec, *elem.as_table(), target, display);
        require_keys(spec, *elem.as_table(), display, elem.source());
        ++i;
      }
      return;
    }
    if (!node.is_table()) {
      add(key.source(), quote(full) + " must be a [" + full + "] table, got " + std::string(node_type_name(node)));
      return;
    }
    apply_keys(spec, *node.as_table(), spec.element(root_), full);
    require_keys(spec, *node.as_table(), full, node.source());
  }

  void require_keys(const Table& spec, const toml::table& tbl, const std::string& display,
                    const toml::source_region& where) {
    for (const auto& k : spec.keys) {
      if (k.required && !tbl.contains(k.name)) {
        add(where, display + ": missing required key " + quote(k.name));
      }
    }
  }

  void apply_keys(const Table& spec, const toml::table& tbl, void* target, const std::string& display) {
    for (const auto& [key, node] : tbl) {
      const Key* k = nullptr;
      for (const auto& candidate : spec.keys) {
        if (candidate.name == key.str()) k = &candidate;
      }
      std::string full = display + "." + std::string(key.str());
      if (k == nullptr && !spec.is_array && (node.is_table() || node.is_array_of_tables())) {
        // A declared sub-table ([upstream.onepassword] inside [upstream], or
        // [[cache.category]] inside [cache]).
        if (const Table* sub = find_table(full)) {
          apply_table(*sub, node, full, key);
          continue;
        }
        if (node.is_table() && is_table_prefix(full)) {
          walk(*node.as_table(), full);
          continue;
        }
      }
      if (k == nullptr) {
        std::vector<std::string_view> names;
        for (const auto& candidate : spec.keys) names.push_back(candidate.name);
        add(key.source(), "unknown key " + quote(full) + suggestion(key.str(), names));
        continue;
      }
      report.locations.push_back(
          {full, static_cast<std::uint32_t>(key.source().begin.line), static_cast<std::uint32_t>(key.source().begin.column)});
      auto v = convert(node, *k);
      if (!v) {
        add(node.source(), full + ": " + v.error());
        report.failed_keys.push_back(full);
        continue;
      }
      k->bind.assign(target, *v);
    }
  }

  void add(const toml::source_region& where, std::string message) {
    report.diagnostics.push_back({std::string(source_), static_cast<std::uint32_t>(where.begin.line),
                                  static_cast<std::uint32_t>(where.begin.column), std::move(message)});
  }

  const Schema& schema_;
  void* root_;
  std::string_view source_;
};

}  // namespace

std::string_view kind_name(Kind k) noexcept {
  switch (k) {
    case Kind::String: return "string";
    case Kind::Path: return "absolute path";
    case Kind::Integer: return "integer";
    case Kind::Boolean: return "boolean";
    case Kind::Duration: return "duration";
    case Kind::Size: return "size";
    case Kind::FileMode: return "octal file mode";
    case Kind::Enum: return "one of a fixed set of strings";
    case Kind::StringList: return "array of strings";
  }
  return "value";
}

std::vector<Diagnostic> apply_defaults(const Schema& schema, void* root) {
  std::vector<Diagnostic> out;
  for (const auto& t : schema.tables) {
    if (t.is_array) continue;
    apply_table_defaults(t, t.element(root), out);
  }
  return out;
}

LoadReport load_into(const Schema& schema, void* root, std::string_view text, std::string_view source_name) {
  Walker walker(schema, root, source_name);
  walker.report.diagnostics = apply_defaults(schema, root);
  toml::table parsed;
  try {
    parsed = toml::parse(text, source_name);
  } catch (const toml::parse_error& err) {
    walker.report.diagnostics.push_back({std::string(source_name), static_cast<std::uint32_t>(err.source().begin.line),
                                         static_cast<std::uint32_t>(err.source().begin.column),
                                         "TOML syntax error: " + std::string(err.description())});
    return std::move(walker.report);
  }
  walker.walk(parsed, "");
  return std::move(walker.report);
}

LoadResult load_string(std::string_view text, std::string_view source_name) {
  Config c = defaults();
  c.source = std::string(source_name);
  LoadReport report = load_into(agent_schema(), &c, text, source_name);
  // Cross-key rules run even when single keys failed, so that one pass shows
  // everything; a rule is skipped only when its own key already failed (its
  // value is then the default, and the complaint would mislead).
  for (auto& p : validate(c)) {
    if (std::find(report.failed_keys.begin(), report.failed_keys.end(), p.key) != report.failed_keys.end()) continue;
    Diagnostic d{std::string(source_name), 0, 0, std::move(p.message)};
    for (const auto& loc : report.locations) {
      if (loc.key == p.key) {
        d.line = loc.line;
        d.column = loc.column;
      }
    }
    if (d.line == 0) d.message = p.key + ": " + d.message + " (the default value)";
    report.diagnostics.push_back(std::move(d));
  }
  if (!report.diagnostics.empty()) {
    std::stable_sort(report.diagnostics.begin(), report.diagnostics.end(),
                     [](const Diagnostic& a, const Diagnostic& b) {
                       return a.line != b.line ? a.line < b.line : a.column < b.column;
                     });
    return tl::unexpected(std::move(report.diagnostics));
  }
  return c;
}

LoadResult load_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return tl::unexpected(std::vector<Diagnostic>{{path, 0, 0, "cannot open the file: " + std::string(std::strerror(errno))}});
  }
  std::ostringstream buf;
  buf << in.rdbuf();
  if (in.bad()) return tl::unexpected(std::vector<Diagnostic>{{path, 0, 0, "cannot read the file"}});
  return load_string(buf.str(), path);
}

}  // namespace chitty::config
