#include "chitty/client/template.hpp"

#include "chitty/catalog/reference.hpp"
#include "chitty/client/env_file.hpp"

namespace chitty::client {

namespace {

bool name_char(char c) noexcept {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

}  // namespace

Result<std::string> expand_variables(std::string_view text, const Lookup& env) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c != '$' || i + 1 == text.size()) {
      out += c;
      continue;
    }
    std::string name, fallback;
    bool has_default = false;
    if (text[i + 1] == '{') {
      std::size_t close = text.find('}', i + 2);
      if (close == std::string_view::npos) return fail("\"${\" is not closed");
      std::string_view inside = text.substr(i + 2, close - i - 2);
      if (auto sep = inside.find(":-"); sep != std::string_view::npos) {
        has_default = true;
        fallback = std::string(inside.substr(sep + 2));
        inside = inside.substr(0, sep);
      }
      name = std::string(inside);
      if (!is_env_name(name)) return fail("\"${" + name.substr(0, 64) + "}\" does not name a variable");
      i = close;
    } else if (name_char(text[i + 1]) && !(text[i + 1] >= '0' && text[i + 1] <= '9')) {
      std::size_t j = i + 1;
      while (j < text.size() && name_char(text[j])) ++j;
      name = std::string(text.substr(i + 1, j - i - 1));
      i = j - 1;
    } else {
      out += c;
      continue;
    }
    std::optional<std::string> v = env(name);
    if (!v || (v->empty() && has_default)) {
      if (!has_default) return fail("the variable " + name + " is not set (give ${" + name + ":-default})");
      v = fallback;
    }
    out += *v;
  }
  return out;
}

Result<std::vector<Piece>> parse_template(std::string_view text, const Lookup& env) {
  std::vector<Piece> out;
  std::size_t line = 1, column = 1;
  std::size_t i = 0;
  auto advance = [&](std::size_t to) {
    for (; i < to; ++i) {
      if (text[i] == '\n') {
        ++line;
        column = 1;
      } else {
        ++column;
      }
    }
  };
  auto add_text = [&](std::string_view s, std::size_t l, std::size_t c) {
    if (s.empty()) return;
    if (!out.empty() && out.back().kind == Piece::Kind::text) {
      out.back().text += s;
    } else {
      out.push_back(Piece{Piece::Kind::text, std::string(s), l, c});
    }
  };
  auto where = [](std::size_t l, std::size_t c) { return std::to_string(l) + ":" + std::to_string(c) + ": "; };
  auto skip_blanks = [&] {
    std::size_t j = i;
    while (j < text.size() && (text[j] == ' ' || text[j] == '\t')) ++j;
    advance(j);
  };
  while (i < text.size()) {
    std::size_t open = text.find("{{", i);
    std::size_t l = line, c = column;
    if (open == std::string_view::npos) {
      add_text(text.substr(i), l, c);
      break;
    }
    add_text(text.substr(i, open - i), l, c);
    advance(open);
    const std::size_t tag_line = line, tag_column = column;
    advance(open + 2);
    skip_blanks();
    if (i < text.size() && text[i] == '"') {
      std::string literal;
      std::size_t j = i + 1;
      bool closed = false;
      for (; j < text.size(); ++j) {
        if (text[j] == '"') {
          closed = true;
          break;
        }
        if (text[j] == '\\') {
          if (j + 1 < text.size() && (text[j + 1] == '"' || text[j + 1] == '\\')) {
            literal += text[++j];
            continue;
          }
          advance(j);
          return fail(where(line, column) + "in a quoted string only \\\" and \\\\ are escapes");
        }
        literal += text[j];
      }
      if (!closed) return fail(where(tag_line, tag_column) + "the quoted string is not closed");
      advance(j + 1);
      skip_blanks();
      if (text.substr(i, 2) != "}}") return fail(where(line, column) + "expected \"}}\" after the quoted string");
      advance(i + 2);
      add_text(literal, tag_line, tag_column);
      continue;
    }
    if (text.substr(i, 5) != "op://") {
      return fail(where(line, column) + "expected an op:// reference or a quoted string after \"{{\" (write a "
                                        "literal \"{{\" as {{ \"{{\" }})");
    }
    std::size_t close = text.find("}}", i);
    std::size_t nl = text.find('\n', i);
    if (close == std::string_view::npos || (nl != std::string_view::npos && nl < close)) {
      return fail(where(tag_line, tag_column) + "\"{{\" is not closed by \"}}\" on the same line");
    }
    std::string_view raw = text.substr(i, close - i);
    while (!raw.empty() && (raw.back() == ' ' || raw.back() == '\t')) raw.remove_suffix(1);
    const std::size_t ref_line = line, ref_column = column;
    auto expanded = expand_variables(raw, env);
    if (!expanded) return fail(where(ref_line, ref_column) + expanded.error().message);
    if (auto ref = catalog::parse_reference(*expanded); !ref) {
      return fail(where(ref_line, ref_column) + "invalid reference: " + ref.error().message);
    }
    out.push_back(Piece{Piece::Kind::reference, std::move(*expanded), ref_line, ref_column});
    advance(close + 2);
  }
  return out;
}

}  // namespace chitty::client
