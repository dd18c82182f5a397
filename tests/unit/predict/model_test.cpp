// The prediction model on values: a manual clock walks through minutes of
// reads; what it predicts, learns, forgets and writes to its file.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "chitty/predict/model.hpp"
#include "manual_clock.hpp"

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using chitty::Duration;
using chitty::MonoTime;
using chitty::predict::Insights;
using chitty::predict::Kind;
using chitty::predict::Model;
using chitty::predict::Options;
using chitty::predict::Prediction;
using chitty::testing::ManualClock;

namespace {

struct Fixture {
  ManualClock clock;
  Model model;
  MonoTime start = clock.now();
  explicit Fixture(Options o = Options{}) : model(o, clock) {}

  std::vector<Prediction> read(std::string_view service, std::string_view ref, std::int64_t pid = 100) {
    return model.observe(service, ref, pid);
  }
  // Reads `ref` after each interval in turn (the first read at once).
  MonoTime read_every(std::string_view service, std::string_view ref, const std::vector<Duration>& intervals) {
    read(service, ref);
    for (Duration d : intervals) {
      clock.advance(d);
      read(service, ref);
    }
    return clock.now();
  }
  // Reads `ref` at each of these times after the start.
  void read_at(std::string_view service, std::string_view ref, std::initializer_list<Duration> times) {
    for (Duration t : times) {
      clock.advance(start + t - clock.now());
      read(service, ref);
    }
  }
};

std::vector<std::string> refs_of(const std::vector<Prediction>& ps, Kind kind) {
  std::vector<std::string> out;
  for (const Prediction& p : ps) {
    if (p.kind == kind) out.push_back(p.ref);
  }
  return out;
}

std::size_t count_lines(const std::string& text, std::string_view prefix) {
  std::size_t n = 0;
  std::size_t pos = 0;
  while (pos < text.size()) {
    const std::size_t nl = text.find('\n', pos);
    if (std::string_view(text).substr(pos, prefix.size()) == prefix) ++n;
    if (nl == std::string::npos) break;
    pos = nl + 1;
  }
  return n;
}

void check_same_insights(const Insights& a, const Insights& b) {
  CHECK(a.startup_set == b.startup_set);
  CHECK(a.startups_seen == b.startups_seen);
  REQUIRE(a.top_pairs.size() == b.top_pairs.size());
  for (std::size_t i = 0; i < a.top_pairs.size(); ++i) {
    CHECK(a.top_pairs[i].from == b.top_pairs[i].from);
    CHECK(a.top_pairs[i].to == b.top_pairs[i].to);
    CHECK(a.top_pairs[i].probability == b.top_pairs[i].probability);
    CHECK(a.top_pairs[i].count == b.top_pairs[i].count);
  }
  REQUIRE(a.periods.size() == b.periods.size());
  for (std::size_t i = 0; i < a.periods.size(); ++i) {
    CHECK(a.periods[i].ref == b.periods[i].ref);
    CHECK(a.periods[i].period == b.periods[i].period);
    CHECK(a.periods[i].next_due == b.periods[i].next_due);
  }
  REQUIRE(a.next.size() == b.next.size());
  for (std::size_t i = 0; i < a.next.size(); ++i) {
    CHECK(a.next[i].ref == b.next[i].ref);
    CHECK(a.next[i].due == b.next[i].due);
  }
}

void check_same_predictions(const std::vector<Prediction>& a, const std::vector<Prediction>& b) {
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) {
    CHECK(a[i].ref == b[i].ref);
    CHECK(a[i].kind == b[i].kind);
    CHECK(a[i].due == b[i].due);
    CHECK(a[i].confidence == b[i].confidence);
    CHECK(a[i].service == b[i].service);
  }
}

}  // namespace

TEST_CASE("the kinds have their documented names", "[predict]") {
  CHECK(kind_name(Kind::refresh) == "refresh-ahead");
  CHECK(kind_name(Kind::startup) == "start-up");
  CHECK(kind_name(Kind::coaccess) == "co-access");
  CHECK(kind_name(Kind::periodic) == "periodic");
}

TEST_CASE("a start-up set is learnt from one start-up and predicted at the next pid", "[predict][startup]") {
  Fixture f;
  CHECK(f.read("web", "op://a").empty());  // a start-up, but nothing learnt yet
  f.clock.advance(2s);
  f.read("web", "op://b");
  f.clock.advance(28s);
  f.read("web", "op://late");  // 30 s after the start: outside the 10 s window
  f.clock.advance(1s);
  CHECK(refs_of(f.read("web", "op://a"), Kind::startup).empty());  // the same pid: no start-up
  CHECK(f.model.startup_set("web") == std::vector<std::string>{"op://a", "op://b"});

  f.clock.advance(10min);
  const auto p = f.read("web", "op://b", 101);
  REQUIRE(p.size() == 1);
  CHECK(p[0].ref == "op://a");  // the set less the reference being read
  CHECK(p[0].kind == Kind::startup);
  CHECK(p[0].due == f.clock.now());
  CHECK(p[0].confidence == 1.0);
  CHECK(p[0].service == "web");
  CHECK(f.model.insights("web").startups_seen == 2);
}

TEST_CASE("a reference read in too few start-ups drops out of the set", "[predict][startup]") {
  Fixture f;
  const std::vector<std::vector<std::string>> runs{{"A", "B", "X"}, {"A", "B"}, {"A"}, {"A"}};
  std::int64_t pid = 1;
  for (const auto& run : runs) {
    for (const auto& ref : run) {
      f.read("svc", ref, pid);
      f.clock.advance(1s);
    }
    f.clock.advance(10min);
    ++pid;
  }
  const auto p = f.read("svc", "other", pid);
  REQUIRE(p.size() == 2);
  CHECK(p[0].ref == "A");  // 4 of 4
  CHECK(p[0].confidence == 1.0);
  CHECK(p[1].ref == "B");  // 2 of 4: exactly the share needed
  CHECK(p[1].confidence == 0.5);
  // X, in 1 of 4, is not in it.
  const Insights in = f.model.insights("svc");
  CHECK(in.startup_set == std::vector<std::string>{"A", "B"});
  CHECK(in.startups_seen == 5);
}

TEST_CASE("an unknown pid neither begins a start-up nor hides the next one", "[predict][startup]") {
  Fixture f;
  f.read("svc", "A", 0);  // a service never seen: a start-up even without a pid
  f.clock.advance(1s);
  f.read("svc", "B", 0);
  CHECK(f.model.insights("svc").startups_seen == 1);
  f.clock.advance(10min);
  CHECK(f.read("svc", "C", 0).empty());
  CHECK(f.read("svc", "C", 42).empty());  // the first known pid is adopted, not a restart
  CHECK(f.read("svc", "C", 0).empty());   // unknown again: still the same process
  CHECK(f.read("svc", "C", 42).empty());
  CHECK(f.model.insights("svc").startups_seen == 1);
  const auto p = f.read("svc", "C", 43);  // a new pid: a restart
  CHECK(refs_of(p, Kind::startup) == std::vector<std::string>{"A", "B"});
  CHECK(f.model.insights("svc").startups_seen == 2);
}

TEST_CASE("after parse the same pid is not a start-up and a new pid is", "[predict][startup][file]") {
  Fixture f;
  f.read("web", "A");
  f.clock.advance(1s);
  f.read("web", "B");
  f.clock.advance(10min);
  const std::string text = f.model.serialize();

  Model restarted(Options{}, f.clock);
  REQUIRE(restarted.parse(text));
  CHECK(restarted.observe("web", "C", 100).empty());
  CHECK(restarted.insights("web").startups_seen == 1);
  f.clock.advance(1min);
  const auto p = restarted.observe("web", "C", 101);
  CHECK(refs_of(p, Kind::startup) == std::vector<std::string>{"A", "B"});
  CHECK(restarted.insights("web").startups_seen == 2);
}

TEST_CASE("a co-access pair seen twice is predicted with its probability", "[predict][coaccess]") {
  Fixture f;
  f.read("svc", "A");
  f.clock.advance(1s);
  f.read("svc", "B");
  f.clock.advance(2min);
  CHECK(refs_of(f.read("svc", "A"), Kind::coaccess).empty());  // once is not enough
  f.clock.advance(1s);
  f.read("svc", "B");
  f.clock.advance(2min);
  const auto p = f.read("svc", "A");
  REQUIRE(p.size() == 1);
  CHECK(p[0].ref == "B");
  CHECK(p[0].kind == Kind::coaccess);
  CHECK(p[0].confidence == 1.0);
  CHECK(p[0].due == f.clock.now());
  const Insights in = f.model.insights("svc");
  REQUIRE(in.top_pairs.size() == 1);
  CHECK(in.top_pairs[0].from == "A");
  CHECK(in.top_pairs[0].to == "B");
  CHECK(in.top_pairs[0].count == 2);
}

TEST_CASE("a one-off co-occurrence is not predicted", "[predict][coaccess]") {
  SECTION("seen once, then A alone") {
    Fixture f;
    f.read("svc", "A");
    f.clock.advance(1s);
    f.read("svc", "B");
    for (int i = 0; i < 5; ++i) {
      f.clock.advance(2min);
      CHECK(refs_of(f.read("svc", "A"), Kind::coaccess).empty());
    }
    CHECK(f.model.insights("svc").top_pairs.empty());
  }
  SECTION("seen twice, then A alone until the probability falls below the minimum") {
    Fixture f;
    for (int i = 0; i < 2; ++i) {
      f.read("svc", "A");
      f.clock.advance(1s);
      f.read("svc", "B");
      f.clock.advance(2min);
    }
    CHECK(refs_of(f.read("svc", "A"), Kind::coaccess) == std::vector<std::string>{"B"});  // 2 of 2
    f.clock.advance(2min);
    CHECK(refs_of(f.read("svc", "A"), Kind::coaccess) == std::vector<std::string>{"B"});  // 2 of 3
    f.clock.advance(2min);
    CHECK(refs_of(f.read("svc", "A"), Kind::coaccess).empty());  // 2 of 4 < 0.6
  }
}

TEST_CASE("co-access counts once per episode and only within the window", "[predict][coaccess]") {
  SECTION("B read outside the window is not counted") {
    Fixture f;
    for (int i = 0; i < 3; ++i) {
      f.read("svc", "A");
      f.clock.advance(6s);
      f.read("svc", "B");
      f.clock.advance(2min);
    }
    CHECK(refs_of(f.read("svc", "A"), Kind::coaccess).empty());
    CHECK(f.model.insights("svc").top_pairs.empty());
  }
  SECTION("a burst of A and B is one episode, one count") {
    Fixture f;
    for (int i = 0; i < 2; ++i) {
      f.read("svc", "A");
      f.clock.advance(1s);
      f.read("svc", "B");
      f.read("svc", "A");
      f.clock.advance(1s);
      f.read("svc", "B");
      f.read("svc", "B");
      f.clock.advance(2min);
    }
    const Insights in = f.model.insights("svc");
    REQUIRE(!in.top_pairs.empty());
    CHECK(in.top_pairs[0].from == "A");
    CHECK(in.top_pairs[0].to == "B");
    CHECK(in.top_pairs[0].count == 2);
    CHECK(in.top_pairs[0].probability == 1.0);
  }
}

TEST_CASE("successors are bounded, the least counted forgotten", "[predict][coaccess][bounds]") {
  Options o;
  o.max_successors = 2;
  o.coaccess_min_count = 1;
  o.coaccess_min_probability = 0.0;
  Fixture f(o);
  auto episode = [&](const char* next) {
    f.read("svc", "A");
    f.clock.advance(1s);
    f.read("svc", next);
    f.clock.advance(2min);
  };
  for (int i = 0; i < 5; ++i) episode("B");
  episode("C1");
  episode("C2");
  episode("C3");
  const auto p = f.read("svc", "A");
  CHECK(refs_of(p, Kind::coaccess) == std::vector<std::string>{"B", "C3"});
}

TEST_CASE("a start-up and a co-access prediction of one reference give one prediction", "[predict]") {
  Fixture f;
  for (std::int64_t pid = 1; pid <= 2; ++pid) {
    f.read("svc", "A", pid);
    f.clock.advance(1s);
    f.read("svc", "B", pid);
    f.clock.advance(10min);
  }
  const auto p = f.read("svc", "A", 3);
  REQUIRE(p.size() == 1);
  CHECK(p[0].ref == "B");
  CHECK(p[0].kind == Kind::startup);
}

TEST_CASE("a steady period is learnt and its next read foreseen", "[predict][periodic]") {
  Fixture f;
  const MonoTime last = f.read_every("cron", "op://tick", {118s, 122s, 120s, 121s, 119s, 122s, 118s});
  const auto next = f.model.next_periodic_read("op://tick");
  REQUIRE(next);
  CHECK(*next == last + 120s);  // the median of the intervals
  const Insights in = f.model.insights("cron");
  REQUIRE(in.periods.size() == 1);
  CHECK(in.periods[0].ref == "op://tick");
  CHECK(in.periods[0].period == 120s);
  CHECK(in.periods[0].next_due == f.clock.wall_now() + 120s);
  REQUIRE(in.next.size() == 1);
  CHECK(in.next[0].due == last + 120s);
  CHECK_FALSE(f.model.next_periodic_read("op://other"));
}

TEST_CASE("jittery reads are not a period", "[predict][periodic]") {
  Fixture f;
  f.read_every("svc", "op://j", {60s, 170s, 95s, 140s, 75s});
  CHECK_FALSE(f.model.next_periodic_read("op://j"));
  CHECK(f.model.insights("svc").periods.empty());
  CHECK(f.model.due(24h).empty());
}

TEST_CASE("three runs a period apart give a tentative period: fetched ahead of, not a learnt period",
          "[predict][periodic]") {
  Fixture f;
  // A job every 400 s, seen three times (a period needs four): its next run
  // is predicted, but the reference is not taken for periodic (it keeps its
  // refresh-ahead) and insights show no period.
  f.read_at("cron", "op://job", {0s, 400s, 800s});
  CHECK_FALSE(f.model.next_periodic_read("op://job"));
  CHECK(f.model.insights("cron").periods.empty());
  auto due = f.model.due(24h);
  REQUIRE(due.size() == 1);
  CHECK(due[0].ref == "op://job");
  CHECK(due[0].kind == Kind::periodic);
  CHECK(due[0].due == f.start + 1200s);
  CHECK(due[0].service == "cron");
  CHECK(due[0].confidence < 1.0);

  SECTION("a read for another reason in between does not hide it") {
    Fixture g;
    g.read_at("cron", "op://job", {0s, 400s, 570s, 800s});
    auto d = g.model.due(24h);
    REQUIRE(d.size() == 1);
    CHECK(d[0].due == g.start + 1200s);
  }
  SECTION("the fourth run on the grid makes it a learnt period") {
    f.read_at("cron", "op://job", {1200s});
    REQUIRE(f.model.next_periodic_read("op://job"));
    CHECK(*f.model.next_periodic_read("op://job") == f.start + 1600s);
    REQUIRE(f.model.due(24h).size() == 1);
    CHECK(f.model.due(24h)[0].confidence == 1.0);
  }
  SECTION("a run missed twice: the job is taken to have stopped") {
    f.clock.advance(f.start + 1300s - f.clock.now());  // the run at 1200 s missed
    REQUIRE(f.model.due(24h).size() == 1);
    CHECK(f.model.due(24h)[0].due == f.start + 1600s);  // the run after a missed one
    f.clock.advance(f.start + 1700s - f.clock.now());
    CHECK(f.model.due(24h).empty());
  }
}

TEST_CASE("two intervals that disagree are no tentative period", "[predict][periodic]") {
  Fixture f;
  f.read_at("svc", "op://r", {0s, 400s, 700s});  // 400 s then 300 s
  CHECK(f.model.due(24h).empty());
  Fixture g;
  g.read_at("svc", "op://r", {0s, 400s});  // one interval says nothing
  CHECK(g.model.due(24h).empty());
}

TEST_CASE("brought share: how much of a reference's reading comes right after another's", "[predict][coaccess]") {
  Fixture f;
  // B 1 s after A, four times; B once more on its own.
  for (int i = 0; i < 4; ++i) {
    f.read("svc", "A");
    f.clock.advance(1s);
    f.read("svc", "B");
    f.clock.advance(10min + std::chrono::seconds(17 * i));
  }
  f.read("svc", "B");
  f.clock.advance(10min);
  CHECK(f.model.brought_share("svc", "B") == Approx(4.0 / 5.0));
  CHECK(f.model.brought_share("svc", "A") == 0.0);  // nothing brings A
  CHECK(f.model.brought_share("other", "B") == 0.0);
  CHECK(f.model.brought_share("svc", "unknown") == 0.0);
  const auto rhythm = f.model.rhythm("svc", "B");
  REQUIRE(rhythm);
  CHECK(rhythm->intervals == 4);
  CHECK_FALSE(f.model.rhythm("svc", "unknown"));
}

TEST_CASE("a period survives a missed beat and reads in between", "[predict][periodic]") {
  Fixture f;
  // A job every 300 s; the beat at 900 s missed (a restart), another read of
  // the same reference at 1310 s.
  f.read_at("cron", "op://job", {0s, 300s, 600s, 1200s, 1310s, 1500s});
  const auto next = f.model.next_periodic_read("op://job");
  REQUIRE(next);
  CHECK(*next == f.start + 1800s);
  const Insights in = f.model.insights("cron");
  REQUIRE(in.periods.size() == 1);
  CHECK(in.periods[0].period == 300s);
}

TEST_CASE("reads that merely contain a few on a grid are not a period", "[predict][periodic]") {
  Fixture f;
  // Four reads 300 s apart among as many off it: too many off the grid.
  f.read_at("svc", "op://busy", {0s, 70s, 300s, 440s, 600s, 650s, 900s, 1020s});
  CHECK_FALSE(f.model.next_periodic_read("op://busy"));
  // Nor every other beat: a grid with half its beats missing.
  Fixture g;
  g.read_at("svc", "op://sparse", {0s, 200s, 600s, 1000s, 1400s});
  const auto next = g.model.next_periodic_read("op://sparse");
  REQUIRE(next);  // learnt as 400 s from its last four, not 200 s
  CHECK(*next == g.start + 1800s);
}

TEST_CASE("a burst of reads is one episode of a period", "[predict][periodic]") {
  Fixture f;
  MonoTime start{};
  for (int i = 0; i < 5; ++i) {
    start = f.clock.now();
    f.read("svc", "op://burst");
    f.clock.advance(400ms);
    f.read("svc", "op://burst");
    f.clock.advance(500ms);
    f.read("svc", "op://burst");
    f.clock.advance(120s - 900ms);
  }
  const auto next = f.model.next_periodic_read("op://burst");
  REQUIRE(next);
  CHECK(*next == start + 120s);
}

TEST_CASE("a period needs enough intervals and must lie within bounds", "[predict][periodic]") {
  SECTION("two intervals are too few, three are enough") {
    Fixture f;
    f.read_every("svc", "op://p", {120s, 120s});
    CHECK_FALSE(f.model.next_periodic_read("op://p"));
    f.clock.advance(120s);
    f.read("svc", "op://p");
    CHECK(f.model.next_periodic_read("op://p") == f.clock.now() + 120s);
  }
  SECTION("a period above period_max is not learnt") {
    Options o;
    o.period_max = 60s;
    Fixture f(o);
    f.read_every("svc", "op://p", {120s, 120s, 120s, 120s});
    CHECK_FALSE(f.model.next_periodic_read("op://p"));
  }
}

TEST_CASE("due() lists a periodic read just before it is due, not long before", "[predict][periodic]") {
  Fixture f;
  const MonoTime last = f.read_every("cron", "op://tick", {120s, 120s, 120s, 120s});
  f.clock.advance(60s);
  CHECK(f.model.due(15s).empty());
  f.clock.advance(50s);  // 10 s before it is due
  auto d = f.model.due(15s);
  REQUIRE(d.size() == 1);
  CHECK(d[0].ref == "op://tick");
  CHECK(d[0].kind == Kind::periodic);
  CHECK(d[0].service == "cron");
  CHECK(d[0].due == last + 120s);
  CHECK(d[0].confidence == 1.0);
  f.clock.advance(11s);  // 1 s late: within the tolerance, still expected
  CHECK(f.model.due(15s).size() == 1);
  f.clock.advance(19s);  // 20 s late: missed (a restart, say); the next beat is expected
  CHECK(f.model.due(15s).empty());
  CHECK(f.model.next_periodic_read("op://tick") == last + 240s);
  f.clock.advance(120s);  // that one missed too: the job has stopped
  CHECK(f.model.due(15s).empty());
  CHECK_FALSE(f.model.next_periodic_read("op://tick"));
}

TEST_CASE("serialize and parse round-trip the model", "[predict][file]") {
  Fixture f;
  for (std::int64_t pid = 1; pid <= 3; ++pid) {
    f.read("web", "A", pid);
    f.clock.advance(1s);
    f.read("web", "B", pid);
    f.clock.advance(2s);
    f.read("web", pid == 1 ? "once" : "C", pid);
    f.clock.advance(10min);
  }
  f.read("batch", "x", 7);
  f.read_every("cron", "op://tick", {120s, 121s, 119s, 120s});
  f.clock.advance(1min);

  const std::string text = f.model.serialize();
  CHECK(text.rfind("chitty-predict 1\n", 0) == 0);
  Model copy(Options{}, f.clock);
  REQUIRE(copy.parse(text));
  CHECK(copy.serialize() == text);
  CHECK(copy.services() == f.model.services());
  for (const std::string& s : f.model.services()) {
    INFO(s);
    check_same_insights(copy.insights(s), f.model.insights(s));
    CHECK(copy.startup_set(s) == f.model.startup_set(s));
  }
  check_same_predictions(copy.due(1h), f.model.due(1h));
  CHECK(copy.next_periodic_read("op://tick") == f.model.next_periodic_read("op://tick"));

  // The same reads from here on give the same predictions.
  check_same_predictions(copy.observe("web", "A", 3), f.model.observe("web", "A", 3));
  f.clock.advance(10min);
  const auto restart = f.model.observe("web", "C", 4);
  CHECK(refs_of(restart, Kind::startup) == std::vector<std::string>{"A", "B"});
  check_same_predictions(copy.observe("web", "C", 4), restart);
}

TEST_CASE("references with spaces, percent signs and other bytes round-trip", "[predict][file]") {
  Fixture f;
  const std::vector<std::string> refs{"op://My Vault/item 1/pass%word", "op://Ünïcödé/ключ/🔑",
                                      std::string("ctl\tx\x01\x7f") + "%41"};
  for (const auto& r : refs) f.read("my service", r);
  f.clock.advance(1min);
  const std::string text = f.model.serialize();
  CHECK_THAT(text, Contains("My%20Vault") && Contains("pass%25word") && Contains("my%20service"));
  const bool printable_ascii = std::all_of(text.begin(), text.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return c == '\n' || (u >= 0x20 && u < 0x7F);
  });
  CHECK(printable_ascii);
  Model copy(Options{}, f.clock);
  REQUIRE(copy.parse(text));
  CHECK(copy.services() == std::vector<std::string>{"my service"});
  auto set = copy.startup_set("my service");
  auto want = refs;
  std::sort(set.begin(), set.end());
  std::sort(want.begin(), want.end());
  CHECK(set == want);
  CHECK(copy.serialize() == text);
}

TEST_CASE("parse refuses malformed text, names the line and keeps the model", "[predict][file]") {
  Fixture f;
  f.read("web", "A");
  f.clock.advance(1s);
  f.read("web", "B");
  f.clock.advance(1min);
  const std::string before = f.model.serialize();
  const std::vector<std::string> before_set = f.model.startup_set("web");
  REQUIRE(before_set.size() == 2);

  struct Case {
    const char* name;
    std::string text;
    const char* line;
  };
  const std::string h = "chitty-predict 1\n";
  const std::vector<Case> cases{
      {"wrong header", "chitty-predict 2\nend\n", "line 1:"},
      {"empty text", "", "line 1:"},
      {"truncated line", h + "service web 100 1\nref A 1\nend\n", "line 3:"},
      {"bad number", h + "service web 1x0 1\nend\n", "line 2:"},
      {"negative count", h + "service web 100 -1\nend\n", "line 2:"},
      {"unknown record type", h + "service web 100 1\nrun 1795478400000 A\nfrob A\nend\n", "line 4:"},
      {"no newline at the end", h + "service web 100 1\nend", "line 3:"},
      {"no end record", h + "service web 100 1\n", "line 3:"},
      {"bad escape", h + "service w%ZZb 100 1\nend\n", "line 2:"},
      {"double space", h + "service web  100 1\nend\n", "line 2:"},
      {"successor without its ref", h + "service web 100 1\nsuccessor B 1\nend\n", "line 3:"},
      {"more successions than episodes", h + "service web 100 1\nref A 1 1 1\nsuccessor B 2\nend\n", "line 4:"},
      {"a record before any service", h + "ref A 1 1 1\nend\n", "line 2:"},
      {"a line after the end", h + "end\nservice web 100 1\n", "line 3:"},
      {"a cut real file", before.substr(0, before.find('\n', before.find('\n') + 1) + 5), "line 3:"},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    auto r = f.model.parse(c.text);
    REQUIRE_FALSE(r);
    CHECK_THAT(r.error().message, Contains(c.line));
    CHECK(f.model.serialize() == before);
    CHECK(f.model.startup_set("web") == before_set);
  }
  CHECK(f.model.parse(h + "end\n"));  // an empty model is a model
  CHECK(f.model.services().empty());
}

TEST_CASE("intervals as long as the file allows are read back without overflow, and fit no period",
          "[predict][file][periodic]") {
  Fixture f;
  std::string text = "chitty-predict 1\nservice svc 100 1\nref op://old 9 1795480502000 1795480502000";
  for (int i = 0; i < 8; ++i) text += " 9000000000000";  // 285 years each: their sum is beyond 64-bit nanoseconds
  text += "\nend\n";
  REQUIRE(f.model.parse(text));
  CHECK_FALSE(f.model.next_periodic_read("op://old"));
  CHECK(f.model.insights("svc").periods.empty());
  CHECK(f.model.due(24h).empty());  // no tentative period either
  const auto rhythm = f.model.rhythm("svc", "op://old");
  REQUIRE(rhythm);
  CHECK(rhythm->mean == std::chrono::milliseconds(9000000000000));  // the mean of eight, not a wrapped sum
  CHECK(rhythm->intervals == 8);
  f.clock.advance(1h);
  f.read("svc", "op://old");  // one more interval, refitted
  CHECK_FALSE(f.model.next_periodic_read("op://old"));
}

TEST_CASE("more services and references than the caps keep the caps", "[predict][bounds]") {
  Options o;
  o.max_services = 3;
  o.max_refs_per_service = 4;
  o.startup_runs = 2;
  Fixture f(o);
  for (int i = 0; i < 5; ++i) {
    f.read("s" + std::to_string(i), "r");
    f.clock.advance(1s);
  }
  CHECK(f.model.services() == std::vector<std::string>{"s2", "s3", "s4"});  // the least recently read forgotten

  for (int i = 0; i < 10; ++i) {
    f.read("s4", "ref" + std::to_string(i));
    f.clock.advance(1s);
  }
  for (std::int64_t pid = 200; pid < 204; ++pid) {
    f.clock.advance(10min);
    f.read("s4", "ref9", pid);
  }
  const std::string text = f.model.serialize();
  CHECK(count_lines(text, "service ") == 3);
  CHECK(count_lines(text, "run ") == 1 + 1 + 2);  // s2, s3: one run each; s4: the last 2 of 5
  CHECK(count_lines(text, "ref ") == 1 + 1 + 4);
  for (int i = 6; i < 10; ++i) CHECK_THAT(text, Contains("ref ref" + std::to_string(i) + " "));
  CHECK_THAT(text, !Contains("ref ref5 "));
}

TEST_CASE("set_options keeps what was learnt, trimmed to the new bounds", "[predict][bounds]") {
  Fixture f;
  f.read("a", "x");
  f.clock.advance(1s);
  f.read("a", "y");
  f.read_every("cron", "op://tick", {120s, 120s, 120s});
  const auto next = f.model.next_periodic_read("op://tick");
  REQUIRE(next);

  Options o;
  o.coaccess_min_count = 3;
  f.model.set_options(o);
  CHECK(f.model.options().coaccess_min_count == 3);
  CHECK(f.model.startup_set("a") == std::vector<std::string>{"x", "y"});
  CHECK(f.model.next_periodic_read("op://tick") == next);

  o.max_services = 1;
  o.period_min_intervals = 4;
  f.model.set_options(o);
  CHECK(f.model.services() == std::vector<std::string>{"cron"});
  CHECK_FALSE(f.model.next_periodic_read("op://tick"));  // 3 intervals are now too few
}
