#include "chitty/catalog/reference.hpp"

#include <vector>

namespace chitty::catalog {
namespace {

constexpr std::string_view kScheme = "op://";

std::vector<std::string_view> split_parts(std::string_view s) {
  std::vector<std::string_view> parts;
  while (true) {
    auto slash = s.find('/');
    parts.push_back(s.substr(0, slash));
    if (slash == std::string_view::npos) break;
    s.remove_prefix(slash + 1);
  }
  return parts;
}

[[nodiscard]] Result<void> check_part(std::string_view part, std::size_t index, bool allow_wildcards) {
  std::string where = "part " + std::to_string(index + 1);
  if (part.empty()) return fail(where + " is empty");
  if (part.size() > kMaxPartBytes) return fail(where + " is longer than " + std::to_string(kMaxPartBytes) + " bytes");
  if (part == "." || part == "..") return fail(where + " is \"" + std::string(part) + "\"");
  for (char c : part) {
    auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7F) return fail(where + " contains a control character");
    if (c == '?' || c == '#') return fail(where + " contains '" + std::string(1, c) + "' (query and fragment are not supported)");
    if (!allow_wildcards && c == '*') return fail(where + " contains '*' (wildcards belong in policy patterns)");
  }
  return {};
}

// Shell-like match of one part against a pattern part with '*' wildcards.
bool match_part(std::string_view pat, std::string_view s) {
  std::size_t p = 0, i = 0, star = std::string_view::npos, mark = 0;
  while (i < s.size()) {
    if (p < pat.size() && pat[p] == '*') {
      star = p++;
      mark = i;
    } else if (p < pat.size() && pat[p] == s[i]) {
      ++p;
      ++i;
    } else if (star != std::string_view::npos) {
      p = star + 1;
      i = ++mark;
    } else {
      return false;
    }
  }
  while (p < pat.size() && pat[p] == '*') ++p;
  return p == pat.size();
}

bool match_parts(const std::vector<std::string_view>& pat, std::size_t pi, const std::vector<std::string>& ref,
                 std::size_t ri) {
  if (pi == pat.size()) return ri == ref.size();
  if (pat[pi] == "**") {
    for (std::size_t k = ri; k <= ref.size(); ++k) {
      if (match_parts(pat, pi + 1, ref, k)) return true;
    }
    return false;
  }
  if (ri == ref.size()) return false;
  return match_part(pat[pi], ref[ri]) && match_parts(pat, pi + 1, ref, ri + 1);
}

}  // namespace

std::string fold_case(std::string_view s) {
  std::string out(s);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c + 32);
  }
  return out;
}

namespace {

// One part of a text form: '/' and (in keys) '%' escaped, in lower-case hex
// so that the escapes are already in match form; ASCII case folded when
// `fold`.
enum class Form { display, key, folded_key };

void append_part(std::string& out, std::string_view part, Form form) {
  const bool fold = form == Form::folded_key;
  for (char c : part) {
    if (c == '/') {
      out += "%2f";
    } else if (c == '%' && form != Form::display) {
      out += "%25";
    } else if (fold && c >= 'A' && c <= 'Z') {
      out += static_cast<char>(c + 32);
    } else {
      out += c;
    }
  }
}

std::string text_form(const Reference& r, Form fold) {
  std::string out(kScheme);
  append_part(out, r.vault, fold);
  out += '/';
  append_part(out, r.item, fold);
  out += '/';
  if (r.section) {
    append_part(out, *r.section, fold);
    out += '/';
  }
  append_part(out, r.field, fold);
  return out;
}

}  // namespace

std::string Reference::display() const { return text_form(*this, Form::display); }

std::string Reference::canonical() const { return text_form(*this, Form::folded_key); }

std::string Reference::id_key() const { return text_form(*this, Form::key); }

std::string match_form(std::string_view key) { return fold_case(key); }

[[nodiscard]] Result<Reference> parse_reference(std::string_view text) {
  if (text.size() > kMaxReferenceBytes) {
    return fail("reference is longer than " + std::to_string(kMaxReferenceBytes) + " bytes");
  }
  if (text.substr(0, kScheme.size()) != kScheme) return fail("reference must start with op://");
  auto parts = split_parts(text.substr(kScheme.size()));
  if (parts.size() != 3 && parts.size() != 4) {
    return fail("reference must be op://VAULT/ITEM/FIELD or op://VAULT/ITEM/SECTION/FIELD (" +
                std::to_string(parts.size()) + " parts given)");
  }
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (auto r = check_part(parts[i], i, false); !r) return fail("invalid reference: " + r.error().message);
  }
  Reference ref;
  ref.vault = std::string(parts[0]);
  ref.item = std::string(parts[1]);
  if (parts.size() == 4) ref.section = std::string(parts[2]);
  ref.field = std::string(parts.back());
  return ref;
}

namespace {

// A part of a key form back to its text: %2f is '/', %25 is '%'; any other
// '%' cannot stand in a key.
[[nodiscard]] Result<std::string> key_part(std::string_view part) {
  std::string out;
  for (std::size_t i = 0; i < part.size(); ++i) {
    if (part[i] != '%') {
      out += part[i];
    } else if (part.substr(i, 3) == "%2f") {
      out += '/';
      i += 2;
    } else if (part.substr(i, 3) == "%25") {
      out += '%';
      i += 2;
    } else {
      return fail("a '%' in a key must be %2f or %25");
    }
  }
  return out;
}

}  // namespace

[[nodiscard]] Result<Reference> reference_from_key(std::string_view key) {
  auto parsed = parse_reference(key);
  if (!parsed) return parsed;
  Reference ref;
  for (auto [from, to] : {std::pair{&parsed->vault, &ref.vault}, {&parsed->item, &ref.item}, {&parsed->field, &ref.field}}) {
    auto part = key_part(*from);
    if (!part) return tl::unexpected(part.error());
    *to = std::move(*part);
  }
  if (parsed->section) {
    auto part = key_part(*parsed->section);
    if (!part) return tl::unexpected(part.error());
    ref.section = std::move(*part);
  }
  return ref;
}

Result<Glob> Glob::parse(std::string_view pattern) {
  if (pattern.size() > kMaxReferenceBytes) return fail("pattern is too long");
  if (pattern.substr(0, kScheme.size()) != kScheme) return fail("pattern must start with op://");
  auto parts = split_parts(pattern.substr(kScheme.size()));
  if (parts.size() > 4) return fail("pattern has more parts than a reference can");
  bool any_star = false;
  for (std::size_t i = 0; i < parts.size(); ++i) {
    if (auto r = check_part(parts[i], i, true); !r) return fail("invalid pattern: " + r.error().message);
    if (parts[i].find("**") != std::string_view::npos && parts[i] != "**") {
      return fail("invalid pattern: \"**\" must be a whole part");
    }
    any_star = any_star || parts[i] == "**";
  }
  if (!any_star && parts.size() < 3) return fail("pattern must have at least VAULT/ITEM/FIELD, or use **");
  Glob g;
  g.text_ = std::string(pattern);
  g.folded_ = fold_case(pattern.substr(kScheme.size()));
  return g;
}

bool Glob::matches(const Reference& ref) const {
  std::vector<std::string> parts{fold_case(ref.vault), fold_case(ref.item)};
  if (ref.section) parts.push_back(fold_case(*ref.section));
  parts.push_back(fold_case(ref.field));
  auto pat = split_parts(folded_);
  return match_parts(pat, 0, parts, 0);
}

}  // namespace chitty::catalog
