// Errors as values on the request path (STYLE.md: exceptions only at start-up).
#pragma once

#include <string>
#include <utility>

#include <tl/expected.hpp>

namespace chitty {

// A failure with a human-readable message. The message is shown to operators
// (logs, --check-config output) and must never contain secret material.
struct Error {
  std::string message;

  Error() = default;
  explicit Error(std::string msg) : message(std::move(msg)) {}
};

template <typename T>
using Result = tl::expected<T, Error>;

// `return fail("...")` from any function returning Result<T>.
inline tl::unexpected<Error> fail(std::string message) {
  return tl::unexpected<Error>(Error(std::move(message)));
}

}  // namespace chitty
