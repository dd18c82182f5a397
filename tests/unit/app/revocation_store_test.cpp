#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "chitty/app/revocation_store.hpp"
#include "temp_dir.hpp"

using chitty::app::RevocationStore;
using chitty::policy::Revocation;
using chitty::policy::Revocations;
using chitty::testing::TempDir;

namespace {

struct Keys {
  std::unique_ptr<chitty::secure::Arena> arena;
  std::unique_ptr<chitty::secure::MacKey> key;
  std::unique_ptr<chitty::secure::MacKey> other;
  Keys() {
    chitty::secure::ArenaOptions o;
    o.capacity = 64 * 1024;
    arena = std::move(*chitty::secure::Arena::create(o));
    key = std::move(*chitty::secure::MacKey::from_bytes(*arena, std::string(32, 'k')));
    other = std::move(*chitty::secure::MacKey::from_bytes(*arena, std::string(32, 'o')));
  }
};

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

Revocations sample() {
  Revocations r;
  Revocation a;
  a.kind = Revocation::Kind::ref;
  a.ref = chitty::catalog::Reference{"Vault", "Prod/DB", std::string("Sec"), "field"};  // a '/' in a title
  a.target = a.ref->display();
  a.forms = {"op://vault/prod%2fdb/sec/field", "op://vid/iid/section_x/notesplain"};
  a.types = {"db_password"};
  a.key = "op://vid/iid/Section_x/notesPlain";
  a.resolved = true;
  a.reason = "leaked in a \"log\"\n";
  a.at = chitty::WallTime(std::chrono::milliseconds(1764700000123));
  a.by = "uid 0 pid 1 exe /usr/bin/curl";
  r.add(a);
  Revocation b;
  b.kind = Revocation::Kind::all;
  b.target = "all";
  r.add(b);
  return r;
}

}  // namespace

TEST_CASE("revocations are saved atomically, sealed, and read back as they were", "[app][revocations]") {
  TempDir dir;
  Keys k;
  RevocationStore store(dir.path(), *k.key);
  auto none = store.load(false, false);
  REQUIRE(none);
  CHECK(none->revocations.empty());  // no file yet, none expected: none in force
  CHECK_FALSE(none->existed);

  Revocations r = sample();
  REQUIRE(store.save(r));
  struct stat st {};
  REQUIRE(stat(store.path().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK_THAT(read_file(store.path()), Catch::Contains("\"mac\":\""));

  auto back = store.load(true, false);
  REQUIRE(back);
  REQUIRE(back->revocations.list().size() == 2);
  const Revocation& x = back->revocations.list()[0];
  const Revocation& a = r.list()[0];
  CHECK(x.kind == Revocation::Kind::ref);
  REQUIRE(x.ref.has_value());
  CHECK(*x.ref == *a.ref);  // parts, not text: "Prod/DB" stays one part
  CHECK(x.target == a.target);
  CHECK(x.forms == a.forms);
  CHECK(x.types == a.types);
  CHECK(x.key == a.key);
  CHECK(x.resolved);
  CHECK(x.reason == a.reason);
  CHECK(x.at == a.at);
  CHECK(x.by == a.by);
  CHECK(back->revocations.list()[1].kind == Revocation::Kind::all);
}

TEST_CASE("an altered, unsealed, resealed-with-another-key or deleted revocations file stops the start",
          "[app][revocations]") {
  TempDir dir;
  Keys k;
  RevocationStore store(dir.path(), *k.key);
  REQUIRE(store.save(sample()));
  std::string sealed = read_file(store.path());

  SECTION("one byte changed") {
    std::string edited = sealed;
    edited.replace(edited.find("leaked"), 6, "LEAKED");
    dir.write("revocations.json", edited);
    auto r = store.load(true, false);
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error().message, Catch::Contains("MAC does not match") && Catch::Contains("--accept-revocations"));
  }
  SECTION("emptied by hand: a valid file without the MAC") {
    dir.write("revocations.json", R"({"version":2,"revocations":[]})");
    auto r = store.load(true, false);
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error().message, Catch::Contains("no MAC"));
  }
  SECTION("sealed under another key") {
    RevocationStore forger(dir.path(), *k.other);
    REQUIRE(forger.save(Revocations{}));
    auto r = store.load(true, false);
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error().message, Catch::Contains("MAC does not match"));
  }
  SECTION("deleted, when the state directory has been used") {
    REQUIRE(::unlink(store.path().c_str()) == 0);
    auto r = store.load(true, false);
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error().message, Catch::Contains("missing") && Catch::Contains("--accept-revocations"));
    // The operator's way out: an empty set, sealed.
    auto accepted = store.load(true, true);
    REQUIRE(accepted);
    CHECK(accepted->revocations.empty());
    CHECK(accepted->accepted);
    CHECK(store.load(true, false));
  }
  SECTION("--accept-revocations takes an edited file as it is and seals it") {
    std::string edited = sealed;
    edited.replace(edited.find("leaked"), 6, "LEAKED");
    dir.write("revocations.json", edited);
    auto accepted = store.load(true, true);
    REQUIRE(accepted);
    REQUIRE(accepted->revocations.list().size() == 2);
    CHECK_THAT(accepted->revocations.list()[0].reason, Catch::StartsWith("LEAKED"));
    auto again = store.load(true, false);
    REQUIRE(again);
    CHECK(again->revocations.list().size() == 2);
  }
}

TEST_CASE("a damaged revocations file is an error, not an empty list", "[app][revocations]") {
  TempDir dir;
  Keys k;
  RevocationStore store(dir.path(), *k.key);
  for (const char* text :
       {"{", "[]", R"({"version":2,"revocations":{}})", R"({"version":2,"revocations":[{"kind":"nope"}]})",
        R"({"version":2,"revocations":[{"kind":"ref","forms":[]}]})", R"({"version":2,"revocations":[{"target":"x"}]})",
        R"({"version":1,"revocations":[]})"}) {
    INFO(text);
    dir.write("revocations.json", text);
    // Damage is reported even when the operator accepts the file as it is.
    auto r = store.load(true, true);
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error().message, Catch::Contains("damaged"));
  }
}
