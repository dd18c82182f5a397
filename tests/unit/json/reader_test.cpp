#include <catch2/catch.hpp>

#include <string>

#include "chitty/json/reader.hpp"

using chitty::json::parse;
using chitty::json::Value;

TEST_CASE("a body is read into values, members in document order", "[json][reader]") {
  auto v = parse(R"( {"ref":"op://V/I/F","refresh":true,"n":-12,"x":1.5,"big":18446744073709551615,
                      "context":{"service":"a"},"list":[null,"s"]} )");
  REQUIRE(v);
  REQUIRE(v->type == Value::Type::object);
  REQUIRE(v->members.size() == 7);
  CHECK(v->members[0].key == "ref");
  CHECK(v->find("ref")->string == "op://V/I/F");
  CHECK(v->find("refresh")->boolean);
  CHECK(v->find("n")->integer == -12);
  CHECK(v->find("x")->number == 1.5);
  CHECK_FALSE(v->find("x")->integer.has_value());
  CHECK_FALSE(v->find("big")->integer.has_value());  // does not fit int64
  CHECK(v->find("context")->find("service")->string == "a");
  REQUIRE(v->find("list")->items.size() == 2);
  CHECK(v->find("list")->items[0].type == Value::Type::null);
  CHECK(v->find("missing") == nullptr);
}

TEST_CASE("strings are decoded: escapes, surrogate pairs, embedded NUL", "[json][reader]") {
  auto v = parse(R"(["a\"b\\c\n", "\u00e9\ud83d\ude00", "x\u0000y"])");
  REQUIRE(v);
  CHECK(v->items[0].string == "a\"b\\c\n");
  CHECK(v->items[1].string == "\xC3\xA9\xF0\x9F\x98\x80");
  CHECK(v->items[2].string == std::string("x\0y", 3));
}

TEST_CASE("malformed documents are refused with the byte where it went wrong", "[json][reader]") {
  struct Case {
    const char* text;
    const char* says;
  };
  const Case cases[] = {
      {"", "byte 0"},
      {"{\"a\":1", "byte 6"},
      {"{\"a\":1,}", "byte 7"},
      {"{\"a\":1} x", "byte 8"},  // something after the value
      {"{'a':1}", "byte 1"},
      {"[1,2", "byte 4"},
      {"{\"a\":tru}", "invalid value"},
      {"\"\xff\"", "encoding"},           // not UTF-8
      {"\"\xed\xa0\x80\"", "encoding"},   // an encoded surrogate
      {"\"\\ud800\"", "surrogate"},       // a lone surrogate escape
  };
  for (const auto& c : cases) {
    INFO(c.text);
    auto v = parse(c.text);
    REQUIRE_FALSE(v);
    CHECK_THAT(v.error().message, Catch::Contains("invalid JSON") && Catch::Contains(c.says, Catch::CaseSensitive::No));
  }
}

TEST_CASE("duplicate keys are refused, at any depth", "[json][reader]") {
  auto top = parse(R"({"ref":"a","ref":"b"})");
  REQUIRE_FALSE(top);
  CHECK_THAT(top.error().message, Catch::Contains("duplicate key \"ref\""));
  auto nested = parse(R"({"context":{"service":"a","service":"a"}})");
  REQUIRE_FALSE(nested);
  CHECK_THAT(nested.error().message, Catch::Contains("duplicate key \"service\""));
  // The same key in sibling objects is fine.
  CHECK(parse(R"([{"a":1},{"a":2}])"));
}

TEST_CASE("nesting is bounded (no stack to exhaust)", "[json][reader]") {
  std::string ok(chitty::json::kMaxDepth, '[');
  ok += std::string(chitty::json::kMaxDepth, ']');
  CHECK(parse(ok));
  std::string deep(100000, '[');
  auto v = parse(deep);
  REQUIRE_FALSE(v);
  CHECK_THAT(v.error().message, Catch::Contains("nested deeper than 32"));
}
