#include "chitty/json/secret.hpp"

#include <string_view>

#include "chitty/base/text.hpp"

namespace chitty::json {
namespace {

constexpr char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
constexpr std::size_t kMaskShown = 4;
constexpr std::size_t kMaskMinimum = 20;
constexpr std::string_view kEllipsis = "\xE2\x80\xA6";  // U+2026
// The mask of a short or non-text value: the same whatever its length.
constexpr std::string_view kHiddenMask = "********";

std::string_view view(std::span<const char> s) noexcept { return {s.data(), s.size()}; }

void count(void* ctx, const char*, std::size_t n) { *static_cast<std::size_t*>(ctx) += n; }
// Callers have made room for what json_escape() writes (escaped_size).
void put(void* ctx, const char* b, std::size_t n) {
  [[maybe_unused]] bool fits = static_cast<secure::SecureBuffer*>(ctx)->append({b, n});
}

std::size_t escaped_size(std::string_view s) noexcept {
  std::size_t n = 0;
  json_escape(s, &count, &n);
  return n;
}

std::size_t base64_size(std::size_t n) noexcept { return (n + 2) / 3 * 4; }

// The i-th base64 character of `s` (i < base64_size(s.size())).
char base64_at(std::string_view s, std::size_t i) noexcept {
  std::size_t group = i / 4, pos = i % 4, at = group * 3;
  std::size_t have = s.size() - at;
  if ((pos == 2 && have < 2) || (pos == 3 && have < 3)) return '=';
  std::uint32_t v = static_cast<std::uint32_t>(static_cast<unsigned char>(s[at])) << 16;
  if (have > 1) v |= static_cast<std::uint32_t>(static_cast<unsigned char>(s[at + 1])) << 8;
  if (have > 2) v |= static_cast<unsigned char>(s[at + 2]);
  return kBase64[(v >> (18 - 6 * pos)) & 0x3F];
}

// Characters of the carried value, and the byte offset where its last
// kMaskShown characters start (text: code points).
struct Shape {
  std::size_t chars = 0;
  std::size_t tail = 0;
};

Shape shape(std::string_view s, Encoding enc) noexcept {
  Shape sh;
  if (enc == Encoding::base64) {
    sh.chars = base64_size(s.size());
    sh.tail = sh.chars >= kMaskShown ? sh.chars - kMaskShown : 0;
    return sh;
  }
  std::size_t starts[kMaskShown] = {};
  for (std::size_t i = 0; i < s.size();) {
    starts[sh.chars % kMaskShown] = i;
    ++sh.chars;
    std::size_t n = utf8_sequence_length(s, i);
    i += n == 0 ? 1 : n;
  }
  if (sh.chars >= kMaskShown) sh.tail = starts[sh.chars % kMaskShown];
  return sh;
}

}  // namespace

Encoding encoding_for(std::span<const char> value) noexcept {
  return is_valid_utf8(view(value)) ? Encoding::text : Encoding::base64;
}

std::size_t encoded_size(std::span<const char> value, Encoding enc) noexcept {
  return enc == Encoding::text ? escaped_size(view(value)) : base64_size(value.size());
}

bool append_encoded(secure::SecureBuffer& out, std::span<const char> value, Encoding enc) noexcept {
  if (out.capacity() - out.size() < encoded_size(value, enc)) return false;
  std::string_view s = view(value);
  if (enc == Encoding::text) {
    json_escape(s, &put, &out);
  } else {
    for (std::size_t i = 0, n = base64_size(s.size()); i < n; ++i) {
      if (!out.push_back(base64_at(s, i))) return false;
    }
  }
  return true;
}

std::size_t masked_size(std::span<const char> value, Encoding enc) noexcept {
  std::string_view s = view(value);
  if (enc == Encoding::base64) return kHiddenMask.size();
  Shape sh = shape(s, enc);
  if (sh.chars < kMaskMinimum) return kHiddenMask.size();
  return kEllipsis.size() + escaped_size(s.substr(sh.tail));
}

bool append_masked(secure::SecureBuffer& out, std::span<const char> value, Encoding enc) noexcept {
  if (out.capacity() - out.size() < masked_size(value, enc)) return false;
  std::string_view s = view(value);
  // A value that is not text, or is short, shows nothing of itself, not
  // even its length: always the same asterisks.
  if (enc == Encoding::base64) return out.append(kHiddenMask);
  Shape sh = shape(s, enc);
  if (sh.chars < kMaskMinimum) return out.append(kHiddenMask);
  if (!out.append(kEllipsis)) return false;
  json_escape(s.substr(sh.tail), &put, &out);
  return true;
}

}  // namespace chitty::json
