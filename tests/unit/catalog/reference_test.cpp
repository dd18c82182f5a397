#include <catch2/catch.hpp>

#include <string>

#include "chitty/catalog/reference.hpp"

using chitty::catalog::Glob;
using chitty::catalog::parse_reference;
using chitty::catalog::Reference;

namespace {

Reference ref(const std::string& s) {
  auto r = parse_reference(s);
  INFO(s << ": " << (r ? std::string() : r.error().message));
  REQUIRE(r.has_value());
  return *r;
}

std::string error_of(const std::string& s) {
  auto r = parse_reference(s);
  REQUIRE_FALSE(r.has_value());
  return r.error().message;
}

bool glob_matches(const std::string& pattern, const std::string& reference) {
  auto g = Glob::parse(pattern);
  INFO(pattern << ": " << (g ? std::string() : g.error().message));
  REQUIRE(g.has_value());
  return g->matches(ref(reference));
}

}  // namespace

TEST_CASE("references with and without a section", "[catalog][reference]") {
  Reference a = ref("op://ChittyOS Services/ChittyID Service Token/service_token");
  CHECK(a.vault == "ChittyOS Services");
  CHECK(a.item == "ChittyID Service Token");
  CHECK_FALSE(a.section.has_value());
  CHECK(a.field == "service_token");
  CHECK(a.display() == "op://ChittyOS Services/ChittyID Service Token/service_token");
  Reference b = ref("op://Infra/GitHub App/credentials/private_key");
  REQUIRE(b.section.has_value());
  CHECK(*b.section == "credentials");
  CHECK(b.field == "private_key");
}

TEST_CASE("the canonical form folds case, so spellings of one secret are one key", "[catalog][reference]") {
  CHECK(ref("op://ChittyOS Services/ChittyID/service_token").canonical() ==
        ref("op://chittyos services/CHITTYID/Service_Token").canonical());
  CHECK(ref("op://V/I/F").canonical() == "op://v/i/f");
  CHECK(ref("op://V/I/S/F").canonical() != ref("op://V/I/F").canonical());
}

TEST_CASE("invalid references are refused with the reason", "[catalog][reference]") {
  CHECK(error_of("https://vault/item/field").find("must start with op://") != std::string::npos);
  CHECK(error_of("op://vault/item").find("2 parts given") != std::string::npos);
  CHECK(error_of("op://a/b/c/d/e").find("5 parts given") != std::string::npos);
  CHECK(error_of("op://vault//field").find("part 2 is empty") != std::string::npos);
  CHECK(error_of("op://vault/item/").find("part 3 is empty") != std::string::npos);
  CHECK(error_of("op://vault/../field").find("part 2 is \"..\"") != std::string::npos);
  CHECK(error_of("op://./item/field").find("part 1 is \".\"") != std::string::npos);
  CHECK(error_of(std::string("op://vault/it\x01em/field")).find("control character") != std::string::npos);
  CHECK(error_of("op://vault/item/field?attribute=otp").find("query") != std::string::npos);
  CHECK(error_of("op://vault/*/field").find("wildcards") != std::string::npos);
  CHECK(error_of("op://vault/" + std::string(300, 'i') + "/field").find("longer than 256") != std::string::npos);
  CHECK(error_of("op://" + std::string(1100, 'v')).find("longer than 1024") != std::string::npos);
}

TEST_CASE("globs: * within a part, ** across parts, case-insensitive", "[catalog][glob]") {
  CHECK(glob_matches("op://ChittyOS Services/**", "op://chittyos services/ChittyID/service_token"));
  CHECK(glob_matches("op://ChittyOS Services/**", "op://ChittyOS Services/Item/section/field"));
  CHECK_FALSE(glob_matches("op://ChittyOS Services/**", "op://ChittyOS Integrations/OpenAI API/api_key"));
  CHECK(glob_matches("op://Integrations/*/api_key", "op://integrations/OpenAI API/api_key"));
  CHECK_FALSE(glob_matches("op://Integrations/*/api_key", "op://integrations/OpenAI API/org_id"));
  CHECK_FALSE(glob_matches("op://Integrations/*/api_key", "op://integrations/OpenAI API/sect/api_key"));
  CHECK(glob_matches("op://Integrations/**/api_key", "op://integrations/OpenAI API/sect/api_key"));
  CHECK(glob_matches("op://Integrations/**/api_key", "op://integrations/OpenAI API/api_key"));
  CHECK(glob_matches("op://Chitty*/*Token*/service_token", "op://ChittyOS Services/ChittyID Service Token/service_token"));
  CHECK(glob_matches("op://v/i/f", "op://V/I/F"));  // a plain reference is a glob that matches itself
  CHECK_FALSE(glob_matches("op://v/i/f", "op://v/i/g"));
  CHECK(glob_matches("op://**", "op://any/thing/at/all"));
}

TEST_CASE("invalid globs are refused", "[catalog][glob]") {
  CHECK_FALSE(Glob::parse("vault/**").has_value());
  CHECK_FALSE(Glob::parse("op://vault/a**b/c").has_value());
  CHECK_FALSE(Glob::parse("op://vault/item").has_value());  // too short without **
  CHECK_FALSE(Glob::parse("op://vault//field").has_value());
  CHECK_FALSE(Glob::parse("op://a/b/c/d/e").has_value());
}

TEST_CASE("reference_from_key gives back the parts of id_key() and canonical()", "[catalog][reference]") {
  using chitty::catalog::Reference;
  const Reference refs[] = {
      {"Prod/Infra", "DB 100%", std::string("Section/x"), "pass%2fword"},
      {"abcdefghijklmnopqrstuvwxyz", "bcdefghijklmnopqrstuvwxyz", std::nullopt, "notesPlain"},
  };
  for (const auto& r : refs) {
    auto back = chitty::catalog::reference_from_key(r.id_key());
    REQUIRE(back);
    CHECK(*back == r);
    auto folded = chitty::catalog::reference_from_key(r.canonical());
    REQUIRE(folded);
    CHECK(folded->canonical() == r.canonical());
  }
  CHECK_FALSE(chitty::catalog::reference_from_key("op://v/i%2/f"));
  CHECK_FALSE(chitty::catalog::reference_from_key("op://v/i%41/f"));
  CHECK_FALSE(chitty::catalog::reference_from_key("op://v/f"));
}
