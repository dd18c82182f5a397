#include "chitty/base/enum_names.hpp"

#include <catch2/catch.hpp>

namespace {

enum class Colour { red, green, blue };
constexpr std::array<std::string_view, 3> kColours{"red", "green", "blue"};

}  // namespace

TEST_CASE("name_of indexes the names by the enum's value and refuses what is out of range") {
  CHECK(chitty::name_of(kColours, Colour::red) == "red");
  CHECK(chitty::name_of(kColours, Colour::blue) == "blue");
  CHECK(chitty::name_of(kColours, static_cast<Colour>(3)) == "unknown");
  CHECK(chitty::name_of(kColours, static_cast<Colour>(-1)) == "unknown");
}

TEST_CASE("names_every holds only for a table as long as the enum, with no empty name") {
  STATIC_REQUIRE(chitty::names_every(kColours, Colour::blue));
  constexpr std::array<std::string_view, 2> kShort{"red", "green"};
  STATIC_REQUIRE_FALSE(chitty::names_every(kShort, Colour::blue));
  constexpr std::array<std::string_view, 3> kHole{"red", "", "blue"};
  STATIC_REQUIRE_FALSE(chitty::names_every(kHole, Colour::blue));
}
