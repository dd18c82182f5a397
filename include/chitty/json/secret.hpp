// Writing secret values into JSON without leaving locked memory: sizes are
// computed first, then the escaped (or base64) value and its mask are written
// straight into a SecureBuffer. The non-secret rest of a document is built
// with json::Writer.
#pragma once

#include <cstddef>
#include <span>

#include "chitty/secure/secure_buffer.hpp"

namespace chitty::json {

// How a value is carried in a JSON string: as text (it is well-formed
// UTF-8) or base64 (SPEC §4: "encoding":"base64").
enum class Encoding { text, base64 };
Encoding encoding_for(std::span<const char> value) noexcept;

// Bytes `value` takes inside the quotes, in `enc`.
std::size_t encoded_size(std::span<const char> value, Encoding enc) noexcept;
// Appends it; false (nothing appended) if it does not fit.
bool append_encoded(secure::SecureBuffer& out, std::span<const char> value, Encoding enc) noexcept;

// The SPEC's masked_value (docs/api.md): for text of 20 characters or more,
// "…" and its last 4 characters; for shorter text and for a value that is
// not UTF-8 (carried as base64), "********" — the same eight asterisks
// whatever its length, which a mask must not reveal. Sizes and appends as
// above.
std::size_t masked_size(std::span<const char> value, Encoding enc) noexcept;
bool append_masked(secure::SecureBuffer& out, std::span<const char> value, Encoding enc) noexcept;

}  // namespace chitty::json
