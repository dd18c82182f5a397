#include "chitty/client/env_file.hpp"

namespace chitty::client {

namespace {

bool blank(char c) noexcept { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) noexcept {
  while (!s.empty() && (blank(s.front()) || s.front() == '\r')) s.remove_prefix(1);
  while (!s.empty() && (blank(s.back()) || s.back() == '\r')) s.remove_suffix(1);
  return s;
}

}  // namespace

bool is_env_name(std::string_view name) noexcept {
  if (name.empty() || (name[0] >= '0' && name[0] <= '9')) return false;
  for (char c : name) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) return false;
  }
  return true;
}

bool is_secret_reference(std::string_view value) noexcept { return trim(value).starts_with("op://"); }

Result<std::vector<EnvEntry>> parse_env_file(std::string_view text, std::string_view file) {
  std::vector<EnvEntry> out;
  std::size_t line_no = 0;
  while (!text.empty()) {
    ++line_no;
    std::size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    auto bad = [&](const std::string& what) {
      return fail(std::string(file) + ":" + std::to_string(line_no) + ": " + what);
    };
    line = trim(line);
    if (line.empty() || line[0] == '#') continue;
    if (line.starts_with("export") && line.size() > 6 && blank(line[6])) line = trim(line.substr(7));
    std::size_t eq = line.find('=');
    if (eq == std::string_view::npos) return bad("expected NAME=VALUE");
    std::string_view name = trim(line.substr(0, eq));
    if (!is_env_name(name)) return bad("\"" + std::string(name.substr(0, 64)) + "\" is not a variable name");
    std::string_view rest = line.substr(eq + 1);
    while (!rest.empty() && blank(rest.front())) rest.remove_prefix(1);
    std::string value;
    std::string_view after;
    if (!rest.empty() && rest[0] == '\'') {
      std::size_t close = rest.find('\'', 1);
      if (close == std::string_view::npos) return bad("a single quote is not closed (values span one line)");
      value = std::string(rest.substr(1, close - 1));
      after = rest.substr(close + 1);
    } else if (!rest.empty() && rest[0] == '"') {
      std::size_t i = 1;
      bool closed = false;
      for (; i < rest.size(); ++i) {
        char c = rest[i];
        if (c == '"') {
          closed = true;
          break;
        }
        if (c != '\\') {
          value += c;
          continue;
        }
        if (++i == rest.size()) break;
        switch (rest[i]) {
          case 'n': value += '\n'; break;
          case 't': value += '\t'; break;
          case 'r': value += '\r'; break;
          case '"': case '\\': case '$': value += rest[i]; break;
          default: return bad(std::string("unknown escape \\") + rest[i] + " in a double-quoted value");
        }
      }
      if (!closed) return bad("a double quote is not closed (values span one line)");
      after = rest.substr(i + 1);
    } else {
      // Bare: up to a comment that follows a blank.
      std::size_t hash = std::string_view::npos;
      for (std::size_t i = 0; i < rest.size(); ++i) {
        if (rest[i] == '#' && (i == 0 || blank(rest[i - 1]))) {
          hash = i;
          break;
        }
      }
      value = std::string(trim(rest.substr(0, hash)));
    }
    after = trim(after);
    if (!after.empty() && after[0] != '#') return bad("unexpected text after the quoted value");
    out.push_back(EnvEntry{std::string(name), std::move(value), line_no});
  }
  return out;
}

}  // namespace chitty::client
