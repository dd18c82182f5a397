#include "chitty/http/request.hpp"

#include "chitty/base/text.hpp"

namespace chitty::http {

std::string_view method_name(Method m) noexcept {
  switch (m) {
    case Method::get: return "GET";
    case Method::head: return "HEAD";
    case Method::post: return "POST";
    case Method::put: return "PUT";
    case Method::del: return "DELETE";
    case Method::patch: return "PATCH";
    case Method::options: return "OPTIONS";
    case Method::other: return "OTHER";
  }
  return "OTHER";
}

namespace {

// The path-and-query part of a request target: origin-form as is, and the
// part after the authority for absolute-form ("http://localhost/health").
std::string_view path_and_query(std::string_view target) noexcept {
  if (!target.empty() && target.front() == '/') return target;
  auto scheme = target.find("://");
  if (scheme == std::string_view::npos) return target;
  auto slash = target.find_first_of("/?", scheme + 3);
  if (slash == std::string_view::npos) return "/";
  if (target[slash] == '?') return target.substr(slash);  // "http://h?x" has an empty path
  return target.substr(slash);
}

}  // namespace

std::string_view Request::path() const noexcept {
  std::string_view pq = path_and_query(target());
  auto q = pq.find_first_of("?#");
  std::string_view p = pq.substr(0, q);
  return p.empty() && !pq.empty() ? std::string_view("/") : p;
}

std::string_view Request::query() const noexcept {
  std::string_view pq = path_and_query(target());
  auto q = pq.find('?');
  if (q == std::string_view::npos) return {};
  std::string_view rest = pq.substr(q + 1);
  return rest.substr(0, rest.find('#'));
}

std::optional<std::string_view> Request::header(std::string_view name) const noexcept {
  for (const auto& [n, v] : headers_) {
    if (iequals(view(n), name)) return view(v);
  }
  return std::nullopt;
}

}  // namespace chitty::http
