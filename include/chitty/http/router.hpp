// Routing of (method, path) to a handler, with path parameters:
//   router.add(Method::get, "/api/onepassword/service-token/{target}", h);
// Literal segments match exactly; "{name}" matches one non-empty segment and
// binds its percent-decoded value. When several patterns match a path, the
// one with more literal segments wins. Routes are added before the first
// lookup; the table is read-only afterwards.
//
// A match names the pattern it matched (Found::pattern): handlers label
// their metrics with it, so each route's pattern is written once, where it
// is added.
#pragma once

#include <cstddef>
#include <deque>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "chitty/http/request.hpp"

namespace chitty::http {

struct PathParam {
  std::string_view name;  // from the pattern; valid while the router lives
  std::string value;      // percent-decoded
};
using PathParams = std::vector<PathParam>;

// Value of a parameter by name, if bound.
std::optional<std::string_view> find_param(const PathParams& params, std::string_view name) noexcept;

// The handler-independent part of the router.
class RouteTable {
 public:
  // Returns the new route's index. A malformed pattern is a programming error
  // (the pattern is a literal in the source) and aborts.
  std::size_t add(Method method, std::string_view pattern);

  struct Found {
    std::size_t index;
    PathParams params;
    std::string_view pattern;  // as added; valid while the table lives
  };
  struct NotFound {};
  struct NotAllowed {
    std::string allow;  // for the Allow header: "GET, POST"
  };
  struct BadPath {
    std::string message;  // malformed escapes, dot segments, encoded NUL
  };
  using Lookup = std::variant<Found, NotFound, NotAllowed, BadPath>;

  Lookup lookup(Method method, std::string_view raw_path) const;

 private:
  struct Segment {
    std::string text;
    bool param;
  };
  struct Route {
    Method method;
    std::vector<Segment> segments;
    std::size_t literals;
    std::string pattern;
  };
  std::deque<Route> routes_;  // deque: parameter names and patterns stay put
};

template <typename Handler>
class Router {
 public:
  void add(Method method, std::string_view pattern, Handler h) {
    std::size_t i = table_.add(method, pattern);
    if (handlers_.size() <= i) handlers_.resize(i + 1);
    handlers_[i] = std::move(h);
  }

  struct Found {
    const Handler* handler;
    PathParams params;
    std::string_view pattern;  // the matched route's pattern; valid while the router lives
  };
  using Lookup = std::variant<Found, RouteTable::NotFound, RouteTable::NotAllowed, RouteTable::BadPath>;

  Lookup route(Method method, std::string_view raw_path) const {
    RouteTable::Lookup r = table_.lookup(method, raw_path);
    if (auto* f = std::get_if<RouteTable::Found>(&r)) return Found{&handlers_[f->index], std::move(f->params), f->pattern};
    if (auto* n = std::get_if<RouteTable::NotAllowed>(&r)) return std::move(*n);
    if (auto* b = std::get_if<RouteTable::BadPath>(&r)) return std::move(*b);
    return RouteTable::NotFound{};
  }

 private:
  RouteTable table_;
  std::vector<Handler> handlers_;
};

}  // namespace chitty::http
