#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

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
  a.checked_types = {"db_password", "openai_api_key"};
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
  auto none = store.load(std::nullopt, false);
  REQUIRE(none);
  CHECK(none->revocations.empty());  // no file yet, none expected: none in force
  CHECK_FALSE(none->existed);

  Revocations r = sample();
  auto gen = store.save(r);
  REQUIRE(gen);
  CHECK(*gen == 1);
  struct stat st {};
  REQUIRE(stat(store.path().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK_THAT(read_file(store.path()), Catch::Contains("\"mac\":\""));

  RevocationStore again(dir.path(), *k.key);
  auto back = again.load(std::uint64_t{1}, false);
  REQUIRE(back);
  CHECK(back->generation == 1);
  REQUIRE(back->revocations.list().size() == 2);
  const Revocation& x = back->revocations.list()[0];
  const Revocation& a = r.list()[0];
  CHECK(x.kind == Revocation::Kind::ref);
  REQUIRE(x.ref.has_value());
  CHECK(*x.ref == *a.ref);  // parts, not text: "Prod/DB" stays one part
  CHECK(x.target == a.target);
  CHECK(x.forms == a.forms);
  CHECK(x.types == a.types);
  CHECK(x.checked_types == a.checked_types);
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
  const std::optional<std::uint64_t> recorded = 1;  // what the audit trail says

  SECTION("one byte changed") {
    std::string edited = sealed;
    edited.replace(edited.find("leaked"), 6, "LEAKED");
    dir.write("revocations.json", edited);
    auto r = store.load(recorded, false);
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error().message, Catch::Contains("MAC does not match") && Catch::Contains("--accept-revocations"));
  }
  SECTION("emptied by hand: a valid file without the MAC") {
    dir.write("revocations.json", R"({"version":2,"revocations":[]})");
    auto r = store.load(recorded, false);
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error().message, Catch::Contains("no MAC"));
  }
  SECTION("sealed under another key") {
    RevocationStore forger(dir.path(), *k.other);
    REQUIRE(forger.save(Revocations{}));
    auto r = store.load(recorded, false);
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error().message, Catch::Contains("MAC does not match"));
  }
  SECTION("deleted, when the state directory has been used") {
    REQUIRE(::unlink(store.path().c_str()) == 0);
    auto r = store.load(recorded, false);
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error().message, Catch::Contains("missing") && Catch::Contains("--accept-revocations"));
    CHECK(store.load(std::nullopt, false));  // nothing recorded (a first start): none in force
    // The operator's way out: an empty set, sealed.
    auto accepted = store.load(recorded, true);
    REQUIRE(accepted);
    CHECK(accepted->revocations.empty());
    CHECK(accepted->accepted);
    CHECK(store.load(recorded, false));
  }
  SECTION("an older sealed copy put back (a rollback)") {
    // Two more saves: generation 3 is what the audit trail records now.
    REQUIRE(store.save(sample()));
    REQUIRE(store.save(Revocations{}));
    dir.write("revocations.json", sealed, 0600);  // generation 1, sealed with the right key
    auto r = store.load(std::uint64_t{3}, false);
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error().message, Catch::Contains("older copy") && Catch::Contains("generation 1") &&
                                      Catch::Contains("generation 3"));
    auto accepted = store.load(std::uint64_t{3}, true);
    REQUIRE(accepted);
    CHECK(accepted->generation == 4);  // past what was recorded
  }
  SECTION("a version 1 file of an earlier agent: refused, then taken over with --accept-revocations") {
    dir.write("revocations.json",
              R"({"version":1,"revocations":[{"kind":"ref","keys":["op://vault/item/field","op://vid/iid/Fid"],)"
              R"("shown":"op://Vault/Item/field","reason":"old","at":"2026-12-01T00:00:00.000Z","by":"uid 0"}]})" "\n",
              0600);
    auto r = store.load(std::nullopt, false);
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error().message, Catch::Contains("no MAC") && Catch::Contains("earlier version"));
    auto accepted = store.load(std::nullopt, true);
    REQUIRE(accepted);
    REQUIRE(accepted->revocations.list().size() == 1);
    const Revocation& x = accepted->revocations.list()[0];
    CHECK(x.target == "op://Vault/Item/field");
    REQUIRE(x.ref);
    CHECK(x.ref->item == "Item");
    CHECK(x.known_as("op://vid/iid/fid"));
    CHECK_FALSE(x.resolved);  // resolved again by the agent
    CHECK(store.load(accepted->generation, false));
  }
  SECTION("--accept-revocations takes an edited file as it is and seals it") {
    std::string edited = sealed;
    edited.replace(edited.find("leaked"), 6, "LEAKED");
    dir.write("revocations.json", edited);
    auto accepted = store.load(recorded, true);
    REQUIRE(accepted);
    REQUIRE(accepted->revocations.list().size() == 2);
    CHECK_THAT(accepted->revocations.list()[0].reason, Catch::StartsWith("LEAKED"));
    auto again = store.load(recorded, false);
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
        R"({"version":3,"revocations":[]})"}) {
    INFO(text);
    dir.write("revocations.json", text);
    // Damage is reported even when the operator accepts the file as it is.
    auto r = store.load(std::nullopt, true);
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error().message, Catch::Contains("damaged"));
  }
}

TEST_CASE("a revocations file that is no regular file is refused with its name; a save leaves no temporary",
          "[app][revocations]") {
  TempDir dir;
  Keys k;
  RevocationStore store(dir.path(), *k.key);
  REQUIRE(store.save(sample()));
  CHECK(::access((store.path() + ".tmp").c_str(), F_OK) != 0);
  const std::string sealed = read_file(store.path());

  // A symlink to a sealed copy is not followed: it is not the agent's file.
  REQUIRE(::rename(store.path().c_str(), (dir / "elsewhere.json").c_str()) == 0);
  REQUIRE(::symlink((dir / "elsewhere.json").c_str(), store.path().c_str()) == 0);
  auto link = store.load(std::nullopt, false);
  REQUIRE_FALSE(link);
  CHECK_THAT(link.error().message, Catch::Contains("cannot read " + store.path()));
  REQUIRE(::unlink(store.path().c_str()) == 0);

  REQUIRE(::mkdir(store.path().c_str(), 0700) == 0);
  auto directory = store.load(std::nullopt, true);
  REQUIRE_FALSE(directory);
  CHECK(directory.error().message == "cannot read " + store.path() + ": not a regular file");
  REQUIRE(::rmdir(store.path().c_str()) == 0);

  dir.write("revocations.json", sealed);
  CHECK(store.load(std::nullopt, false));  // the same bytes, in place: read as before
}
