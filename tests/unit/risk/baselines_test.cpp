// The baselines across a restart: the text form round-trips, a restarted
// engine does not take every access for a first one, and a baselines file
// that was changed or written under another key is refused.
#include <catch2/catch.hpp>

#include <fstream>
#include <sstream>

#include "chitty/risk/baselines_file.hpp"
#include "chitty/risk/engine.hpp"
#include "chitty/secure/arena.hpp"
#include "chitty/secure/signed_text.hpp"
#include "manual_clock.hpp"
#include "temp_dir.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using chitty::risk::Engine;
using chitty::risk::Factor;
using chitty::risk::Options;
using chitty::risk::Outcome;
using chitty::risk::Request;

namespace {

Options quick_learning() {
  Options o;
  o.learning_period = 1h;
  o.learning_requests = 20;
  return o;
}

Request usual(std::string_view ref) {
  Request r;
  r.service = "app";
  r.ref = ref;
  r.uid = 1000;
  r.exe = "/usr/bin/app with space";
  r.unit = "app.service";
  return r;
}

// A day of ordinary traffic for "app" and a few requests for "batch".
void learn(Engine& e, chitty::testing::ManualClock& clock) {
  for (int i = 0; i < 96; ++i) {
    const Request r = usual(i % 2 == 0 ? "op://infra/db/password" : "op://infra/cache%2Fkey/password");
    e.assess(r);
    e.record(r, Outcome::served);
    Request b = usual("op://batch/s3/secret");
    b.service = "batch";
    b.uid = 2000;
    if (i % 10 == 0) e.record(b, Outcome::served);
    clock.advance(15min);
  }
}

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST_CASE("the baselines round-trip: a restarted engine judges as the one before", "[risk][file]") {
  chitty::testing::ManualClock clock;
  Engine before(quick_learning(), clock);
  learn(before, clock);
  const std::string text = before.serialize();
  CHECK_THAT(text, Contains("chitty-risk 1\nservice app "));
  CHECK_THAT(text, !Contains("value"));

  chitty::testing::ManualClock later;
  later.advance(clock.wall_now() - later.wall_now() + 10min);  // the agent restarts ten minutes on
  Engine after(quick_learning(), later);
  REQUIRE(after.parse(text));
  CHECK(after.serialize() == text);
  for (const char* ref : {"op://infra/db/password", "op://infra/cache%2Fkey/password"}) {
    const auto a = after.assess(usual(ref));
    INFO(ref);
    CHECK_FALSE(a.learning);
    CHECK(a.fired.empty());
  }
  const auto fresh = after.assess(usual("op://infra/new/password"));
  REQUIRE(fresh.fired.size() == 1);
  CHECK(fresh.fired[0].factor == Factor::first_access);
  // A service read back with few requests is still learning.
  Request b = usual("op://batch/s3/secret");
  b.service = "batch";
  b.uid = 2000;
  CHECK(after.assess(b).learning);
}

TEST_CASE("baselines text that is not the format is refused, naming the line, and changes nothing", "[risk][file]") {
  chitty::testing::ManualClock clock;
  Engine e(quick_learning(), clock);
  learn(e, clock);
  const std::string before = e.serialize();
  const std::string h = "chitty-risk 1\n";
  struct Case {
    const char* name;
    std::string text;
    const char* line;
  };
  const std::vector<Case> cases{
      {"wrong header", "chitty-risk 2\nend\n", "line 1:"},
      {"no end", h + "service app 1795478400000 1 1\n", "line 3:"},
      {"a record before a service", h + "ref op://a 1\nend\n", "line 2:"},
      {"a service served nothing with a time", h + "service app 1795478400000 0 0\nend\n", "line 2:"},
      {"a ref counted more than served", h + "service app 1795478400000 2 1\nref op://a 3\nend\n", "line 3:"},
      {"hours beyond served",
       h + "service app 1795478400000 1 1\nhours 2 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\nend\n", "line 3:"},
      {"hours short", h + "service app 1795478400000 1 1\nhours 1 0\nend\n", "line 3:"},
      {"a second service record", h + "service app 1 1 1\nservice app 1 1 1\nend\n", "line 3:"},
      {"a uid that is no number", h + "service app 1 1 1\nuid root\nend\n", "line 3:"},
      {"a repeated executable", h + "service app 1 1 1\nexe /bin/a\nexe /bin/a\nend\n", "line 4:"},
      {"an unknown record", h + "service app 1 1 1\nfrob x\nend\n", "line 3:"},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    auto r = e.parse(c.text);
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error().message, Contains("baselines file " + std::string(c.line)));
    CHECK(e.serialize() == before);
  }
}

TEST_CASE("the baselines file: saved with a MAC, read back; changed or under another key, refused", "[risk][file]") {
  chitty::testing::TempDir dir;
  const std::string path = dir / "risk.baselines";
  chitty::secure::ArenaOptions ao;
  ao.capacity = 1 << 20;
  auto arena = chitty::secure::Arena::create(ao);
  REQUIRE(arena);
  auto key = chitty::secure::MacKey::from_bytes(**arena, std::string(32, 'k'));
  REQUIRE(key);
  chitty::testing::ManualClock clock;
  Engine e(quick_learning(), clock);

  const auto file = chitty::risk::baselines_file(path);
  SECTION("no file yet") {
    auto loaded = chitty::secure::load_signed_state(file, e, **key);
    REQUIRE(loaded);
    CHECK_FALSE(*loaded);
  }

  learn(e, clock);
  REQUIRE(chitty::secure::save_signed_state(file, e, **key));

  SECTION("read back") {
    Engine again(quick_learning(), clock);
    auto loaded = chitty::secure::load_signed_state(file, again, **key);
    REQUIRE(loaded);
    CHECK(*loaded);
    CHECK(again.serialize() == e.serialize());
  }
  SECTION("changed: refused") {
    std::string text = read_all(path);
    const auto at = text.find("op://infra/db/password");
    REQUIRE(at != std::string::npos);
    text.replace(at, 8, "op://ops");
    dir.write("risk.baselines", text);
    Engine again(quick_learning(), clock);
    auto loaded = chitty::secure::load_signed_state(file, again, **key);
    REQUIRE_FALSE(loaded);
    CHECK_THAT(loaded.error().message, Contains("does not verify"));
    CHECK(again.serialize() == "chitty-risk 1\nend\n");
  }
  SECTION("another key: refused") {
    auto other = chitty::secure::MacKey::from_bytes(**arena, std::string(32, 'x'));
    REQUIRE(other);
    Engine again(quick_learning(), clock);
    CHECK_FALSE(chitty::secure::load_signed_state(file, again, **other));
  }
  SECTION("a prediction model's MAC does not pass for baselines") {
    // Same key, same text, another file kind's domain.
    chitty::secure::SignedFile model{path, "chitty-agent prediction model v1\n", "prediction model", 1 << 20};
    REQUIRE(chitty::secure::save_signed_text(model, e.serialize(), **key));
    Engine again(quick_learning(), clock);
    CHECK_FALSE(chitty::secure::load_signed_state(file, again, **key));
  }
}
