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
    log::parse_level(std::get<std::string>(v), m);
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

template <typename Obj, typename Member>
std::function<void(void*, const Value&)> member(Member Obj::*field) {
  return [field](void* target, const Value& v) { detail::assign_member(static_cast<Obj*>(target)->*field, v); };
}

}  // namespace chitty::config
