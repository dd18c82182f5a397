#include <catch2/catch.hpp>

#include <sys/stat.h>

#include "chitty/app/revocation_store.hpp"
#include "temp_dir.hpp"

using chitty::app::RevocationStore;
using chitty::policy::Revocation;
using chitty::policy::Revocations;
using chitty::testing::TempDir;

TEST_CASE("revocations are saved atomically and read back as they were", "[app][revocations]") {
  TempDir dir;
  RevocationStore store(dir.path());
  auto none = store.load();
  REQUIRE(none);
  CHECK(none->empty());  // no file yet: none in force

  Revocations r;
  Revocation a;
  a.kind = Revocation::Kind::ref;
  a.keys = {"op://vault/item/field", "op://vid/iid/fid"};
  a.shown = "op://Vault/Item/field";
  a.reason = "leaked in a \"log\"\n";
  a.at = chitty::WallTime(std::chrono::milliseconds(1764700000123));
  a.by = "uid 0 pid 1 exe /usr/bin/curl";
  r.add(a);
  Revocation b;
  b.kind = Revocation::Kind::all;
  r.add(b);
  REQUIRE(store.save(r));
  struct stat st {};
  REQUIRE(stat(store.path().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);

  auto back = store.load();
  REQUIRE(back);
  REQUIRE(back->list().size() == 2);
  const Revocation& x = back->list()[0];
  CHECK(x.kind == Revocation::Kind::ref);
  CHECK(x.keys == a.keys);
  CHECK(x.shown == a.shown);
  CHECK(x.reason == a.reason);
  CHECK(x.at == a.at);
  CHECK(x.by == a.by);
  CHECK(back->list()[1].kind == Revocation::Kind::all);
}

TEST_CASE("a damaged revocations file is an error, not an empty list", "[app][revocations]") {
  TempDir dir;
  RevocationStore store(dir.path());
  for (const char* text : {"{", "[]", R"({"revocations":{}})", R"({"revocations":[{"kind":"nope","keys":[]}]})",
                           R"({"revocations":[{"kind":"ref","keys":[]}]})", R"({"revocations":[{"keys":["x"]}]})"}) {
    INFO(text);
    dir.write("revocations.json", text);
    auto r = store.load();
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error().message, Catch::Contains("damaged") && Catch::Contains("remove it"));
  }
}
