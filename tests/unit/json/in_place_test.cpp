#include <catch2/catch.hpp>

#include <algorithm>
#include <string>

#include "chitty/json/in_place.hpp"
#include "chitty/secure/arena.hpp"

using chitty::json::InPlace;
using chitty::json::InPlaceLimits;
using chitty::json::Node;
using chitty::secure::Arena;
using chitty::secure::ArenaOptions;
using chitty::secure::SecureBuffer;

namespace {

Arena& arena() {
  static std::unique_ptr<Arena> a = [] {
    ArenaOptions o;
    o.capacity = 1 << 20;
    auto r = Arena::create(o);
    REQUIRE(r);
    return std::move(*r);
  }();
  return *a;
}

SecureBuffer buffer_of(std::string_view text) {
  SecureBuffer b = SecureBuffer::allocate(arena(), text.size() + 1);
  REQUIRE(b);
  REQUIRE(b.append(text));
  return b;
}

const char* kItem = R"({
  "id": "x4jdl2kp3aq7mb5hz6tn9rcw2e", "title": "db-prod", "vault": {"id": "k2vcm5wq8dt3hf7ry4ne6pzb1a"},
  "version": 3, "favorite": false, "tags": ["prod", "db"], "nothing": null,
  "sections": [{"id": "add more"}, {"id": "c3zq", "label": "Extra"}],
  "fields": [
    {"id": "username", "type": "STRING", "label": "username", "value": "app"},
    {"id": "password", "type": "CONCEALED", "label": "password", "value": "p\"@ss\\w\u00e9rd", "entropy": 48.2},
    {"id": "h7s", "section": {"id": "c3zq"}, "type": "CONCEALED", "label": "api key", "value": "abc"}
  ]
})";

}  // namespace

TEST_CASE("a Connect item is read in place: values, keys, nesting, order", "[json][in_place]") {
  SecureBuffer b = buffer_of(kItem);
  auto doc = InPlace::parse(b);
  INFO((doc ? "" : doc.error().message));
  REQUIRE(doc);
  Node root = doc->root();
  REQUIRE(root.is(Node::Type::object));
  CHECK(root.get("title").text() == "db-prod");
  CHECK(root.get("vault").get("id").text() == "k2vcm5wq8dt3hf7ry4ne6pzb1a");
  CHECK(root.get("version").is(Node::Type::number));
  CHECK(root.get("version").text() == "3");
  CHECK(root.get("favorite").is(Node::Type::boolean));
  CHECK_FALSE(root.get("favorite").boolean());
  CHECK(root.get("nothing").is(Node::Type::null));
  CHECK_FALSE(root.get("absent").valid());
  CHECK_FALSE(root.get("title").get("x").valid());  // not an object

  Node fields = root.get("fields");
  REQUIRE(fields.is(Node::Type::array));
  CHECK(fields.size() == 3);
  std::vector<std::string> labels;
  for (Node f : fields) labels.emplace_back(f.get("label").text());
  CHECK(labels == std::vector<std::string>{"username", "password", "api key"});
  // Escapes are decoded where the string lies, inside the locked buffer.
  Node password = *(++fields.begin());
  std::string_view value = password.get("value").text();
  CHECK(value == "p\"@ss\\w\xc3\xa9rd");
  CHECK(arena().contains(value.data()));
  CHECK(password.get("entropy").text() == "48.2");
  CHECK((*(++(++fields.begin()))).get("section").get("id").text() == "c3zq");
  std::vector<std::string> keys;
  for (Node m : root) keys.emplace_back(m.key());
  CHECK(keys.front() == "id");
  CHECK(keys.back() == "fields");
  CHECK(root.get("tags").size() == 2);
}

TEST_CASE("in-place parsing refuses what is not exactly one valid document", "[json][in_place]") {
  auto error_of = [](std::string_view text, InPlaceLimits limits = {}) {
    SecureBuffer b = buffer_of(text);
    auto doc = InPlace::parse(b, limits);
    REQUIRE_FALSE(doc);
    return doc.error().message;
  };
  CHECK_THAT(error_of(R"({"a":1} x)"), Catch::Contains("root"));
  CHECK_THAT(error_of(R"({"a":)"), Catch::Contains("at byte"));
  CHECK_THAT(error_of("{\"a\":\"\xff\"}"), Catch::Contains("encoding"));
  CHECK_THAT(error_of(std::string_view("{\"a\":1}\0{\"b\":2}", 15)), Catch::Contains("NUL"));
  CHECK_THAT(error_of("[tru]"), Catch::Contains("at byte"));
  CHECK(error_of("") == "empty document");
  std::string deep(100, '[');
  deep += std::string(100, ']');
  CHECK_THAT(error_of(deep), Catch::Contains("deeper than 32"));
  InPlaceLimits few;
  few.max_nodes = 3;
  CHECK_THAT(error_of("[1,2,3,4]", few), Catch::Contains("more than 3 values"));
  // A document at the limits is fine.
  std::string ok(32, '[');
  ok += std::string(32, ']');
  SecureBuffer b = buffer_of(ok);
  CHECK(InPlace::parse(b));
}

TEST_CASE("a buffer with no spare byte is refused rather than overrun", "[json][in_place]") {
  SecureBuffer b = SecureBuffer::allocate(arena(), 32);
  REQUIRE(b);
  std::string full(b.capacity(), ' ');
  full.front() = '1';
  REQUIRE(b.append(full));
  CHECK_FALSE(InPlace::parse(b));
}

TEST_CASE("error messages never quote the document", "[json][in_place]") {
  SecureBuffer b = buffer_of(R"({"value":"hunter2-secret" oops})");
  auto doc = InPlace::parse(b);
  REQUIRE_FALSE(doc);
  CHECK(doc.error().message.find("hunter2") == std::string::npos);
}
