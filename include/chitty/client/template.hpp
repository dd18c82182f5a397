// Templates for `chittyctl inject` (docs/chittyctl.md, "Templates"):
//
//   {{ op://VAULT/ITEM[/SECTION]/FIELD }}   the value (blanks inside the braces optional)
//   {{ "text" }}                            the text itself: how to write a literal "{{"
//                                           (\" and \\ are its escapes)
//
// Inside a reference $NAME, ${NAME} and ${NAME:-default} are replaced from
// the environment first. Everything else is copied as it is, a lone "}}"
// and an op:// outside braces included. Pure.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "chitty/base/result.hpp"

namespace chitty::client {

struct Piece {
  enum class Kind { text, reference };
  Kind kind = Kind::text;
  std::string text;  // the literal text, or the reference (variables replaced)
  std::size_t line = 0, column = 0;  // where it starts in the template (1-based)
};

using Lookup = std::function<std::optional<std::string>(std::string_view name)>;

// The pieces of `text` in order (adjacent text joined), or the first problem
// as "LINE:COLUMN: what" (the caller puts the file name in front).
[[nodiscard]] Result<std::vector<Piece>> parse_template(std::string_view text, const Lookup& env);

// $NAME, ${NAME}, ${NAME:-default} in `text` replaced through `env`; an
// unset variable without a default is an error.
[[nodiscard]] Result<std::string> expand_variables(std::string_view text, const Lookup& env);

}  // namespace chitty::client
