#include "chitty/http/router.hpp"

#include <algorithm>
#include <array>
#include <cstdlib>

#include "chitty/http/url.hpp"

namespace chitty::http {

std::optional<std::string_view> find_param(const PathParams& params, std::string_view name) noexcept {
  for (const auto& p : params) {
    if (p.name == name) return std::string_view(p.value);
  }
  return std::nullopt;
}

std::size_t RouteTable::add(Method method, std::string_view pattern) {
  if (pattern.empty() || pattern.front() != '/') std::abort();
  Route r{method, {}, 0, std::string(pattern)};
  std::string_view rest = pattern.substr(1);
  while (true) {
    auto slash = rest.find('/');
    std::string_view seg = rest.substr(0, slash);
    if (seg.size() >= 2 && seg.front() == '{' && seg.back() == '}') {
      r.segments.push_back({std::string(seg.substr(1, seg.size() - 2)), true});
    } else {
      if (seg.find_first_of("{}%") != std::string_view::npos) std::abort();
      r.segments.push_back({std::string(seg), false});
      ++r.literals;
    }
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  routes_.push_back(std::move(r));
  return routes_.size() - 1;
}

RouteTable::Lookup RouteTable::lookup(Method method, std::string_view raw_path) const {
  if (raw_path.empty() || raw_path.front() != '/') return BadPath{"the request target must be an absolute path"};
  std::vector<std::string> segments;
  std::string_view rest = raw_path.substr(1);
  while (true) {
    auto slash = rest.find('/');
    auto decoded = percent_decode(rest.substr(0, slash), false);
    if (!decoded) return BadPath{"invalid path: " + decoded.error().message};
    if (*decoded == "." || *decoded == "..") return BadPath{"invalid path: dot segments are not allowed"};
    segments.push_back(std::move(*decoded));
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }

  const Route* best = nullptr;
  std::size_t best_index = 0;
  std::array<bool, 8> allowed{};  // indexed by Method
  bool path_matched = false;
  for (std::size_t index = 0; index < routes_.size(); ++index) {
    const Route& r = routes_[index];
    if (r.segments.size() != segments.size()) continue;
    bool match = true;
    for (std::size_t i = 0; i < segments.size() && match; ++i) {
      const Segment& s = r.segments[i];
      match = s.param ? !segments[i].empty() : s.text == segments[i];
    }
    if (!match) continue;
    path_matched = true;
    allowed[static_cast<std::size_t>(r.method)] = true;
    if (r.method == method && (best == nullptr || r.literals > best->literals)) {
      best = &r;
      best_index = index;
    }
  }
  if (best != nullptr) {
    Found f{best_index, {}, best->pattern};
    for (std::size_t i = 0; i < segments.size(); ++i) {
      if (best->segments[i].param) f.params.push_back({best->segments[i].text, std::move(segments[i])});
    }
    return f;
  }
  if (!path_matched) return NotFound{};
  std::string allow;
  for (std::size_t m = 0; m < allowed.size(); ++m) {
    if (!allowed[m]) continue;
    if (!allow.empty()) allow += ", ";
    allow += method_name(static_cast<Method>(m));
  }
  return NotAllowed{std::move(allow)};
}

}  // namespace chitty::http
