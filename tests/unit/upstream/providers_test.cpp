// The environment and systemd-credential providers: values into locked
// memory, the environment scrubbed, completions on a later loop turn.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>

#include "chitty/loop/task_queue.hpp"
#include "chitty/loop/timer.hpp"
#include "chitty/secure/sealer.hpp"
#include "chitty/upstream/credential_provider.hpp"
#include "chitty/upstream/env_provider.hpp"
#include "temp_dir.hpp"

using namespace std::chrono_literals;
using chitty::upstream::CredentialProvider;
using chitty::upstream::EnvProvider;
using chitty::upstream::FetchError;
using chitty::upstream::FetchResult;

namespace {

struct Fixture {
  chitty::loop::Loop loop;
  chitty::loop::TaskQueue tasks{loop};
  std::unique_ptr<chitty::secure::Arena> arena;
  std::unique_ptr<chitty::secure::Sealer> sealer;

  Fixture() {
    chitty::secure::ArenaOptions ao;
    ao.capacity = 1 << 20;
    arena = std::move(*chitty::secure::Arena::create(ao));
    sealer = std::move(*chitty::secure::Sealer::create(*arena));
  }
  ~Fixture() {
    tasks.close();
    REQUIRE(loop.close().has_value());
  }

  // Fetches through `p` and runs the loop until the completion arrives.
  FetchResult fetch(chitty::upstream::Provider& p, const chitty::catalog::Entry& e) {
    std::optional<FetchResult> got;
    bool returned = false;
    chitty::upstream::FetchRequest request{std::make_shared<chitty::catalog::Entry>(e), e.ref, false};
    p.fetch(request, [&](FetchResult r) {
      CHECK(returned);  // never from inside fetch()
      got = std::move(r);
    });
    returned = true;
    chitty::loop::Timer poll(loop, [&] {
      if (got) poll.close();
    });
    poll.start(1ms, 1ms);
    loop.run();
    REQUIRE(got.has_value());
    return std::move(*got);
  }
};

std::string text(const FetchResult& r) { return {r->data(), r->size()}; }

chitty::catalog::Entry env_entry(const std::string& name) {
  chitty::catalog::Entry e;
  e.type = "t";
  e.env = name;
  return e;
}

chitty::catalog::Entry credential_entry(const std::string& name) {
  chitty::catalog::Entry e;
  e.type = "t";
  e.systemd_credential = name;
  return e;
}

}  // namespace

TEST_CASE("env values are imported sealed and scrubbed from the environment, every copy", "[upstream][env]") {
  Fixture f;
  // putenv keeps our buffers in the environment: we can see they are wiped.
  static char first[] = "CHITTY_T_TOKEN=first-value";
  static char second[] = "CHITTY_T_TOKEN=second-copy";
  static char other[] = "CHITTY_T_OTHER=other-value";
  REQUIRE(putenv(first) == 0);
  REQUIRE(putenv(other) == 0);
  // A second copy of one name, as execve can pass (putenv would replace).
  extern char** environ;
  std::size_t n = 0;
  while (environ[n] != nullptr) ++n;
  std::vector<char*> env(environ, environ + n);
  env.push_back(second);
  env.push_back(nullptr);
  char** saved = environ;
  environ = env.data();

  EnvProvider p(*f.arena, *f.sealer, f.tasks);
  auto report = p.import({"CHITTY_T_TOKEN", "CHITTY_T_MISSING", "CHITTY_T_OTHER"});
  CHECK(report.imported == std::vector<std::string>{"CHITTY_T_TOKEN", "CHITTY_T_OTHER"});
  CHECK(report.missing == std::vector<std::string>{"CHITTY_T_MISSING"});
  CHECK(report.failed.empty());
  CHECK(std::getenv("CHITTY_T_TOKEN") == nullptr);
  CHECK(std::getenv("CHITTY_T_OTHER") == nullptr);
  for (const char* buf : {first, second, other}) {
    std::size_t len = std::strlen("CHITTY_T_TOKEN=first-value");
    CHECK(std::all_of(buf, buf + len, [](char c) { return c == '\0'; }));
  }
  for (char** e = environ; *e != nullptr; ++e) CHECK(std::strncmp(*e, "CHITTY_T_", 9) != 0);
  environ = saved;

  // Sealed, not stored as plaintext: the arena holds no trace of the value.
  auto region = f.arena->region();
  std::string_view all(reinterpret_cast<const char*>(region.data()), region.size());
  CHECK(all.find("first-value") == std::string_view::npos);

  auto r = f.fetch(p, env_entry("CHITTY_T_TOKEN"));
  REQUIRE(r);
  CHECK(text(r) == "first-value");  // the value getenv() would have returned
  CHECK(f.arena->contains(r->data()));
  auto missing = f.fetch(p, env_entry("CHITTY_T_MISSING"));
  REQUIRE_FALSE(missing);
  CHECK(missing.error().kind == FetchError::not_found);
  CHECK_THAT(missing.error().message, Catch::Contains("CHITTY_T_MISSING"));

  // A second import (a reload) keeps what it has and does not need the variable.
  auto again = p.import({"CHITTY_T_TOKEN"});
  CHECK(again.imported.empty());
  CHECK(again.missing.empty());
  CHECK(p.size() == 2);
}

TEST_CASE("an empty env value is a value", "[upstream][env]") {
  Fixture f;
  REQUIRE(setenv("CHITTY_T_EMPTY", "", 1) == 0);
  EnvProvider p(*f.arena, *f.sealer, f.tasks);
  CHECK(p.import({"CHITTY_T_EMPTY"}).imported.size() == 1);
  auto r = f.fetch(p, env_entry("CHITTY_T_EMPTY"));
  REQUIRE(r);
  CHECK(r->size() == 0);
}

TEST_CASE("the provider wipes its sealed values when it goes", "[upstream][env]") {
  Fixture f;
  REQUIRE(setenv("CHITTY_T_GONE", "to-be-wiped", 1) == 0);
  std::size_t before = f.arena->used();
  {
    EnvProvider p(*f.arena, *f.sealer, f.tasks);
    p.import({"CHITTY_T_GONE"});
    CHECK(f.arena->used() > before);
  }
  CHECK(f.arena->used() == before);
}

TEST_CASE("systemd credentials are read from $CREDENTIALS_DIRECTORY into locked memory", "[upstream][credential]") {
  Fixture f;
  chitty::testing::TempDir dir;
  auto write = [&](const std::string& name, const std::string& content) {
    std::ofstream(dir.path() + "/" + name, std::ios::binary) << content;
  };
  write("db", "pg-password\n");
  write("raw", std::string("two\n\nlines\n\n", 12));
  write("binary", std::string("\x00\xff\x01", 3));
  write("empty", "");
  REQUIRE(symlink((dir.path() + "/db").c_str(), (dir.path() + "/link").c_str()) == 0);
  REQUIRE(mkdir((dir.path() + "/subdir").c_str(), 0700) == 0);

  CredentialProvider p(*f.arena, f.tasks, dir.path());
  auto db = f.fetch(p, credential_entry("db"));
  REQUIRE(db);
  CHECK(text(db) == "pg-password");  // one trailing newline dropped
  CHECK(f.arena->contains(db->data()));
  auto raw = f.fetch(p, credential_entry("raw"));
  REQUIRE(raw);
  CHECK(text(raw) == "two\n\nlines\n");  // only one
  auto bin = f.fetch(p, credential_entry("binary"));
  REQUIRE(bin);
  CHECK(text(bin) == std::string("\x00\xff\x01", 3));
  auto empty = f.fetch(p, credential_entry("empty"));
  REQUIRE(empty);
  CHECK(empty->size() == 0);

  auto missing = f.fetch(p, credential_entry("nope"));
  REQUIRE_FALSE(missing);
  CHECK(missing.error().kind == FetchError::not_found);
  auto link = f.fetch(p, credential_entry("link"));
  REQUIRE_FALSE(link);  // symlinks are not followed
  auto sub = f.fetch(p, credential_entry("subdir"));
  REQUIRE_FALSE(sub);
  CHECK_THAT(sub.error().message, Catch::Contains("not a regular file"));
  auto escape = f.fetch(p, credential_entry("../etc"));
  REQUIRE_FALSE(escape);
}

TEST_CASE("a credential too large for a secret is refused, not cut", "[upstream][credential]") {
  Fixture f;
  chitty::testing::TempDir dir;
  std::ofstream(dir.path() + "/big", std::ios::binary) << std::string(chitty::secure::Arena::kMaxBlock, 'x');
  CredentialProvider p(*f.arena, f.tasks, dir.path());
  auto r = f.fetch(p, credential_entry("big"));
  REQUIRE_FALSE(r);
  CHECK_THAT(r.error().message, Catch::Contains("larger than"));
}

TEST_CASE("without $CREDENTIALS_DIRECTORY no credential can be found", "[upstream][credential]") {
  Fixture f;
  CredentialProvider p(*f.arena, f.tasks, std::nullopt);
  auto r = f.fetch(p, credential_entry("db"));
  REQUIRE_FALSE(r);
  CHECK(r.error().kind == FetchError::not_found);
  CHECK_THAT(r.error().message, Catch::Contains("LoadCredential="));
  CHECK_FALSE(p.holds(nullptr));
  auto named = credential_entry("db");
  CHECK(p.holds(&named));
  auto env_only = env_entry("X");
  CHECK_FALSE(p.holds(&env_only));
}
