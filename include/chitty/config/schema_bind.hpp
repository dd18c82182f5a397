// Implementation of config::member (included by schema.hpp).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include "chitty/log/log.hpp"

namespace chitty::config {
namespace detail {

template <typename T>
struct is_optional : std::false_type {};
template <typename T>
struct is_optional<std::optional<T>> : std::true_type {};

template <typename M>
void assign_member(M& m, const Value& v) {
  if constexpr (is_optional<M>::value) {
    typename M::value_type inner{};
    assign_member(inner, v);
    m = inner;
  } else if constexpr (std::is_same_v<M, std::string>) {
    m = std::get<std::string>(v);
  } else if constexpr (std::is_same_v<M, bool>) {
    m = std::get<bool>(v);
  } else if constexpr (std::is_same_v<M, std::vector<std::string>>) {
    m = std::get<std::vector<std::string>>(v);
  } else if constexpr (std::is_same_v<M, log::Level>) {
    [[maybe_unused]] bool known = log::parse_level(std::get<std::string>(v), m);  // (checked by the schema)
  } else if constexpr (std::is_same_v<M, std::chrono::milliseconds>) {
    m = std::chrono::duration_cast<std::chrono::milliseconds>(std::get<std::chrono::nanoseconds>(v));
  } else if constexpr (std::is_same_v<M, std::chrono::nanoseconds>) {
    m = std::get<std::chrono::nanoseconds>(v);
  } else if constexpr (std::is_integral_v<M>) {
    // Integer, Size and FileMode keys all land in integral members; the
    // schema's bounds guarantee the value fits.
    std::visit(
        [&](const auto& x) {
          using X = std::decay_t<decltype(x)>;
          if constexpr (std::is_integral_v<X> && !std::is_same_v<X, bool>) m = static_cast<M>(x);
        },
        v);
  } else {
    static_assert(sizeof(M) == 0, "config::member: unsupported member type");
  }
}

}  // namespace detail

namespace detail {

// The value of a member as the log shows it.
template <typename M>
std::string show_member(const M& m) {
  if constexpr (is_optional<M>::value) {
    return m ? show_member(*m) : std::string("(unset)");
  } else if constexpr (std::is_same_v<M, std::string>) {
    return "\"" + m + "\"";
  } else if constexpr (std::is_same_v<M, bool>) {
    return m ? "true" : "false";
  } else if constexpr (std::is_same_v<M, std::vector<std::string>>) {
    std::string out = "[";
    for (const auto& s : m) out += (out.size() > 1 ? ", \"" : "\"") + s + "\"";
    return out + "]";
  } else if constexpr (std::is_same_v<M, log::Level>) {
    return std::string(log::level_name(m));
  } else if constexpr (std::is_same_v<M, std::chrono::milliseconds> || std::is_same_v<M, std::chrono::nanoseconds>) {
    return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(m).count()) + "ms";
  } else if constexpr (std::is_integral_v<M>) {
    return std::to_string(m);
  } else {
    static_assert(sizeof(M) == 0, "config::member: unsupported member type");
  }
}

}  // namespace detail

template <typename Obj, typename Member>
Binding member(Member Obj::*field) {
  Binding b;
  b.assign = [field](void* target, const Value& v) { detail::assign_member(static_cast<Obj*>(target)->*field, v); };
  b.same = [field](const void* x, const void* y) {
    return static_cast<const Obj*>(x)->*field == static_cast<const Obj*>(y)->*field;
  };
  b.copy = [field](void* to, const void* from) { static_cast<Obj*>(to)->*field = static_cast<const Obj*>(from)->*field; };
  b.show = [field](const void* target) { return detail::show_member(static_cast<const Obj*>(target)->*field); };
  return b;
}

}  // namespace chitty::config
