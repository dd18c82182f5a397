// Secret values into JSON, in locked memory: escaping, base64, masks.
#include <catch2/catch.hpp>

#include <string>

#include "chitty/json/secret.hpp"
#include "json_reader.hpp"

using chitty::json::Encoding;

namespace {

struct Arena {
  std::unique_ptr<chitty::secure::Arena> arena;
  Arena() {
    chitty::secure::ArenaOptions o;
    o.capacity = 1 << 20;
    arena = std::move(*chitty::secure::Arena::create(o));
  }
};

std::span<const char> span(const std::string& s) { return {s.data(), s.size()}; }

// What a client reads: the value and mask as JSON strings, decoded.
struct Written {
  std::string value;
  std::string mask;
  Encoding enc;
};

Written write(chitty::secure::Arena& arena, const std::string& secret) {
  Encoding enc = chitty::json::encoding_for(span(secret));
  std::size_t n = 2 + chitty::json::encoded_size(span(secret), enc) + 3 + chitty::json::masked_size(span(secret), enc) + 2;
  auto b = chitty::secure::SecureBuffer::allocate(arena, n);
  REQUIRE(b);
  REQUIRE(b.append("[\""));
  REQUIRE(chitty::json::append_encoded(b, span(secret), enc));
  REQUIRE(b.append("\",\""));
  REQUIRE(chitty::json::append_masked(b, span(secret), enc));
  REQUIRE(b.append("\"]"));
  CHECK(b.size() == n);  // the sizes computed first are exact
  auto doc = chitty::testing::read_json(std::string_view(b.data(), b.size()));
  REQUIRE(doc);
  return {doc->items[0].text, doc->items[1].text, enc};
}

std::string base64(const std::string& s) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  for (std::size_t i = 0; i < s.size(); i += 3) {
    unsigned v = static_cast<unsigned char>(s[i]) << 16;
    if (i + 1 < s.size()) v |= static_cast<unsigned char>(s[i + 1]) << 8;
    if (i + 2 < s.size()) v |= static_cast<unsigned char>(s[i + 2]);
    out += k[(v >> 18) & 63];
    out += k[(v >> 12) & 63];
    out += i + 1 < s.size() ? k[(v >> 6) & 63] : '=';
    out += i + 2 < s.size() ? k[v & 63] : '=';
  }
  return out;
}

}  // namespace

TEST_CASE("UTF-8 values round-trip through JSON escaping", "[json][secret]") {
  Arena a;
  for (std::string s : {std::string("plain"), std::string("q\"uote\\back\nnl\ttab\x01\x1f"), std::string("\xC3\xA9t\xC3\xA9 \xF0\x9F\x94\x91"),
                        std::string(), std::string("\x7f del"),
                        std::string("\x00\x01\x02\x03", 4)}) {  // control characters are UTF-8: escaped
    INFO(s);
    Written w = write(*a.arena, s);
    CHECK(w.enc == Encoding::text);
    CHECK(w.value == s);
  }
}

TEST_CASE("values that are not UTF-8 are carried as base64", "[json][secret]") {
  Arena a;
  for (std::string s : {std::string("\xff"), std::string("ab\xff"), std::string("\xC3"), std::string(1000, '\x80')}) {
    Written w = write(*a.arena, s);
    CHECK(w.enc == Encoding::base64);
    CHECK(w.value == base64(s));
  }
}

TEST_CASE("masks: the last 4 characters from 20 on; short or binary values show nothing, not even their length",
          "[json][secret]") {
  Arena a;
  for (const std::string& short_value : {std::string(), std::string("a"), std::string("abc"), std::string(19, 'x'),
                                         std::string("\xC3\xA9\xC3\xA9\xC3\xA9")}) {
    INFO(short_value.size() << " bytes");
    CHECK(write(*a.arena, short_value).mask == "********");
  }
  CHECK(write(*a.arena, "sk-0123456789abcdefWXYZ").mask == "\xE2\x80\xA6WXYZ");
  CHECK(write(*a.arena, std::string(20, 'x')).mask == "\xE2\x80\xA6xxxx");
  // Characters, not bytes: four code points, escaped where JSON needs it.
  std::string unicode = std::string(16, 'p') + "\xC3\xA9\"\n\xF0\x9F\x94\x91";
  CHECK(write(*a.arena, unicode).mask == "\xE2\x80\xA6\xC3\xA9\"\n\xF0\x9F\x94\x91");
  // Not UTF-8 (carried as base64): asterisks, as docs/api.md says, whatever the size.
  for (std::size_t n : {1u, 15u, 100u}) {
    std::string bin(n, '\xff');
    Written w = write(*a.arena, bin);
    CHECK(w.enc == Encoding::base64);
    CHECK(w.mask == "********");
  }
}

TEST_CASE("appends refuse what does not fit and leave the buffer as it was", "[json][secret]") {
  Arena a;
  auto b = chitty::secure::SecureBuffer::allocate(*a.arena, 32);
  std::string big(40, 'x');
  CHECK_FALSE(chitty::json::append_encoded(b, span(big), Encoding::text));
  CHECK(b.size() == 0);
  std::string mask_big(64, 'x');
  REQUIRE(b.append(std::string(30, 'y')));
  CHECK_FALSE(chitty::json::append_masked(b, span(mask_big), Encoding::text));
  CHECK(b.size() == 30);
}
