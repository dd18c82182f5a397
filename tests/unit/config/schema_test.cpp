// The generic schema engine (schema.hpp) on a test schema of its own: nested
// table names, arrays of tables, every key kind, diagnostics and defaults.
#include "chitty/config/schema.hpp"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

namespace chitty::config {

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

// Every member starts at a value no schema default uses, so a test can tell
// "assigned" from "left alone".
struct OnePassword {
  std::string url = "unset";
  std::string token_file = "unset";
  std::int64_t retries = -1;
  bool enabled = false;
  std::chrono::milliseconds timeout{-1};
  std::chrono::nanoseconds jitter{-1};
  std::uint64_t max_response = 0;
  std::uint32_t mode = 0;
  std::string flavour = "unset";
  std::vector<std::string> vaults;
  log::Level level = log::Level::error;
};

struct Item {
  std::string name = "unset";
  std::uint32_t weight = 0;
  std::vector<std::string> tags;
};

struct General {
  std::string name = "unset";
  int workers = 0;
};

struct Root {
  General general;
  OnePassword op;
  std::vector<Item> items;
};

constexpr std::array<std::string_view, 2> kFlavours{"connect", "cli"};
constexpr std::array<std::string_view, 4> kLevels{"debug", "info", "warning", "error"};

Schema make_test_schema() {
  Schema s;
  s.tables.push_back(Table{
      "general",
      false,
      "General settings.",
      {
          {"name", Kind::String, "\"default-name\"", 0, 16, {}, "A name.", member(&General::name)},
          {"workers", Kind::Integer, "4", 1, 64, {}, "Worker count.", member(&General::workers)},
      },
      [](void* root) -> void* { return &static_cast<Root*>(root)->general; },
  });
  s.tables.push_back(Table{
      "upstream.onepassword",
      false,
      "1Password Connect.",
      {
          {"url", Kind::String, "\"http://localhost:8080\"", 0, 0, {}, "Connect URL.", member(&OnePassword::url)},
          {"token_file", Kind::Path, "\"/etc/chitty/token\"", 0, 200, {}, "Token.", member(&OnePassword::token_file)},
          {"retries", Kind::Integer, "3", 0, 10, {}, "Retries.", member(&OnePassword::retries)},
          {"enabled", Kind::Boolean, "true", 0, 0, {}, "Enabled.", member(&OnePassword::enabled)},
          {"timeout", Kind::Duration, "\"5s\"", 100, 60'000, {}, "Timeout.", member(&OnePassword::timeout)},
          {"jitter", Kind::Duration, "\"250us\"", 0, 1'000, {}, "Jitter.", member(&OnePassword::jitter)},
          {"max_response", Kind::Size, "\"1MiB\"", 1024, 16 << 20, {}, "Max.", member(&OnePassword::max_response)},
          {"mode", Kind::FileMode, "\"0600\"", 0, 0777, {}, "Mode.", member(&OnePassword::mode)},
          {"flavour", Kind::Enum, "\"connect\"", 0, 0, kFlavours, "Flavour.", member(&OnePassword::flavour)},
          {"vaults", Kind::StringList, "[\"Private\"]", 0, 0, {}, "Vaults.", member(&OnePassword::vaults)},
          {"level", Kind::Enum, "\"info\"", 0, 0, kLevels, "Level.", member(&OnePassword::level)},
      },
      [](void* root) -> void* { return &static_cast<Root*>(root)->op; },
  });
  s.tables.push_back(Table{
      "item",
      true,
      "Items, one [[item]] each.",
      {
          {"name", Kind::String, "\"\"", 0, 16, {}, "Name.", member(&Item::name)},
          {"weight", Kind::Integer, "1", 0, 100, {}, "Weight.", member(&Item::weight)},
          {"tags", Kind::StringList, "[]", 0, 0, {}, "Tags.", member(&Item::tags)},
      },
      [](void* root) -> void* {
        auto& items = static_cast<Root*>(root)->items;
        items.emplace_back();
        return &items.back();
      },
  });
  return s;
}

const Schema& test_schema() {
  static const Schema schema = make_test_schema();
  return schema;
}

constexpr std::string_view kFile = "test.toml";

std::string describe(const std::vector<Diagnostic>& diagnostics) {
  std::string out;
  for (const auto& d : diagnostics) out += d.to_string() + "\n";
  return out;
}

// Loads a document that must be valid.
LoadReport load_ok(Root& root, std::string_view toml) {
  LoadReport report = load_into(test_schema(), &root, toml, kFile);
  INFO(describe(report.diagnostics));
  CHECK(report.diagnostics.empty());
  return report;
}

// Loads a document that must produce exactly one diagnostic.
Diagnostic load_error(std::string_view toml) {
  Root root;
  LoadReport report = load_into(test_schema(), &root, toml, kFile);
  INFO(describe(report.diagnostics));
  REQUIRE(report.diagnostics.size() == 1);
  CHECK(report.diagnostics[0].file == kFile);
  return report.diagnostics[0];
}

const Located* find_location(const LoadReport& report, std::string_view key) {
  for (const auto& l : report.locations) {
    if (l.key == key) return &l;
  }
  return nullptr;
}

// A one-table schema with a single key, for checking apply_defaults.
struct Single {
  std::string text;
  std::int64_t number = 0;
};

Schema single_key_schema(Key key) {
  Schema s;
  s.tables.push_back(Table{"single", false, "", {std::move(key)}, [](void* root) -> void* { return root; }});
  return s;
}

}  // namespace

TEST_CASE("load_into writes every kind of key into the target struct", "[schema]") {
  Root root;
  LoadReport report = load_ok(root, R"([general]
name = "primary"
workers = 8

[upstream.onepassword]
url = "https://connect.example:8443"
token_file = "/run/credentials/chitty/op-token"
retries = 0
enabled = false
timeout = "1m"
jitter = "750us"
max_response = "64KiB"
mode = 0o640
flavour = "cli"
vaults = ["Private", "Team Ops", ""]
level = "warning"
)");
  CHECK(root.general.name == "primary");
  CHECK(root.general.workers == 8);
  const OnePassword& op = root.op;
  CHECK(op.url == "https://connect.example:8443");
  CHECK(op.token_file == "/run/credentials/chitty/op-token");
  CHECK(op.retries == 0);
  CHECK_FALSE(op.enabled);
  CHECK(op.timeout == 1min);
  CHECK(op.jitter == 750us);
  CHECK(op.max_response == 64 * 1024);
  CHECK(op.mode == 0640);
  CHECK(op.flavour == "cli");
  CHECK(op.vaults == std::vector<std::string>{"Private", "Team Ops", ""});
  CHECK(op.level == log::Level::warning);
  CHECK(root.items.empty());

  const Located* url = find_location(report, "upstream.onepassword.url");
  REQUIRE(url != nullptr);
  CHECK(url->line == 6);
  CHECK(url->column == 1);
  const Located* workers = find_location(report, "general.workers");
  REQUIRE(workers != nullptr);
  CHECK(workers->line == 3);
  CHECK(report.locations.size() == 13);
}

TEST_CASE("a nested table can also be written with dotted keys", "[schema]") {
  Root dotted;
  load_ok(dotted, "upstream.onepassword.retries = 7\n");
  CHECK(dotted.op.retries == 7);
  Root under_parent;
  load_ok(under_parent, "[upstream]\nonepassword.flavour = \"cli\"\n");
  CHECK(under_parent.op.flavour == "cli");
}

TEST_CASE("load_into applies the defaults of non-array tables before the document", "[schema][defaults]") {
  // schema.hpp: "The engine. Applies defaults of non-array tables first, then the document."
  Root root;
  load_ok(root, "[upstream.onepassword]\nretries = 9\n");
  CHECK(root.op.retries == 9);
  CHECK(root.op.url == "http://localhost:8080");
  CHECK(root.op.timeout == 5s);
  CHECK(root.general.name == "default-name");
  CHECK(root.general.workers == 4);
}

TEST_CASE("a declared table may have declared sub-tables", "[schema]") {
  // [upstream] for settings shared by every provider, [upstream.onepassword]
  // for one provider: both names are declared tables.
  struct Upstream {
    std::int64_t retries = -1;
    std::string url = "unset";
  };
  Schema s;
  s.tables.push_back(Table{"upstream",
                           false,
                           "",
                           {{"retries", Kind::Integer, "1", 0, 10, {}, "", member(&Upstream::retries)}},
                           [](void* root) -> void* { return root; }});
  s.tables.push_back(Table{"upstream.onepassword",
                           false,
                           "",
                           {{"url", Kind::String, "\"\"", 0, 0, {}, "", member(&Upstream::url)}},
                           [](void* root) -> void* { return root; }});
  Upstream target;
  LoadReport report = load_into(s, &target, "[upstream]\nretries = 2\n\n[upstream.onepassword]\nurl = \"x\"\n", kFile);
  INFO(describe(report.diagnostics));
  CHECK(report.diagnostics.empty());
  CHECK(target.retries == 2);
  CHECK(target.url == "x");
}

TEST_CASE("array tables append one element per [[item]], in order", "[schema][array]") {
  Root root;
  LoadReport report = load_ok(root, R"([[item]]
name = "first"
weight = 10
tags = ["a", "b"]

[[item]]
name = "second"

[[item]]
weight = 100
name = "third"
)");
  REQUIRE(root.items.size() == 3);
  CHECK(root.items[0].name == "first");
  CHECK(root.items[0].weight == 10);
  CHECK(root.items[0].tags == std::vector<std::string>{"a", "b"});
  CHECK(root.items[1].name == "second");
  CHECK(root.items[1].weight == 1);  // each array element gets the defaults of its table's keys
  CHECK(root.items[2].name == "third");
  CHECK(root.items[2].weight == 100);

  const Located* w = find_location(report, "item[2].weight");
  REQUIRE(w != nullptr);
  CHECK(w->line == 10);
  const Located* n = find_location(report, "item[1].name");
  REQUIRE(n != nullptr);
  CHECK(n->line == 7);
  CHECK(find_location(report, "item.weight") == nullptr);
}

TEST_CASE("diagnostics in array elements name the element and point at the line", "[schema][array]") {
  Diagnostic d = load_error(R"([[item]]
name = "ok"

[[item]]
name = "also ok"
weight = "heavy"
)");
  CHECK(d.line == 6);
  CHECK(d.column == 10);
  CHECK_THAT(d.message, StartsWith("item[1].weight: expected an integer, got a string"));

  Diagnostic unknown = load_error("[[item]]\nname = \"x\"\n[[item]]\n[[item]]\nnmae = \"y\"\n");
  CHECK(unknown.line == 5);
  CHECK(unknown.column == 1);
  CHECK_THAT(unknown.message, Contains("unknown key \"item[2].nmae\""));
  CHECK_THAT(unknown.message, Contains("did you mean \"name\"?"));

  Diagnostic range = load_error("[[item]]\nweight = 101\n");
  CHECK(range.line == 2);
  CHECK_THAT(range.message, StartsWith("item[0].weight: 101 is out of range; must be between 0 and 100"));

  Diagnostic list = load_error("[[item]]\n\ntags = [\"a\", 2]\n");
  CHECK(list.line == 3);
  CHECK_THAT(list.message, Contains("item[0].tags: expected an array of strings, but an element is an integer"));
}

TEST_CASE("an unknown section is reported as a section", "[schema][diagnostics]") {
  Diagnostic top = load_error("[general]\nname = \"x\"\n\n[bogus]\nkey = 1\n");
  CHECK(top.line == 4);
  CHECK_THAT(top.message, Contains("unknown section \"bogus\""));

  Diagnostic nested = load_error("[upstream.bogus]\nkey = 1\n");
  CHECK(nested.line == 1);
  CHECK_THAT(nested.message, Contains("unknown section \"upstream.bogus\""));

  Diagnostic typo = load_error("[upstream.onepasword]\nretries = 1\n");
  CHECK_THAT(typo.message, Contains("unknown section \"upstream.onepasword\""));
  CHECK_THAT(typo.message, Contains("did you mean \"upstream.onepassword\"?"));

  Diagnostic array = load_error("[[things]]\nkey = 1\n");
  CHECK_THAT(array.message, Contains("unknown section \"things\""));

  Diagnostic key = load_error("stray = 1\n");
  CHECK_THAT(key.message, Contains("unknown key \"stray\""));

  Diagnostic key_in_prefix = load_error("[upstream]\nstray = 1\n");
  CHECK(key_in_prefix.line == 2);
  CHECK_THAT(key_in_prefix.message, Contains("unknown key \"upstream.stray\""));
}

TEST_CASE("a plain table written as an array of tables is an error", "[schema][diagnostics]") {
  Diagnostic d = load_error("\n[[upstream.onepassword]]\nretries = 1\n");
  CHECK(d.line == 2);
  CHECK_THAT(d.message, Contains("\"upstream.onepassword\" must be a [upstream.onepassword] table, got an array"));

  Diagnostic scalar = load_error("general = \"x\"\n");
  CHECK_THAT(scalar.message, Contains("must be a [general] table, got a string"));
}

TEST_CASE("an array table written as a plain table is an error", "[schema][diagnostics]") {
  Root root;
  LoadReport report = load_into(test_schema(), &root, "# items\n[item]\nname = \"x\"\n", kFile);
  INFO(describe(report.diagnostics));
  REQUIRE(report.diagnostics.size() == 1);
  CHECK(report.diagnostics[0].line == 2);
  CHECK_THAT(report.diagnostics[0].message, Contains("\"item\" must be written as [[item]] tables, got a table"));
  CHECK(root.items.empty());

  Diagnostic inline_array = load_error("item = [1, 2]\n");
  CHECK_THAT(inline_array.message, Contains("must be written as [[item]] tables, got an array"));
}

TEST_CASE("each key kind rejects values of another kind", "[schema][diagnostics]") {
  auto op_error = [](std::string_view line) {
    Diagnostic d = load_error("[upstream.onepassword]\n" + std::string(line) + "\n");
    CHECK(d.line == 2);
    return d.message;
  };
  CHECK_THAT(op_error("url = 1"), Contains("upstream.onepassword.url: expected a string, got an integer"));
  CHECK_THAT(op_error("token_file = \"relative\""), Contains("must be an absolute path"));
  CHECK_THAT(op_error("retries = \"3\""), Contains("expected an integer, got a string"));
  CHECK_THAT(op_error("enabled = \"yes\""), Contains("expected true or false"));
  CHECK_THAT(op_error("timeout = 5"), Contains("expected a duration string"));
  CHECK_THAT(op_error("timeout = \"2m\""), Contains("\"2m\" is out of range; must be between 100ms and 1m"));
  CHECK_THAT(op_error("jitter = \"2s\""), Contains("out of range"));
  CHECK_THAT(op_error("max_response = true"), Contains("expected a size"));
  CHECK_THAT(op_error("max_response = 100"), Contains("100B is out of range"));
  CHECK_THAT(op_error("mode = \"0o600\""), Contains("expected an octal file mode"));
  CHECK_THAT(op_error("mode = 1.5"), Contains("got a float"));
  CHECK_THAT(op_error("flavour = \"desktop\""), Contains("\"desktop\" is not one of: connect, cli"));
  CHECK_THAT(op_error("flavour = [\"cli\"]"), Contains("expected a string, got an array"));
  CHECK_THAT(op_error("vaults = \"Private\""), Contains("expected an array of strings, got a string"));
  CHECK_THAT(op_error("vaults = [[\"nested\"]]"), Contains("but an element is an array"));
}

TEST_CASE("a rejected value leaves the target member alone", "[schema][diagnostics]") {
  Root root;
  LoadReport report =
      load_into(test_schema(), &root, "[upstream.onepassword]\nretries = 11\nflavour = \"cli\"\n", kFile);
  REQUIRE(report.diagnostics.size() == 1);
  CHECK(report.diagnostics[0].line == 2);
  CHECK(root.op.retries != 11);
  CHECK(root.op.flavour == "cli");
}

TEST_CASE("every problem of a document is collected", "[schema][diagnostics]") {
  Root root;
  LoadReport report = load_into(test_schema(), &root, R"([general]
workers = 0
colour = "red"

[upstream.onepassword]
timeout = "1ms"

[[item]]
weight = -1

[nope]
)",
                                kFile);
  INFO(describe(report.diagnostics));
  REQUIRE(report.diagnostics.size() == 5);
  std::vector<std::uint32_t> lines;
  for (const auto& d : report.diagnostics) lines.push_back(d.line);
  std::sort(lines.begin(), lines.end());
  CHECK(lines == std::vector<std::uint32_t>{2, 3, 6, 9, 11});
}

TEST_CASE("a TOML syntax error stops the walk with one diagnostic", "[schema][diagnostics]") {
  Diagnostic d = load_error("[general]\nname = \"x\"\nworkers = = 3\n");
  CHECK(d.line == 3);
  CHECK_THAT(d.message, StartsWith("TOML syntax error: "));
}

TEST_CASE("apply_defaults assigns every default of non-array tables", "[schema][defaults]") {
  Root root;
  auto diagnostics = apply_defaults(test_schema(), &root);
  INFO(describe(diagnostics));
  CHECK(diagnostics.empty());
  CHECK(root.general.name == "default-name");
  CHECK(root.general.workers == 4);
  CHECK(root.op.url == "http://localhost:8080");
  CHECK(root.op.token_file == "/etc/chitty/token");
  CHECK(root.op.retries == 3);
  CHECK(root.op.enabled);
  CHECK(root.op.timeout == 5s);
  CHECK(root.op.jitter == 250us);
  CHECK(root.op.max_response == 1024 * 1024);
  CHECK(root.op.mode == 0600);
  CHECK(root.op.flavour == "connect");
  CHECK(root.op.vaults == std::vector<std::string>{"Private"});
  CHECK(root.op.level == log::Level::info);
  CHECK(root.items.empty());  // array tables have no default elements
}

TEST_CASE("apply_defaults reports a default that fails its own key", "[schema][defaults]") {
  struct Case {
    Key key;
    const char* expected;
  };
  Case cases[] = {
      {{"number", Kind::Integer, "500", 0, 100, {}, "", member(&Single::number)}, "500 is out of range"},
      {{"number", Kind::Integer, "\"5\"", 0, 100, {}, "", member(&Single::number)}, "expected an integer"},
      {{"text", Kind::Path, "\"relative\"", 0, 0, {}, "", member(&Single::text)}, "must be an absolute path"},
      {{"text", Kind::Enum, "\"nope\"", 0, 0, kFlavours, "", member(&Single::text)}, "is not one of"},
      {{"text", Kind::String, "\"toolong\"", 0, 3, {}, "", member(&Single::text)}, "at most 3"},
      {{"text", Kind::String, "\"unterminated", 0, 0, {}, "", member(&Single::text)}, ""},
  };
  for (auto& c : cases) {
    Schema s = single_key_schema(c.key);
    Single target;
    target.text = "untouched";
    target.number = 42;
    auto diagnostics = apply_defaults(s, &target);
    INFO("default " << std::string(c.key.default_toml) << ": " << describe(diagnostics));
    REQUIRE(diagnostics.size() == 1);
    CHECK(diagnostics[0].file == "<default of single." + std::string(c.key.name) + ">");
    CHECK(diagnostics[0].line == 0);
    CHECK_FALSE(diagnostics[0].message.empty());
    CHECK_THAT(diagnostics[0].message, Contains(c.expected));
    CHECK(target.text == "untouched");
    CHECK(target.number == 42);
  }
}

TEST_CASE("apply_defaults keeps going after a bad default", "[schema][defaults]") {
  Schema s;
  s.tables.push_back(Table{"single",
                           false,
                           "",
                           {
                               {"number", Kind::Integer, "-1", 0, 10, {}, "", member(&Single::number)},
                               {"text", Kind::String, "\"fine\"", 0, 0, {}, "", member(&Single::text)},
                           },
                           [](void* root) -> void* { return root; }});
  Single target;
  auto diagnostics = apply_defaults(s, &target);
  REQUIRE(diagnostics.size() == 1);
  CHECK(diagnostics[0].file == "<default of single.number>");
  CHECK(target.text == "fine");
}

TEST_CASE("member() converts values into the member's type", "[schema]") {
  OnePassword op;
  member(&OnePassword::timeout).assign(&op, Value(std::chrono::nanoseconds(1'500'000'000)));
  CHECK(op.timeout == 1500ms);
  member(&OnePassword::jitter).assign(&op, Value(std::chrono::nanoseconds(7)));
  CHECK(op.jitter == 7ns);
  member(&OnePassword::mode).assign(&op, Value(std::uint32_t{0640}));
  CHECK(op.mode == 0640);
  member(&OnePassword::max_response).assign(&op, Value(std::uint64_t{1} << 40));
  CHECK(op.max_response == std::uint64_t{1} << 40);
  member(&OnePassword::retries).assign(&op, Value(std::int64_t{-3}));
  CHECK(op.retries == -3);
  member(&OnePassword::level).assign(&op, Value(std::string("debug")));
  CHECK(op.level == log::Level::debug);
  member(&OnePassword::vaults).assign(&op, Value(std::vector<std::string>{"x", "y"}));
  CHECK(op.vaults == std::vector<std::string>{"x", "y"});
  member(&OnePassword::enabled).assign(&op, Value(true));
  CHECK(op.enabled);
  General g;
  member(&General::workers).assign(&g, Value(std::int64_t{12}));
  CHECK(g.workers == 12);
}

TEST_CASE("kind_name names every kind for people", "[schema]") {
  CHECK(kind_name(Kind::String) == "string");
  CHECK(kind_name(Kind::Path) == "absolute path");
  CHECK(kind_name(Kind::Integer) == "integer");
  CHECK(kind_name(Kind::Boolean) == "boolean");
  CHECK(kind_name(Kind::Duration) == "duration");
  CHECK(kind_name(Kind::Size) == "size");
  CHECK(kind_name(Kind::FileMode) == "octal file mode");
  CHECK_FALSE(kind_name(Kind::Enum).empty());
  CHECK(kind_name(Kind::StringList) == "array of strings");
}

}  // namespace chitty::config
