// chitty::json::Writer: structure, escaping, UTF-8 repair and numbers. Every
// document is read back with an independent strict JSON reader.
#include "chitty/json/writer.hpp"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "json_reader.hpp"

namespace chitty::json {

using namespace std::string_view_literals;

namespace {

using chitty::testing::Json;
using chitty::testing::read_json;


constexpr std::string_view kReplacement = "\xEF\xBF\xBD";  // U+FFFD

// Reads a complete document, failing the test if it is not valid JSON.
Json parse_or_fail(const std::string& text) {
  INFO("document: " << text);
  auto doc = read_json(text);
  REQUIRE(doc.has_value());
  return *doc;
}

// The document holding one string value, decoded.
std::string string_round_trip(std::string_view value) {
  std::string out;
  Writer w(out);
  w.string(value);
  REQUIRE(w.complete());
  Json doc = parse_or_fail(out);
  REQUIRE(doc.type == Json::Type::string);
  return doc.text;
}

std::string number_text(double d) {
  std::string out;
  Writer w(out);
  w.number(d);
  REQUIRE(w.complete());
  return out;
}

}  // namespace

TEST_CASE("the test's JSON reader rejects malformed documents", "[json][reader]") {
  // The checks below are only as good as this reader.
  for (std::string_view bad : {""sv,
                               "{"sv,
                               "{]"sv,
                               "[1,]"sv,
                               "{\"a\":1,}"sv,
                               "{\"a\" 1}"sv,
                               "{a:1}"sv,
                               "01"sv,
                               "1."sv,
                               ".5"sv,
                               "+1"sv,
                               "-"sv,
                               "1e"sv,
                               "NaN"sv,
                               "Infinity"sv,
                               "nul"sv,
                               "tru"sv,
                               "\"abc"sv,
                               "\"a\nb\""sv,
                               "\"\\x\""sv,
                               "\"\\u12\""sv,
                               "\"\\ud800\""sv,
                               "\"\\udc00\""sv,
                               "\"\xFF\""sv,
                               "\"\xC0\x80\""sv,
                               "\"\xED\xA0\x80\""sv,
                               "1 2"sv,
                               "[] x"sv,
                               "'a'"sv}) {
    INFO("input " << Catch::Detail::stringify(std::string(bad)));
    CHECK_FALSE(read_json(bad).has_value());
  }
  for (std::string_view good :
       {"0"sv, "-0.5e+10"sv, "\"\\ud83d\\ude00\""sv, " [ ] "sv, "{\"a\":[null,true]}"sv, "\"\xF0\x9F\x98\x80\""sv}) {
    INFO("input " << Catch::Detail::stringify(std::string(good)));
    CHECK(read_json(good).has_value());
  }
}

TEST_CASE("Writer writes empty containers", "[json][writer]") {
  std::string obj;
  Writer(obj).begin_object().end_object();
  CHECK(obj == "{}");

  std::string arr;
  Writer(arr).begin_array().end_array();
  CHECK(arr == "[]");
}

TEST_CASE("Writer writes an object with every kind of value", "[json][writer]") {
  std::string out;
  Writer w(out);
  w.begin_object()
      .key("s")
      .string("v")
      .key("i")
      .integer(-5)
      .key("u")
      .uinteger(18446744073709551615ULL)
      .key("d")
      .number(1.5)
      .key("t")
      .boolean(true)
      .key("f")
      .boolean(false)
      .key("n")
      .null()
      .end_object();
  CHECK(out == R"({"s":"v","i":-5,"u":18446744073709551615,"d":1.5,"t":true,"f":false,"n":null})");
  CHECK(w.complete());

  Json doc = parse_or_fail(out);
  REQUIRE(doc.type == Json::Type::object);
  REQUIRE(doc.members.size() == 7);
  CHECK(doc.find("s")->text == "v");
  CHECK(doc.find("u")->text == "18446744073709551615");
  CHECK(doc.find("n")->type == Json::Type::null);
}

TEST_CASE("Writer nests arrays and objects", "[json][writer]") {
  std::string out;
  Writer w(out);
  w.begin_object().key("a").begin_array();
  w.integer(1).begin_array().integer(2).begin_object().end_object().end_array();
  w.begin_object().key("b").begin_array().end_array().key("c").string("x").end_object();
  w.end_array().key("z").begin_object().key("deep").begin_object().key("er").null().end_object().end_object();
  w.end_object();

  CHECK(out == R"({"a":[1,[2,{}],{"b":[],"c":"x"}],"z":{"deep":{"er":null}}})");
  CHECK(w.complete());
  Json doc = parse_or_fail(out);
  const Json* a = doc.find("a");
  REQUIRE(a != nullptr);
  REQUIRE(a->items.size() == 3);
  CHECK(a->items[1].items[1].type == Json::Type::object);
  CHECK(a->items[2].find("c")->text == "x");
}

TEST_CASE("Writer handles deep nesting", "[json][writer]") {
  std::string out;
  Writer w(out);
  constexpr int kDepth = 50;
  for (int i = 0; i < kDepth; ++i) w.begin_array();
  CHECK_FALSE(w.complete());
  w.string("bottom");
  for (int i = 0; i < kDepth; ++i) w.end_array();
  CHECK(w.complete());
  CHECK(out == std::string(kDepth, '[') + "\"bottom\"" + std::string(kDepth, ']'));
}

TEST_CASE("Writer::complete is true only once one top-level value is finished", "[json][writer]") {
  std::string out;
  Writer w(out);
  CHECK_FALSE(w.complete());
  w.begin_object();
  CHECK_FALSE(w.complete());
  w.key("list");
  CHECK_FALSE(w.complete());
  w.begin_array().integer(1);
  CHECK_FALSE(w.complete());
  w.end_array();
  CHECK_FALSE(w.complete());
  w.end_object();
  CHECK(w.complete());

  for (int kind = 0; kind < 5; ++kind) {
    std::string scalar;
    Writer s(scalar);
    switch (kind) {
      case 0:
        s.string("x");
        break;
      case 1:
        s.integer(3);
        break;
      case 2:
        s.number(2.5);
        break;
      case 3:
        s.boolean(false);
        break;
      default:
        s.null();
        break;
    }
    INFO("scalar " << scalar);
    CHECK(s.complete());
    CHECK(read_json(scalar).has_value());
  }
}

TEST_CASE("Writer escapes quotes, backslashes and control characters", "[json][writer][escape]") {
  std::string all_controls;
  for (int c = 1; c < 0x20; ++c) all_controls += static_cast<char>(c);
  for (std::string_view s : {"say \"hi\""sv, "C:\\dir\\"sv, "line\nbreak\r\ttab"sv, "\b\f"sv, "nul\0byte"sv,
                             std::string_view(all_controls), "</script>"sv, "\x7f"sv}) {
    std::string out;
    Writer(out).string(s);
    INFO("output " << out);
    CHECK(out.front() == '"');
    CHECK(out.back() == '"');
    for (char c : out) CHECK(static_cast<unsigned char>(c) >= 0x20);
    CHECK(string_round_trip(s) == s);
  }
  std::string quoted;
  Writer(quoted).string("a\"b\\c\nd");
  CHECK(quoted == R"("a\"b\\c\nd")");
}

TEST_CASE("Writer escapes keys like strings", "[json][writer][escape]") {
  std::string out;
  Writer w(out);
  w.begin_object().key("we\"ird\n\\key").integer(1).key("\x01").integer(2).end_object();
  Json doc = parse_or_fail(out);
  REQUIRE(doc.members.size() == 2);
  CHECK(doc.members[0].first == "we\"ird\n\\key");
  CHECK(doc.members[1].first == "\x01");
}

TEST_CASE("Writer passes valid UTF-8 through unescaped", "[json][writer][utf8]") {
  const std::string text = "caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xF4\x8F\xBF\xBF";
  std::string out;
  Writer(out).string(text);
  CHECK(out == "\"" + text + "\"");
  CHECK(string_round_trip(text) == text);
}

TEST_CASE("Writer replaces invalid UTF-8 with U+FFFD and keeps the document valid", "[json][writer][utf8]") {
  CHECK(string_round_trip("a\xFFz") == "a" + std::string(kReplacement) + "z");
  CHECK(string_round_trip("\x80") == kReplacement);
  CHECK(string_round_trip("tail\xE2\x82") == "tail" + std::string(kReplacement) + std::string(kReplacement));
  CHECK(string_round_trip("\xC0\xAF") == std::string(kReplacement) + std::string(kReplacement));
  CHECK(string_round_trip("\xED\xA0\x80x") ==
        std::string(kReplacement) + std::string(kReplacement) + std::string(kReplacement) + "x");
  CHECK(string_round_trip("\xF4\x90\x80\x80").size() == 4 * kReplacement.size());
  // Valid text around the bad byte is kept as it was.
  CHECK(string_round_trip("\xC3\xA9\xFF\xC3\xA9") == "\xC3\xA9" + std::string(kReplacement) + "\xC3\xA9");

  // A client-supplied path with bad bytes in an error body: the rest of the
  // document must still be written after it.
  std::string out;
  Writer w(out);
  w.begin_object()
      .key("error")
      .string("not_found")
      .key("path\xFE")
      .string("/v1/secrets/\xC3(\"x\"\xFF")
      .key("status")
      .integer(404)
      .end_object();
  CHECK(w.complete());
  Json doc = parse_or_fail(out);
  REQUIRE(doc.members.size() == 3);
  CHECK(doc.members[1].first == "path" + std::string(kReplacement));
  CHECK(doc.members[1].second.text ==
        "/v1/secrets/" + std::string(kReplacement) + "(\"x\"" + std::string(kReplacement));
  CHECK(doc.find("status")->text == "404");
}

TEST_CASE("Writer output is valid JSON for arbitrary bytes", "[json][writer][utf8]") {
  // Every single byte value and every pair of bytes in a key and a string.
  for (int a = 0; a < 256; ++a) {
    for (int b = 0; b < 256; ++b) {
      const char bytes[] = {static_cast<char>(a), static_cast<char>(b)};
      std::string_view s(bytes, sizeof bytes);
      std::string out;
      Writer w(out);
      w.begin_object().key(s).string(s).end_object();
      if (!w.complete() || !read_json(out).has_value()) {
        FAIL("invalid output for bytes " << a << "," << b << ": " << out);
      }
    }
  }
  SUCCEED("all 65536 pairs produced valid documents");
  std::string out;
  Writer(out).begin_array().string("\xE2\x82").string("\xF0\x9F\x98").end_array();
  CHECK(read_json(out).has_value());
}

TEST_CASE("Writer writes integers exactly", "[json][writer][number]") {
  std::string out;
  Writer w(out);
  w.begin_array()
      .integer(0)
      .integer(-1)
      .integer(std::numeric_limits<std::int64_t>::min())
      .integer(std::numeric_limits<std::int64_t>::max())
      .uinteger(0)
      .uinteger(std::numeric_limits<std::uint64_t>::max())
      .end_array();
  CHECK(out == "[0,-1,-9223372036854775808,9223372036854775807,0,18446744073709551615]");
  CHECK(read_json(out).has_value());
}

TEST_CASE("Writer writes finite doubles that read back exactly", "[json][writer][number]") {
  for (double d :
       {0.0, 1.5, -2.25, 0.1, 1.0 / 3.0, 1e300, -1e-300, 123456789.125, 4.9e-324, std::numeric_limits<double>::max()}) {
    std::string text = number_text(d);
    INFO(d << " -> " << text);
    Json doc = parse_or_fail(text);
    CHECK(doc.type == Json::Type::number);
    CHECK(std::strtod(text.c_str(), nullptr) == d);
  }
}

TEST_CASE("Writer writes non-finite numbers as null", "[json][writer][number]") {
  CHECK(number_text(std::numeric_limits<double>::quiet_NaN()) == "null");
  CHECK(number_text(-std::numeric_limits<double>::quiet_NaN()) == "null");
  CHECK(number_text(std::numeric_limits<double>::infinity()) == "null");
  CHECK(number_text(-std::numeric_limits<double>::infinity()) == "null");

  std::string out;
  Writer w(out);
  w.begin_object().key("ratio").number(std::nan("")).key("next").integer(1).end_object();
  CHECK(out == R"({"ratio":null,"next":1})");
  CHECK(w.complete());
}

TEST_CASE("Writer handles many values", "[json][writer]") {
  std::string out;
  Writer w(out);
  w.begin_array();
  for (int i = 0; i < 1000; ++i) w.begin_object().key("i").integer(i).key("s").string(std::to_string(i)).end_object();
  w.end_array();
  CHECK(w.complete());
  Json doc = parse_or_fail(out);
  REQUIRE(doc.items.size() == 1000);
  CHECK(doc.items[999].find("i")->text == "999");
  CHECK(doc.items[999].find("s")->text == "999");
}

}  // namespace chitty::json
