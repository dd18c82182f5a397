// Environment files for `chittyctl run --env-file` (docs/chittyctl.md):
// NAME=VALUE lines, `export ` allowed in front, `#` comments, values bare
// (trailing blanks and a ` #` comment dropped), in single quotes (taken as
// they are) or double quotes (\" \\ \n \t \r \$ escapes). Pure.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "chitty/base/result.hpp"

namespace chitty::client {

struct EnvEntry {
  std::string name;
  std::string value;  // a secret reference or a plain value; never a secret itself
  std::size_t line = 0;
};

// The entries of `text` in order; the first problem as "FILE:LINE: what".
[[nodiscard]] Result<std::vector<EnvEntry>> parse_env_file(std::string_view text, std::string_view file);

// Whether an environment value is a secret reference chittyctl resolves
// (the whole value is op://…, surrounding blanks allowed).
bool is_secret_reference(std::string_view value) noexcept;

// A valid environment variable name: [A-Za-z_][A-Za-z0-9_]*.
bool is_env_name(std::string_view name) noexcept;

}  // namespace chitty::client
