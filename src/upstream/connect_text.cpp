#include "connect_text.hpp"

#include <algorithm>
#include <chrono>
#include <cstdint>

#include "chitty/base/units.hpp"
#include "chitty/json/in_place.hpp"

namespace chitty::upstream {

std::string title_filter(std::string_view name) { return "?filter=" + percent_encode("title eq \"" + std::string(name) + "\""); }

bool filterable(std::string_view name) noexcept {
  return name.find('"') == std::string_view::npos && name.find('\\') == std::string_view::npos;
}

std::string printable(std::string_view s, std::size_t max) {
  std::string out;
  for (char c : s.substr(0, max)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (s.size() > max) out += "...";
  return out;
}

std::string quoted(std::string_view s) { return "\"" + printable(s, 256) + "\""; }

std::string list_ids(const std::vector<std::string>& ids) {
  std::string out;
  for (const auto& id : ids) out += (out.empty() ? "" : ", ") + printable(id, 64);
  return out;
}

std::string failure_text(const HttpFailure& f) {
  if (f.kind == HttpError::tls) return "TLS: " + f.message;
  return std::string(http_error_name(f.kind)) + ": " + f.message;
}

std::string seconds_text(Duration d) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  return format_duration(std::chrono::milliseconds(std::max<std::int64_t>(ms, 0)));
}

std::string connect_message(HttpResponse& r) {
  if (!r.body) return "";
  auto doc = json::InPlace::parse(r.body);
  if (!doc) return "";
  json::Node m = doc->root().get("message");
  return m.is(json::Node::Type::string) ? ": " + printable(m.text()) : "";
}

}  // namespace chitty::upstream
