// Small string helpers shared by every module (std only).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace chitty {

// ASCII case-insensitive comparison (HTTP header names, enum values).
bool iequals(std::string_view a, std::string_view b) noexcept;

// Appends `s` as the body of a JSON string (without the surrounding quotes):
// quotes, backslashes and control characters escaped; bytes that are not
// valid UTF-8 are replaced by U+FFFD so the output is always valid JSON.
void append_json_escaped(std::string& out, std::string_view s);

// The same escaping into any sink: emit(ctx, bytes, n) is called with runs
// of output (secret values are escaped straight into locked memory).
using EmitFn = void (*)(void* ctx, const char* bytes, std::size_t n);
void json_escape(std::string_view s, EmitFn emit, void* ctx);

// Length of the well-formed UTF-8 sequence starting at s[i] (1 for ASCII),
// or 0 if the bytes there are not one.
std::size_t utf8_sequence_length(std::string_view s, std::size_t i) noexcept;

// True if `s` is well-formed UTF-8 (no overlong forms, surrogates or code
// points above U+10FFFF).
bool is_valid_utf8(std::string_view s) noexcept;

// `s` with every byte that does not start a well-formed sequence replaced by
// U+FFFD.
std::string to_valid_utf8(std::string_view s);

// Appends the decimal form of an integer without locale or allocation.
void append_decimal(std::string& out, std::uint64_t v);

// Parses a non-negative decimal integer that must fill the whole string.
bool parse_u64(std::string_view s, std::uint64_t& out) noexcept;

// The value of a hex digit (either case); -1 for any other character.
int hex_digit(char c) noexcept;

// A file mode as people write it: the permission bits (with setuid, setgid
// and sticky) in four octal digits, format_mode(0640) == "0640". Bits above
// 07777 (the file type of a st_mode) are left out.
std::string format_mode(std::uint32_t mode);

// `s` percent-encoded except for RFC 3986's unreserved characters (a URL
// path segment or query value).
std::string percent_encode(std::string_view s);

}  // namespace chitty
