// Env files and inject templates: what they accept, and a precise error for
// what they do not.
#include <catch2/catch.hpp>

#include <map>
#include <string>

#include "chitty/client/env_file.hpp"
#include "chitty/client/template.hpp"

using namespace chitty::client;

namespace {

Lookup env(std::map<std::string, std::string> vars) {
  return [vars](std::string_view name) -> std::optional<std::string> {
    auto it = vars.find(std::string(name));
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

}  // namespace

TEST_CASE("env files: NAME=VALUE, export, comments, quotes", "[client][env]") {
  auto e = parse_env_file(
      "# a comment\n"
      "\n"
      "PLAIN=value\n"
      "export EXPORTED=yes\n"
      "SPACED = with spaces   # trailing comment\n"
      "HASH=a#b\n"
      "SINGLE='op://Vault/Item/field # not a comment'\n"
      "DOUBLE=\"line\\nnext \\\"q\\\" \\$HOME\"  # comment\n"
      "REF=op://ChittyOS Services/ChittyID Service Token/service_token\r\n"
      "EMPTY=\n",
      "test.env");
  REQUIRE(e);
  REQUIRE(e->size() == 8);
  CHECK((*e)[0].name == "PLAIN");
  CHECK((*e)[0].value == "value");
  CHECK((*e)[1].name == "EXPORTED");
  CHECK((*e)[2].value == "with spaces");
  CHECK((*e)[3].value == "a#b");
  CHECK((*e)[4].value == "op://Vault/Item/field # not a comment");
  CHECK((*e)[5].value == "line\nnext \"q\" $HOME");
  CHECK((*e)[6].value == "op://ChittyOS Services/ChittyID Service Token/service_token");
  CHECK((*e)[6].line == 9);
  CHECK((*e)[7].value.empty());
  CHECK(is_secret_reference((*e)[6].value));
  CHECK_FALSE(is_secret_reference((*e)[0].value));
}

TEST_CASE("env files: errors name the file and line", "[client][env]") {
  auto check = [](std::string text, std::string expect) {
    auto e = parse_env_file(text, "f.env");
    REQUIRE_FALSE(e);
    CHECK(e.error().message == expect);
  };
  check("A=1\nNOEQUALS\n", "f.env:2: expected NAME=VALUE");
  check("1BAD=x\n", "f.env:1: \"1BAD\" is not a variable name");
  check("A-B=x\n", "f.env:1: \"A-B\" is not a variable name");
  check("A='open\n", "f.env:1: a single quote is not closed (values span one line)");
  check("A=\"open\n", "f.env:1: a double quote is not closed (values span one line)");
  check("A=\"x\\q\"\n", "f.env:1: unknown escape \\q in a double-quoted value");
  check("A=\"x\" y\n", "f.env:1: unexpected text after the quoted value");
}

TEST_CASE("templates: references, literal text, quoted strings", "[client][template]") {
  auto p = parse_template("a {{ op://V/I/f }} b {{op://V/I/s/g}}\n{{ \"{{ not a ref }}\" }} }} op://bare/x/y", env({}));
  REQUIRE(p);
  REQUIRE(p->size() == 5);
  CHECK((*p)[0].kind == Piece::Kind::text);
  CHECK((*p)[0].text == "a ");
  CHECK((*p)[1].kind == Piece::Kind::reference);
  CHECK((*p)[1].text == "op://V/I/f");
  CHECK((*p)[1].line == 1);
  CHECK((*p)[1].column == 6);
  CHECK((*p)[2].text == " b ");
  CHECK((*p)[3].text == "op://V/I/s/g");
  CHECK((*p)[4].text == "\n{{ not a ref }} }} op://bare/x/y");
}

TEST_CASE("templates: references with spaces, escapes in quoted strings", "[client][template]") {
  auto p = parse_template("{{ op://ChittyOS Services/ChittyID Service Token/service_token }}|{{ \"say \\\"hi\\\" \\\\ ok\" }}",
                          env({}));
  REQUIRE(p);
  REQUIRE(p->size() == 2);
  CHECK((*p)[0].text == "op://ChittyOS Services/ChittyID Service Token/service_token");
  CHECK((*p)[1].text == "|say \"hi\" \\ ok");
}

TEST_CASE("templates: variables inside references", "[client][template]") {
  auto p = parse_template("{{ op://$VAULT/${ITEM}/${FIELD:-password} }}", env({{"VAULT", "prod"}, {"ITEM", "db"}}));
  REQUIRE(p);
  CHECK((*p)[0].text == "op://prod/db/password");
  auto q = parse_template("{{ op://${VAULT:-dev}/db/x }}", env({{"VAULT", ""}}));
  REQUIRE(q);
  CHECK((*q)[0].text == "op://dev/db/x");
  auto unset = parse_template("x\n  {{ op://$NOPE/db/x }}", env({}));
  REQUIRE_FALSE(unset);
  CHECK(unset.error().message == "2:6: the variable NOPE is not set (give ${NOPE:-default})");
  // Outside references nothing is expanded.
  auto text = parse_template("$HOME ${X}", env({{"HOME", "/root"}}));
  REQUIRE(text);
  CHECK((*text)[0].text == "$HOME ${X}");
}

TEST_CASE("templates: errors give line and column", "[client][template]") {
  auto check = [](std::string text, std::string expect) {
    auto p = parse_template(text, env({}));
    REQUIRE_FALSE(p);
    CHECK(p.error().message == expect);
  };
  check("ok\nab {{ nope }}", "2:7: expected an op:// reference or a quoted string after \"{{\" (write a literal \"{{\" as {{ \"{{\" }})");
  check("{{ op://V/I/f", "1:1: \"{{\" is not closed by \"}}\" on the same line");
  check("{{ op://V/I/f\n}}", "1:1: \"{{\" is not closed by \"}}\" on the same line");
  auto bad_ref = parse_template("{{ op://V }}", env({}));
  REQUIRE_FALSE(bad_ref);
  CHECK(bad_ref.error().message.rfind("1:4: invalid reference: reference must be op://VAULT/ITEM/FIELD", 0) == 0);
  check("{{ \"open", "1:1: the quoted string is not closed");
  check("{{ \"a\\n\" }}", "1:6: in a quoted string only \\\" and \\\\ are escapes");
  check("{{ \"a\" x }}", "1:8: expected \"}}\" after the quoted string");
}
