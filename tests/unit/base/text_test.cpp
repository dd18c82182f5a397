// String helpers (text.hpp), memory wiping (wipe.hpp) and timestamp formats
// (time_format.hpp).
#include "chitty/base/text.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <string_view>

#include <catch2/catch.hpp>

#include "chitty/base/time_format.hpp"
#include "chitty/base/wipe.hpp"

namespace chitty {

using namespace std::string_view_literals;

namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

std::string escaped(std::string_view s) {
  std::string out;
  append_json_escaped(out, s);
  return out;
}

std::string repeat(std::string_view s, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) out += s;
  return out;
}

// An independent reading of Unicode's well-formed UTF-8 (Table 3-7): decode
// the code point, then reject overlong forms, surrogates and values above
// U+10FFFF. Used to check is_valid_utf8 exhaustively over short inputs.
bool reference_valid_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    auto b0 = static_cast<unsigned char>(s[i]);
    std::size_t len = 0;
    std::uint32_t cp = 0;
    if (b0 < 0x80) {
      len = 1;
      cp = b0;
    } else if ((b0 & 0xE0) == 0xC0) {
      len = 2;
      cp = b0 & 0x1Fu;
    } else if ((b0 & 0xF0) == 0xE0) {
      len = 3;
      cp = b0 & 0x0Fu;
    } else if ((b0 & 0xF8) == 0xF0) {
      len = 4;
      cp = b0 & 0x07u;
    } else {
      return false;
    }
    if (s.size() - i < len) return false;
    for (std::size_t k = 1; k < len; ++k) {
      auto b = static_cast<unsigned char>(s[i + k]);
      if ((b & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (b & 0x3Fu);
    }
    static constexpr std::uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[len]) return false;
    if (cp >= 0xD800 && cp <= 0xDFFF) return false;
    if (cp > 0x10FFFF) return false;
    i += len;
  }
  return true;
}

}  // namespace

TEST_CASE("iequals compares ASCII letters without case", "[text]") {
  CHECK(iequals("Content-Length", "content-length"));
  CHECK(iequals("CONTENT-LENGTH", "content-length"));
  CHECK(iequals("", ""));
  CHECK(iequals("x-Chitty-Step-Up", "X-CHITTY-STEP-UP"));
  CHECK_FALSE(iequals("abc", "abd"));
  CHECK_FALSE(iequals("abc", "abcd"));
  CHECK_FALSE(iequals("abcd", "abc"));
  CHECK_FALSE(iequals("", "a"));
  // Only letters fold: '@' / '`', '[' / '{' and '^' / '~' differ by 0x20 but are not case pairs.
  CHECK_FALSE(iequals("@", "`"));
  CHECK_FALSE(iequals("[", "{"));
  CHECK_FALSE(iequals("^", "~"));
  CHECK_FALSE(iequals("1", "\x11"));
  // Non-ASCII bytes are compared as they are (no locale folding): U+00C4 vs U+00E4.
  CHECK_FALSE(iequals("\xC3\x84", "\xC3\xA4"));
  CHECK(iequals("\xC3\x84", "\xC3\x84"));
  // Embedded NUL is an ordinary byte.
  CHECK(iequals("a\0B"sv, "A\0b"sv));
  CHECK_FALSE(iequals("a\0b"sv, "a\0c"sv));
}

TEST_CASE("append_json_escaped appends and escapes the JSON specials", "[text][json]") {
  std::string out = "prefix:";
  append_json_escaped(out, "plain text / ok");
  CHECK(out == "prefix:plain text / ok");

  CHECK(escaped("") == "");
  CHECK(escaped("say \"hi\"") == "say \\\"hi\\\"");
  CHECK(escaped("C:\\dir") == "C:\\\\dir");
  CHECK(escaped("a\nb\rc\td") == "a\\nb\\rc\\td");
  CHECK(escaped("\b\f") == "\\u0008\\u000c");
  CHECK(escaped("\x01\x1f") == "\\u0001\\u001f");
  CHECK(escaped("\x7f") == "\\u007f");
  CHECK(escaped("a\0b"sv) == "a\\u0000b");
}

TEST_CASE("append_json_escaped escapes every control character", "[text][json]") {
  for (int c = 0; c < 0x20; ++c) {
    std::string in(1, static_cast<char>(c));
    std::string out = escaped(in);
    INFO("byte " << c << " -> " << out);
    REQUIRE(out.size() >= 2);
    CHECK(out[0] == '\\');
    for (char o : out) CHECK(static_cast<unsigned char>(o) >= 0x20);
  }
}

TEST_CASE("append_json_escaped keeps valid UTF-8 and replaces invalid bytes", "[text][json][utf8]") {
  CHECK(escaped("caf\xC3\xA9") == "caf\xC3\xA9");
  CHECK(escaped("\xE2\x82\xAC 5") == "\xE2\x82\xAC 5");
  CHECK(escaped("\xF0\x9F\x98\x80") == "\xF0\x9F\x98\x80");

  CHECK(escaped("a\xFFz") == "a" + std::string(kReplacement) + "z");
  CHECK(escaped("\x80") == kReplacement);
  // Each byte that does not start a well-formed sequence becomes one U+FFFD.
  CHECK(escaped("a\xE2\x82") == "a" + repeat(kReplacement, 2));
  CHECK(escaped("\xC0\xAF") == repeat(kReplacement, 2));
  CHECK(escaped("\xED\xA0\x80") == repeat(kReplacement, 3));
  CHECK(escaped("\xF4\x90\x80\x80") == repeat(kReplacement, 4));
  // A bad byte in front of a quote must not swallow the quote's escape.
  CHECK(escaped("\xC3\"") == std::string(kReplacement) + "\\\"");
  CHECK(is_valid_utf8(escaped("\xC3\xFF\xE2\x82\xED\xA0\x80\xF0\x9F")));
}

TEST_CASE("is_valid_utf8 accepts well-formed sequences at the boundaries", "[text][utf8]") {
  CHECK(is_valid_utf8(""));
  CHECK(is_valid_utf8("plain ASCII"));
  CHECK(is_valid_utf8("a\0b"sv));
  CHECK(is_valid_utf8("\x7f"));
  CHECK(is_valid_utf8("\xC2\x80"));          // U+0080
  CHECK(is_valid_utf8("\xDF\xBF"));          // U+07FF
  CHECK(is_valid_utf8("\xE0\xA0\x80"));      // U+0800
  CHECK(is_valid_utf8("\xED\x9F\xBF"));      // U+D7FF
  CHECK(is_valid_utf8("\xEE\x80\x80"));      // U+E000
  CHECK(is_valid_utf8("\xEF\xBF\xBF"));      // U+FFFF
  CHECK(is_valid_utf8("\xF0\x90\x80\x80"));  // U+10000
  CHECK(is_valid_utf8("\xF4\x8F\xBF\xBF"));  // U+10FFFF
  CHECK(is_valid_utf8("na\xC3\xAFve \xE2\x82\xAC \xF0\x9F\x98\x80"));
}

TEST_CASE("is_valid_utf8 rejects ill-formed sequences", "[text][utf8]") {
  CHECK_FALSE(is_valid_utf8("\x80"));  // lone continuation
  CHECK_FALSE(is_valid_utf8("\xBF"));
  CHECK_FALSE(is_valid_utf8("\xC0\x80"));          // overlong NUL
  CHECK_FALSE(is_valid_utf8("\xC1\xBF"));          // overlong
  CHECK_FALSE(is_valid_utf8("\xE0\x9F\xBF"));      // overlong 3-byte
  CHECK_FALSE(is_valid_utf8("\xED\xA0\x80"));      // U+D800
  CHECK_FALSE(is_valid_utf8("\xED\xBF\xBF"));      // U+DFFF
  CHECK_FALSE(is_valid_utf8("\xF0\x8F\xBF\xBF"));  // overlong 4-byte
  CHECK_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // U+110000
  CHECK_FALSE(is_valid_utf8("\xF5\x80\x80\x80"));
  CHECK_FALSE(is_valid_utf8("\xF8\x88\x80\x80\x80"));
  CHECK_FALSE(is_valid_utf8("\xFE"));
  CHECK_FALSE(is_valid_utf8("\xFF"));
  CHECK_FALSE(is_valid_utf8("\xC3"));  // truncated
  CHECK_FALSE(is_valid_utf8("\xE2\x82"));
  CHECK_FALSE(is_valid_utf8("\xF0\x9F\x98"));
  CHECK_FALSE(is_valid_utf8("\xC3\x28"));  // bad continuation
  CHECK_FALSE(is_valid_utf8("\xE2\x28\xA1"));
  CHECK_FALSE(is_valid_utf8("ok so far \xC3"));
}

TEST_CASE("is_valid_utf8 agrees with a reference decoder on every short input", "[text][utf8]") {
  std::string s;
  std::size_t mismatches = 0;
  auto check = [&](const std::string& in) {
    if (is_valid_utf8(in) != reference_valid_utf8(in)) {
      if (mismatches++ < 5) FAIL_CHECK("disagreement on " << Catch::Detail::stringify(in));
    }
  };
  for (int a = 0; a < 256; ++a) {
    check(std::string(1, static_cast<char>(a)));
    for (int b = 0; b < 256; ++b) {
      check(std::string{static_cast<char>(a), static_cast<char>(b)});
      for (int c = 0; c < 256; ++c) {
        check(std::string{static_cast<char>(a), static_cast<char>(b), static_cast<char>(c)});
      }
    }
  }
  // Four-byte leads with every second and fourth byte and a few third bytes.
  for (int a = 0xF0; a < 0x100; ++a) {
    for (int b = 0; b < 256; ++b) {
      for (int c : {0x41, 0x80, 0xBF, 0xC0}) {
        for (int d = 0; d < 256; ++d) {
          check(std::string{static_cast<char>(a), static_cast<char>(b), static_cast<char>(c), static_cast<char>(d)});
        }
      }
    }
  }
  CHECK(mismatches == 0);
}

TEST_CASE("to_valid_utf8 leaves valid text alone and repairs the rest", "[text][utf8]") {
  CHECK(to_valid_utf8("") == "");
  CHECK(to_valid_utf8("hello") == "hello");
  CHECK(to_valid_utf8("a\0b"sv) == "a\0b"sv);
  CHECK(to_valid_utf8("\xE2\x82\xAC") == "\xE2\x82\xAC");
  // Unlike append_json_escaped it does not escape anything.
  CHECK(to_valid_utf8("\"\\\n") == "\"\\\n");

  CHECK(to_valid_utf8("a\xFFz") == "a" + std::string(kReplacement) + "z");
  CHECK(to_valid_utf8("\xE2\x82x") == repeat(kReplacement, 2) + "x");
  CHECK(to_valid_utf8("\xED\xA0\x80") == repeat(kReplacement, 3));
  CHECK(to_valid_utf8("\xE2\x82\xAC\xE2\x82") == "\xE2\x82\xAC" + repeat(kReplacement, 2));
}

TEST_CASE("to_valid_utf8 always returns valid UTF-8 and is the identity on valid input", "[text][utf8]") {
  std::mt19937 rng(20261124);
  std::uniform_int_distribution<int> byte(0, 255);
  std::uniform_int_distribution<std::size_t> length(0, 24);
  int failures = 0;
  for (int round = 0; round < 20000 && failures < 5; ++round) {
    std::string in(length(rng), '\0');
    for (auto& c : in) c = static_cast<char>(byte(rng));
    std::string out = to_valid_utf8(in);
    bool ok = reference_valid_utf8(out) && to_valid_utf8(out) == out && (!reference_valid_utf8(in) || out == in) &&
              reference_valid_utf8(escaped(in));  // the JSON escaper repairs the same bytes
    if (!ok) {
      ++failures;
      FAIL_CHECK("input " << Catch::Detail::stringify(in) << " -> " << Catch::Detail::stringify(out));
    }
  }
  CHECK(failures == 0);
}

TEST_CASE("append_decimal writes unsigned integers and appends", "[text]") {
  std::string out;
  append_decimal(out, 0);
  CHECK(out == "0");
  append_decimal(out, 7);
  CHECK(out == "07");

  std::string max;
  append_decimal(max, std::numeric_limits<std::uint64_t>::max());
  CHECK(max == "18446744073709551615");

  std::uint64_t v = 1;
  for (int i = 0; i < 20; ++i) {
    for (std::uint64_t x : {v - 1, v, v + 1}) {
      std::string s = "x";
      append_decimal(s, x);
      CHECK(s == "x" + std::to_string(x));
    }
    if (i < 19) v *= 10;
  }
}

TEST_CASE("parse_u64 accepts whole non-negative decimal strings only", "[text]") {
  std::uint64_t v = 99;
  CHECK(parse_u64("0", v));
  CHECK(v == 0);
  CHECK(parse_u64("42", v));
  CHECK(v == 42);
  CHECK(parse_u64("007", v));
  CHECK(v == 7);
  CHECK(parse_u64("18446744073709551615", v));
  CHECK(v == std::numeric_limits<std::uint64_t>::max());
  CHECK(parse_u64("18446744073709551610", v));
  CHECK(v == 18446744073709551610ULL);

  for (std::string_view bad :
       {""sv, "-1"sv, "+1"sv, " 1"sv, "1 "sv, "1a"sv, "0x10"sv, "1.0"sv, "1_000"sv, "\xD9\xA1"sv, "1\0"sv,
        "18446744073709551616"sv, "18446744073709551620"sv, "99999999999999999999"sv, "100000000000000000000"sv}) {
    std::uint64_t out = 0;
    INFO("input " << Catch::Detail::stringify(std::string(bad)));
    CHECK_FALSE(parse_u64(bad, out));
  }
}

TEST_CASE("secure_zero wipes exactly the range it is given", "[wipe]") {
  std::array<unsigned char, 32> buf{};
  buf.fill(0xAA);
  secure_zero(buf.data() + 8, 16);
  for (std::size_t i = 0; i < buf.size(); ++i) {
    INFO("byte " << i);
    CHECK(buf[i] == ((i >= 8 && i < 24) ? 0x00 : 0xAA));
  }

  std::array<unsigned char, 4> untouched{1, 2, 3, 4};
  secure_zero(untouched.data(), 0);
  CHECK(untouched == std::array<unsigned char, 4>{1, 2, 3, 4});
  secure_zero(nullptr, 0);
  CHECK(untouched[0] == 1);
}

TEST_CASE("WipedBytes behaves like a byte vector", "[wipe]") {
  WipedBytes bytes;
  for (int i = 0; i < 1000; ++i) bytes.push_back(static_cast<char>('a' + i % 26));  // grows several times
  REQUIRE(bytes.size() == 1000);
  CHECK(bytes[0] == 'a');
  CHECK(bytes[999] == static_cast<char>('a' + 999 % 26));
  WipedBytes copy = bytes;
  CHECK(copy == bytes);
  CHECK(WipingAllocator<char>{} == WipingAllocator<int>{});
}

TEST_CASE("format_rfc3339_ms writes UTC with milliseconds", "[time]") {
  using std::chrono::milliseconds;
  auto at = [](std::int64_t ms) { return WallTime(milliseconds(ms)); };
  CHECK(format_rfc3339_ms(at(0)) == "1970-01-01T00:00:00.000Z");
  CHECK(format_rfc3339_ms(at(1795499329123)) == "2026-11-24T05:48:49.123Z");
  CHECK(format_rfc3339_ms(at(1709251199999)) == "2024-02-29T23:59:59.999Z");
  CHECK(format_rfc3339_ms(at(951868800000)) == "2000-03-01T00:00:00.000Z");
  CHECK(format_rfc3339_ms(at(2147483648000)) == "2038-01-19T03:14:08.000Z");
  CHECK(format_rfc3339_ms(at(-1)) == "1969-12-31T23:59:59.999Z");
  // Sub-millisecond parts are truncated, never rounded up into the next second.
  CHECK(format_rfc3339_ms(WallTime(milliseconds(1709251199999) + std::chrono::microseconds(999))) ==
        "2024-02-29T23:59:59.999Z");
  CHECK(format_rfc3339_ms(WallTime(std::chrono::nanoseconds(1))) == "1970-01-01T00:00:00.000Z");
}

TEST_CASE("parse_rfc3339 reads UTC and offsets, and refuses what WallTime cannot hold", "[time]") {
  using std::chrono::milliseconds;
  auto ms = [](std::optional<WallTime> t) {
    REQUIRE(t);
    return std::chrono::duration_cast<milliseconds>(t->time_since_epoch()).count();
  };
  CHECK(ms(parse_rfc3339("2026-11-24T05:48:49.123Z")) == 1795499329123);
  CHECK(ms(parse_rfc3339("2026-11-24T07:48:49.123+02:00")) == 1795499329123);
  CHECK(ms(parse_rfc3339("2026-11-24t05:48:49z")) == 1795499329000);
  CHECK(ms(parse_rfc3339("1969-12-31T23:59:59.999Z")) == -1);
  CHECK(parse_rfc3339("2261-12-31T23:59:59Z"));
  // Past 2262-04-11 (or before 1677) nanoseconds overflow 64 bits: refused
  // (found by the request_json fuzzer through ?since=).
  CHECK_FALSE(parse_rfc3339("4052-12-04T15:00:00.12335Z"));
  CHECK_FALSE(parse_rfc3339("2262-05-01T00:00:00Z"));
  CHECK_FALSE(parse_rfc3339("1600-01-01T00:00:00Z"));
  CHECK_FALSE(parse_rfc3339("2026-13-01T00:00:00Z"));
  CHECK_FALSE(parse_rfc3339("2026-02-29T00:00:00Z"));
  CHECK(ms(parse_rfc3339("2024-02-29T23:59:59.999Z")) == 1709251199999);
  CHECK_FALSE(parse_rfc3339("2100-02-29T00:00:00Z"));
  CHECK(parse_rfc3339("2000-02-29T00:00:00Z"));
  CHECK_FALSE(parse_rfc3339("2026-04-31T00:00:00Z"));
  CHECK_FALSE(parse_rfc3339("2026-11-24T05:48:49"));
  CHECK_FALSE(parse_rfc3339("2026-11-24T05:48:49.Z"));
  CHECK_FALSE(parse_rfc3339("2026-11-24T05:48:49.1234567890Z"));
  CHECK_FALSE(parse_rfc3339("2026-11-24T05:48:49+2:00"));
  CHECK_FALSE(parse_rfc3339("2026-11-24T05:48:49Zjunk"));
}

TEST_CASE("format_http_date writes the IMF-fixdate of RFC 9110", "[time]") {
  using std::chrono::milliseconds;
  auto at = [](std::int64_t ms) { return WallTime(milliseconds(ms)); };
  CHECK(format_http_date(at(0)) == "Thu, 01 Jan 1970 00:00:00 GMT");
  CHECK(format_http_date(at(1795499329123)) == "Tue, 24 Nov 2026 05:48:49 GMT");
  CHECK(format_http_date(at(1709251199999)) == "Thu, 29 Feb 2024 23:59:59 GMT");
  CHECK(format_http_date(at(951868800000)) == "Wed, 01 Mar 2000 00:00:00 GMT");
  CHECK(format_http_date(at(2147483648000)) == "Tue, 19 Jan 2038 03:14:08 GMT");
  CHECK(format_http_date(at(-1)) == "Wed, 31 Dec 1969 23:59:59 GMT");
  CHECK(format_http_date(at(1795499329123)).size() == 29);
}

}  // namespace chitty

TEST_CASE("percent_encode keeps RFC 3986's unreserved characters and encodes the rest", "[base][text]") {
  CHECK(chitty::percent_encode("AZaz09-._~") == "AZaz09-._~");
  CHECK(chitty::percent_encode("title eq \"A/B\"") == "title%20eq%20%22A%2FB%22");
  CHECK(chitty::percent_encode("2026-12-08T00:00:00Z") == "2026-12-08T00%3A00%3A00Z");
  CHECK(chitty::percent_encode(std::string("\x00\xff", 2)) == "%00%FF");
  CHECK(chitty::percent_encode("") == "");
}
