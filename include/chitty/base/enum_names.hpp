#pragma once
// An enum's names as one array in the order of its values (0, 1, ...), in
// place of a switch that repeats "case X: return "x";" for every value. Beside
// each array, a static_assert ties its length to the enum's last value; an
// enum that gains a value names it there (the enum's comment says where).
#include <array>
#include <cstddef>
#include <string_view>

namespace chitty {

template <typename E, std::size_t N>
constexpr std::string_view name_of(const std::array<std::string_view, N>& names, E value) noexcept {
  const auto i = static_cast<std::size_t>(value);
  return i < N ? names[i] : std::string_view("unknown");
}

// True when the array names every value up to and including `last`.
template <typename E, std::size_t N>
constexpr bool names_every(const std::array<std::string_view, N>& names, E last) noexcept {
  if (static_cast<std::size_t>(last) + 1 != N) return false;
  for (std::string_view n : names) {
    if (n.empty()) return false;
  }
  return true;
}

}  // namespace chitty
