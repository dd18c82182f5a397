// Taking a secret out of the process environment (the env provider's values,
// the Connect token_env).
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace chitty::upstream {

// If `name` is set: calls use(value) with the value of its first NAME=value
// string (still in the environment block: copy it into locked memory there),
// then unsets it and zeroes every NAME=... string in place, so that
// /proc/PID/environ shows zeros where it was. Returns false, without calling
// `use`, when it is not set.
bool take_environment_variable(const std::string& name, const std::function<void(std::string_view value)>& use);

}  // namespace chitty::upstream
