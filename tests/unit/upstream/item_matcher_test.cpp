// The item matcher (src/upstream/item_matcher.hpp): which section and field
// of a Connect item a reference names, driven by JSON strings parsed in
// place, exactly as the provider parses Connect's answers.
#include "item_matcher.hpp"

#include <memory>
#include <string>
#include <string_view>

#include <catch2/catch.hpp>

#include "chitty/json/in_place.hpp"
#include "chitty/secure/arena.hpp"

using chitty::catalog::Reference;
using chitty::json::InPlace;
using chitty::json::Node;
using chitty::secure::Arena;
using chitty::secure::ArenaOptions;
using chitty::secure::SecureBuffer;
using namespace chitty::upstream;

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

// A parsed document and the locked buffer it lives in.
struct Doc {
  explicit Doc(std::string_view text) : buffer(SecureBuffer::allocate(arena(), text.size() + 1)) {
    REQUIRE(buffer);
    REQUIRE(buffer.append(text));
    auto parsed = InPlace::parse(buffer);
    REQUIRE(parsed);
    doc = std::make_unique<InPlace>(std::move(*parsed));
  }
  Node root() const { return doc->root(); }
  SecureBuffer buffer;
  std::unique_ptr<InPlace> doc;
};

Reference ref3(std::string item, std::string field) { return Reference{"Infra", std::move(item), std::nullopt, std::move(field)}; }
Reference ref4(std::string item, std::string section, std::string field) {
  return Reference{"Infra", std::move(item), std::move(section), std::move(field)};
}

constexpr std::string_view kVault = "k2vcm5wq8dt3hf7ry4ne6pzb1a";
constexpr std::string_view kItemId = "x4jdl2kp3aq7mb5hz6tn9rcw2e";

// An item with top-level fields, two sections (one labelled with a '/'),
// a label shared by a top-level and a sectioned field, a field only in a
// section, and fields without an ID, a value or a string value.
constexpr std::string_view kItem = R"({
  "id": "x4jdl2kp3aq7mb5hz6tn9rcw2e", "title": "Prod/DB",
  "sections": [
    {"id": "add more"},
    {"id": "Section_db7", "label": "Database"},
    {"id": "sec2", "label": "Old/Legacy"},
    {"id": "sec3", "label": ""}
  ],
  "fields": [
    {"id": "username", "label": "username", "value": "app"},
    {"id": "password", "label": "password", "value": "top-secret"},
    {"id": "pw_main", "label": "password", "section": {"id": "Section_db7"}, "value": "db-secret"},
    {"id": "h7s", "label": "API key", "section": {"id": "Section_db7"}, "value": "abc"},
    {"id": "leg1", "label": "legacy token", "section": {"id": "sec2"}, "value": "old"},
    {"id": "hid", "label": "hidden", "section": {"id": "sec3"}, "value": "h"},
    {"label": "no id here", "value": "by label"},
    {"id": "notesPlain", "label": "a/b notes", "value": ""},
    {"id": "empty", "label": "nothing"},
    {"id": "num", "label": "count", "value": 42},
    {"id": "loose", "label": "loose", "section": {"id": 7}, "value": "top after all"}
  ]
})";

MatchError error_of(const MatchResult<FieldMatch>& r) {
  REQUIRE_FALSE(r);
  return r.error().kind;
}

std::string value_of(Node item, const Reference& ref) {
  auto m = match_field(item, ref);
  REQUIRE(m);
  auto v = field_value(*m, ref);
  REQUIRE(v);
  return std::string(*v);  // test data, not a secret
}

}  // namespace

TEST_CASE("fields are found by label or ID, in any case", "[upstream][matcher]") {
  Doc d(kItem);
  CHECK(value_of(d.root(), ref3("Prod/DB", "username")) == "app");
  CHECK(value_of(d.root(), ref3("Prod/DB", "USERNAME")) == "app");
  CHECK(value_of(d.root(), ref3("Prod/DB", "PassWord")) == "top-secret");
  CHECK(value_of(d.root(), ref3("Prod/DB", "notesplain")) == "");  // by ID, case folded; an empty value is a value
  CHECK(value_of(d.root(), ref3("Prod/DB", "a/B Notes")) == "");   // a label holding '/'

  auto m = match_field(d.root(), ref3("Prod/DB", "username"));
  REQUIRE(m);
  CHECK(m->field_id == "username");
  CHECK(m->section_id.empty());
}

TEST_CASE("a field without an ID is matched and known by its label", "[upstream][matcher]") {
  Doc d(kItem);
  auto m = match_field(d.root(), ref3("Prod/DB", "NO ID HERE"));
  REQUIRE(m);
  CHECK(m->field_id == "no id here");
  CHECK(value_of(d.root(), ref3("Prod/DB", "no id here")) == "by label");
}

TEST_CASE("sections are found by label or ID, in any case; the field within it", "[upstream][matcher]") {
  Doc d(kItem);
  for (const char* section : {"Database", "database", "Section_db7", "SECTION_DB7"}) {
    INFO(section);
    auto m = match_field(d.root(), ref4("Prod/DB", section, "password"));
    REQUIRE(m);
    CHECK(m->section_id == "Section_db7");  // verbatim, as Connect spells it
    CHECK(m->field_id == "pw_main");
    CHECK(value_of(d.root(), ref4("Prod/DB", section, "password")) == "db-secret");
  }
  CHECK(value_of(d.root(), ref4("Prod/DB", "Database", "pw_MAIN")) == "db-secret");
  CHECK(value_of(d.root(), ref4("Prod/DB", "old/legacy", "Legacy Token")) == "old");  // a section label with '/'
}

TEST_CASE("three parts reach top-level fields only; four parts only that section", "[upstream][matcher]") {
  Doc d(kItem);
  // "password" is both top-level and in Database: no ambiguity either way.
  CHECK(value_of(d.root(), ref3("Prod/DB", "password")) == "top-secret");
  CHECK(value_of(d.root(), ref4("Prod/DB", "Database", "password")) == "db-secret");

  // A top-level field is not in a section.
  auto m = match_field(d.root(), ref4("Prod/DB", "Database", "username"));
  REQUIRE_FALSE(m);
  CHECK(m.error().kind == MatchError::no_field);
  CHECK(m.error().unknown());
  CHECK(m.error().message == "item \"Prod/DB\" has no field \"username\" in section \"Database\"");

  // A field with a section ID that is not a string counts as top-level.
  CHECK(value_of(d.root(), ref3("Prod/DB", "loose")) == "top after all");
}

TEST_CASE("a field only inside a section, asked for with three parts, names its four-part form",
          "[upstream][matcher]") {
  Doc d(kItem);
  auto m = match_field(d.root(), ref3("Prod/DB", "api key"));
  REQUIRE_FALSE(m);
  CHECK(m.error().kind == MatchError::field_in_section);
  CHECK(m.error().unknown());
  CHECK(m.error().message ==
        "item \"Prod/DB\" has no top-level field \"api key\"; a three-part reference does not reach into sections. "
        "It is in a section: use op://Infra/Prod%2fDB/Database/api key (section Section_db7)");

  // A section label holding '/' cannot be spelled in a reference: its ID is named.
  m = match_field(d.root(), ref3("Prod/DB", "legacy token"));
  REQUIRE_FALSE(m);
  CHECK(m.error().message.ends_with("use op://Infra/Prod%2fDB/sec2/legacy token (section sec2)"));

  // An empty label is no label.
  m = match_field(d.root(), ref3("Prod/DB", "hidden"));
  REQUIRE_FALSE(m);
  CHECK(m.error().message.ends_with("use op://Infra/Prod%2fDB/sec3/hidden (section sec3)"));
}

TEST_CASE("unknown sections and fields are not found", "[upstream][matcher]") {
  Doc d(kItem);
  auto m = match_field(d.root(), ref4("Prod/DB", "Nope", "password"));
  REQUIRE_FALSE(m);
  CHECK(m.error().kind == MatchError::no_section);
  CHECK(m.error().unknown());
  CHECK(m.error().message == "item \"Prod/DB\" has no section \"Nope\"");

  // "add more" has no label: found by ID only.
  CHECK_FALSE(match_field(d.root(), ref4("Prod/DB", "add", "x")));
  m = match_field(d.root(), ref4("Prod/DB", "ADD MORE", "x"));
  REQUIRE_FALSE(m);
  CHECK(m.error().kind == MatchError::no_field);

  m = match_field(d.root(), ref3("Prod/DB", "pin"));
  REQUIRE_FALSE(m);
  CHECK(m.error().kind == MatchError::no_field);
  CHECK(m.error().message == "item \"Prod/DB\" has no field \"pin\"");

  // An item without sections or fields at all.
  Doc bare(R"({"id": "x4jdl2kp3aq7mb5hz6tn9rcw2e", "title": "bare"})");
  CHECK(error_of(match_field(bare.root(), ref3("bare", "password"))) == MatchError::no_field);
  CHECK(error_of(match_field(bare.root(), ref4("bare", "s", "password"))) == MatchError::no_section);
}

TEST_CASE("ambiguous labels are errors that list the candidates' IDs", "[upstream][matcher]") {
  Doc d(R"({
    "title": "twins",
    "sections": [{"id": "s1", "label": "Dup"}, {"id": "s2", "label": "dup"}, {"id": "s3", "label": "One"}],
    "fields": [
      {"id": "f1", "label": "Token", "value": "a"},
      {"id": "f2", "label": "token", "value": "b"},
      {"id": "f3", "label": "key", "section": {"id": "s3"}, "value": "c"},
      {"id": "f4", "label": "KEY", "section": {"id": "s3"}, "value": "d"},
      {"id": "f5", "label": "x", "section": {"id": "s1"}, "value": "e"},
      {"id": "f6", "label": "x", "section": {"id": "s2"}, "value": "f"},
      {"id": "s1", "label": "other", "value": "g"}
    ]})");
  auto m = match_field(d.root(), ref3("twins", "TOKEN"));
  REQUIRE_FALSE(m);
  CHECK(m.error().kind == MatchError::ambiguous_field);
  CHECK_FALSE(m.error().unknown());
  CHECK(m.error().message ==
        "2 fields of item \"twins\" match \"TOKEN\" (f1, f2); name the section, or the field by its ID");
  CHECK(value_of(d.root(), ref3("twins", "f2")) == "b");  // the way out: the ID

  m = match_field(d.root(), ref4("twins", "one", "key"));
  REQUIRE_FALSE(m);
  CHECK(m.error().message == "2 fields of item \"twins\" match \"key\" (s3/f3, s3/f4); name the section, or the field by its ID");

  m = match_field(d.root(), ref4("twins", "DUP", "x"));
  REQUIRE_FALSE(m);
  CHECK(m.error().kind == MatchError::ambiguous_section);
  CHECK_FALSE(m.error().unknown());
  CHECK(m.error().message == "2 sections of item \"twins\" match \"DUP\" (s1, s2); name the section by its ID");
  CHECK(value_of(d.root(), ref4("twins", "s2", "x")) == "f");

  // Three parts: the sectioned "x" fields are not candidates at all.
  CHECK(error_of(match_field(d.root(), ref3("twins", "x"))) == MatchError::field_in_section);
  // A field whose ID is also a section's ID is just a field.
  CHECK(value_of(d.root(), ref3("twins", "S1")) == "g");
}

TEST_CASE("a field without a string value has no value", "[upstream][matcher]") {
  Doc d(kItem);
  for (const char* field : {"nothing", "count"}) {
    INFO(field);
    auto m = match_field(d.root(), ref3("Prod/DB", field));
    REQUIRE(m);
    auto v = field_value(*m, ref3("Prod/DB", field));
    REQUIRE_FALSE(v);
    CHECK(v.error().kind == MatchError::no_value);
    CHECK_FALSE(v.error().unknown());
    CHECK(v.error().message == "field \"" + std::string(field) + "\" of item \"Prod/DB\" has no value");
  }
}

TEST_CASE("the value is a view into the locked answer, not a copy", "[upstream][matcher]") {
  Doc d(kItem);
  auto m = match_field(d.root(), ref3("Prod/DB", "password"));
  REQUIRE(m);
  auto v = field_value(*m, ref3("Prod/DB", "password"));
  REQUIRE(v);
  const char* begin = d.buffer.data();
  CHECK(v->data() >= begin);
  CHECK(v->data() + v->size() <= begin + d.buffer.size());
}

TEST_CASE("the all-IDs and all-names forms are built from parts", "[upstream][matcher]") {
  Doc d(kItem);
  SECTION("a sectioned field: names by label, IDs verbatim") {
    auto m = match_field(d.root(), ref4("Prod/DB", "database", "API KEY"));
    REQUIRE(m);
    Resolution r = resolution(d.root(), *m, kVault, kItemId, "Infra");
    CHECK(r.ids == Reference{std::string(kVault), std::string(kItemId), "Section_db7", "h7s"});
    CHECK(r.names == Reference{"Infra", "Prod/DB", "Database", "API key"});
    CHECK(r.key == "op://k2vcm5wq8dt3hf7ry4ne6pzb1a/x4jdl2kp3aq7mb5hz6tn9rcw2e/Section_db7/h7s");
    CHECK(ids_of(*m, kVault, kItemId) == r.ids);
    // A title holding '/' stays one part.
    CHECK(r.names.canonical() == "op://infra/prod%2fdb/database/api key");
  }
  SECTION("a top-level field has no section in either form") {
    auto m = match_field(d.root(), ref3("Prod/DB", "a/b NOTES"));
    REQUIRE(m);
    Resolution r = resolution(d.root(), *m, kVault, kItemId, "Infra");
    CHECK(r.ids == Reference{std::string(kVault), std::string(kItemId), std::nullopt, "notesPlain"});
    CHECK(r.names == Reference{"Infra", "Prod/DB", std::nullopt, "a/b notes"});
    CHECK(r.key == "op://k2vcm5wq8dt3hf7ry4ne6pzb1a/x4jdl2kp3aq7mb5hz6tn9rcw2e/notesPlain");
  }
  SECTION("a section label with '/' is its name here; an empty label falls back to the ID") {
    auto m = match_field(d.root(), ref4("Prod/DB", "sec2", "leg1"));
    REQUIRE(m);
    CHECK(resolution(d.root(), *m, kVault, kItemId, "Infra").names.section == "Old/Legacy");
    m = match_field(d.root(), ref4("Prod/DB", "sec3", "hidden"));
    REQUIRE(m);
    CHECK(resolution(d.root(), *m, kVault, kItemId, "Infra").names.section == "sec3");
  }
  SECTION("without a title or labels, the IDs stand in") {
    Doc bare(R"({"title": "", "sections": [{"id": "s9"}],
                 "fields": [{"id": "f9", "section": {"id": "s9"}, "value": "v"},
                            {"id": "f8", "label": "", "value": "w"}]})");
    auto m = match_field(bare.root(), ref4("x", "S9", "F9"));
    REQUIRE(m);
    Resolution r = resolution(bare.root(), *m, kVault, kItemId, kVault);
    CHECK(r.names == Reference{std::string(kVault), std::string(kItemId), "s9", "f9"});
    m = match_field(bare.root(), ref3("x", "f8"));
    REQUIRE(m);
    CHECK(resolution(bare.root(), *m, kVault, kItemId, "V").names.field == "f8");
  }
}

TEST_CASE("vaults and items are picked from list answers by name, in any case", "[upstream][matcher]") {
  Doc vaults(R"([
    {"id": "v1", "name": "Infra"},
    {"id": "v2", "name": "infra"},
    {"id": "v3", "name": "Other"},
    {"name": "Infra"},
    {"id": 5, "name": "Infra"},
    {"id": "v6", "name": null}
  ])");
  CHECK(ids_named(vaults.root(), "name", "INFRA") == std::vector<std::string>{"v1", "v2"});
  CHECK(ids_named(vaults.root(), "name", "other") == std::vector<std::string>{"v3"});
  CHECK(ids_named(vaults.root(), "name", "none").empty());

  Doc items(R"([{"id": "i1", "title": "Prod/DB"}, {"id": "i2", "title": "Prod"}, {"id": "i3", "name": "Prod/DB"}])");
  CHECK(ids_named(items.root(), "title", "prod/db") == std::vector<std::string>{"i1"});
  CHECK(ids_named(items.root(), "title", "Prod") == std::vector<std::string>{"i2"});
}
