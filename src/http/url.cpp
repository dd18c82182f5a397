#include "chitty/http/url.hpp"

#include "chitty/base/text.hpp"

namespace chitty::http {

[[nodiscard]] Result<std::string> percent_decode(std::string_view s, bool plus_is_space) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    char c = s[i];
    if (c == '%') {
      if (i + 2 >= s.size()) return fail("truncated percent-escape");
      int hi = hex_digit(s[i + 1]);
      int lo = hex_digit(s[i + 2]);
      if (hi < 0 || lo < 0) return fail("malformed percent-escape");
      char decoded = static_cast<char>(hi * 16 + lo);
      if (decoded == '\0') return fail("encoded NUL byte");
      out += decoded;
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

[[nodiscard]] Result<QueryParams> parse_query(std::string_view raw) {
  QueryParams out;
  while (!raw.empty()) {
    auto amp = raw.find('&');
    std::string_view part = raw.substr(0, amp);
    raw = amp == std::string_view::npos ? std::string_view() : raw.substr(amp + 1);
    if (part.empty()) continue;
    auto eq = part.find('=');
    auto key = percent_decode(part.substr(0, eq), true);
    if (!key) return fail("query parameter name: " + key.error().message);
    std::string value;
    if (eq != std::string_view::npos) {
      auto v = percent_decode(part.substr(eq + 1), true);
      if (!v) return fail("query parameter \"" + *key + "\": " + v.error().message);
      value = std::move(*v);
    }
    out.emplace_back(std::move(*key), std::move(value));
  }
  return out;
}

}  // namespace chitty::http
