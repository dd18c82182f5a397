// The audit spool, the chain and its verifier, on real files and a real
// loop (the recorder's timer), with a manual clock.
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "chitty/audit/spool.hpp"
#include "chitty/audit/shipper.hpp"
#include "chitty/audit/spool_recorder.hpp"
#include "chitty/audit/verify.hpp"
#include "chitty/loop/loop.hpp"
#include "manual_clock.hpp"
#include "temp_dir.hpp"

using namespace std::chrono_literals;
using chitty::audit::Decision;
using chitty::audit::Event;
using chitty::audit::Kind;
using chitty::audit::Recovery;
using chitty::audit::Spool;
using chitty::audit::SpoolOptions;
using chitty::audit::SpoolRecorder;
using chitty::testing::ManualClock;
using chitty::testing::TempDir;
namespace fs = std::filesystem;

namespace {

chitty::secure::Arena& arena() {
  static std::unique_ptr<chitty::secure::Arena> a = [] {
    chitty::secure::ArenaOptions o;
    o.capacity = 1 << 20;
    return std::move(*chitty::secure::Arena::create(o));
  }();
  return *a;
}

std::unique_ptr<chitty::secure::MacKey> key(std::string_view bytes = "0123456789abcdef0123456789abcdef-test-key") {
  return std::move(*chitty::secure::MacKey::from_bytes(arena(), bytes));
}

Event decision(std::string service, Decision d, std::string ref = "op://v/i/f") {
  Event e;
  e.kind = Kind::decision;
  e.action = "retrieve";
  e.service = std::move(service);
  e.decision = d;
  e.ref = std::move(ref);
  e.uid = 1000;
  if (d != Decision::allow) e.code = "forbidden";
  return e;
}

// A spool directory with its recorder, opened (and reopened) like the agent does.
struct Fixture {
  TempDir dir;
  ManualClock clock;
  chitty::loop::Loop loop;
  std::unique_ptr<chitty::secure::MacKey> k = key();
  SpoolOptions options;
  std::unique_ptr<Spool> spool;
  std::unique_ptr<SpoolRecorder> recorder;
  Recovery recovery;

  explicit Fixture(std::uint64_t max_bytes = 1 << 20, std::uint64_t reserve = 16 * 1024, std::uint64_t segment = 4096) {
    options.dir = dir / "audit";
    options.max_bytes = max_bytes;
    options.reserve_bytes = reserve;
    options.segment_bytes = segment;
    open();
  }
  ~Fixture() {
    close();
    REQUIRE(loop.close());
  }
  void open() {
    recovery = Recovery{};
    auto s = Spool::open(options, recovery);
    INFO((s ? "" : s.error().message));
    REQUIRE(s);
    spool = std::move(*s);
    chitty::audit::RecorderOptions ro;
    ro.host = "test-host";
    ro.fsync_events = 4;
    recorder = std::make_unique<SpoolRecorder>(loop, *spool, *k, clock, recovery, ro);
  }
  void close() {
    if (recorder) recorder->close();
    recorder.reset();
    spool.reset();
  }
  void reopen() {
    close();
    open();
  }
  chitty::audit::VerifyReport verify(std::optional<chitty::audit::Head> head = std::nullopt) {
    return chitty::audit::verify_path(options.dir, *k, head);
  }
  std::vector<std::string> segments() const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(options.dir)) {
      std::string n = e.path().filename().string();
      if (n.starts_with("segment-") && n.ends_with(".ndjson")) out.push_back(e.path().string());
    }
    std::sort(out.begin(), out.end());
    return out;
  }
};

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}
void write_all(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

}  // namespace

TEST_CASE("events are chained, numbered and written before record() returns; the chain survives a restart",
          "[audit][spool]") {
  Fixture f;
  for (int i = 0; i < 30; ++i) {
    Event e = decision("svc", i % 3 ? Decision::allow : Decision::deny);
    e.uid = 1000 + i;  // refusals of one caller would be aggregated: ten callers' first ones
    REQUIRE(f.recorder->record(e));
  }
  // Written already (page cache), before any flush.
  std::string first = read_all(f.segments().front());
  CHECK(first.find("\"seq\":1,") != std::string::npos);
  CHECK(f.segments().size() > 1);  // 4 KiB segments: rotated
  CHECK(f.spool->last_seq() == 30);
  auto head = f.recorder->head();
  CHECK(head.seq == 30);
  auto ok = f.verify(head);
  INFO(ok.problem);
  CHECK(ok.ok);
  CHECK(ok.events == 30);

  // Reopen: the chain continues from the last event.
  f.reopen();
  CHECK(f.recovery.last_seq == 30);
  CHECK(f.recovery.last_mac == head.mac);
  REQUIRE(f.recorder->record(decision("svc", Decision::allow)));
  auto again = f.verify();
  CHECK(again.ok);
  CHECK(again.last_seq == 31);

  // What a line holds: the schema, and never anything beyond what was given.
  std::string line = read_all(f.segments().front()).substr(0, read_all(f.segments().front()).find('\n'));
  auto parsed = chitty::audit::parse_event(line);
  REQUIRE(parsed);
  CHECK(parsed->seq == 1);
  CHECK(parsed->host == "test-host");
  CHECK(parsed->service == "svc");
  CHECK(parsed->id.size() == 32);
  CHECK(chitty::audit::line_mac(line).size() == 64);
}

TEST_CASE("queries read the spool: newest first, by service and time", "[audit][spool]") {
  Fixture f;
  for (int i = 0; i < 10; ++i) {
    f.clock.advance(1s);
    Event e = decision(i % 2 ? "a" : "b", Decision::allow);
    e.at = f.clock.wall_now();
    REQUIRE(f.recorder->record(e));
  }
  auto a = f.recorder->query({std::string("a"), std::nullopt, 3});
  REQUIRE(a.size() == 3);
  CHECK(a.back().seq == 10);  // oldest first, the newest three
  CHECK(a.front().seq == 6);
  auto since = f.recorder->query({std::nullopt, f.clock.wall_now() - 2500ms, 100});
  CHECK(since.size() == 3);
}

TEST_CASE("tampering is detected: an edit, a deletion, a reordering, a cut tail, a rewrite without the key",
          "[audit][verify]") {
  Fixture f(1 << 20, 16 * 1024, 1 << 20);  // one segment
  for (int i = 0; i < 10; ++i) REQUIRE(f.recorder->record(decision("svc", Decision::allow)));
  auto head = f.recorder->head();
  f.close();
  const std::string path = f.segments().front();
  const std::string good = read_all(path);
  std::vector<std::string> lines;
  {
    std::stringstream s(good);
    for (std::string l; std::getline(s, l);) lines.push_back(l);
  }
  REQUIRE(lines.size() == 10);
  auto join = [](const std::vector<std::string>& ls) {
    std::string out;
    for (const auto& l : ls) out += l + "\n";
    return out;
  };
  auto verify_text = [&](const std::string& text, std::optional<chitty::audit::Head> h = std::nullopt) {
    write_all(path, text);
    return f.verify(h);
  };
  CHECK(verify_text(good, head).ok);

  SECTION("an edited field") {
    std::string edited = good;
    auto p = edited.find("\"decision\":\"allow\"", edited.find("\"seq\":4,"));
    edited.replace(p, 18, "\"decision\":\"deny\"");
    auto r = verify_text(edited);
    CHECK_FALSE(r.ok);
    CHECK_THAT(r.problem, Catch::Contains("seq 4") && Catch::Contains("MAC does not match"));
  }
  SECTION("a deleted event") {
    auto ls = lines;
    ls.erase(ls.begin() + 5);
    auto r = verify_text(join(ls));
    CHECK_THAT(r.problem, Catch::Contains("jumps from 5 to 7"));
  }
  SECTION("two events swapped") {
    auto ls = lines;
    std::swap(ls[3], ls[4]);
    auto r = verify_text(join(ls));
    CHECK_FALSE(r.ok);
    CHECK_THAT(r.problem, Catch::Contains("jumps") || Catch::Contains("reordered"));
  }
  SECTION("the tail cut off: only the mirrored head shows it") {
    auto ls = lines;
    ls.resize(7);
    CHECK(verify_text(join(ls)).ok);  // consistent as far as it goes...
    auto r = verify_text(join(ls), head);
    CHECK_FALSE(r.ok);
    CHECK_THAT(r.problem, Catch::Contains("tail was cut off"));
  }
  SECTION("rewritten consistently, but without the key") {
    // Re-chain every line under another key: seq and prev all line up.
    auto other = key("an-attackers-key-that-is-at-least-32-bytes");
    std::string prev(64, '0');
    std::vector<std::string> forged;
    for (const auto& l : lines) {
      auto e = chitty::audit::parse_event(l);
      REQUIRE(e);
      e->decision = Decision::deny;
      std::string body = chitty::audit::event_line(*e, prev);
      std::string mac = chitty::secure::to_hex(other->mac(body));
      body.pop_back();
      forged.push_back(body + ",\"mac\":\"" + mac + "\"}");
      prev = mac;
    }
    auto r = verify_text(join(forged));
    CHECK_FALSE(r.ok);
    CHECK_THAT(r.problem, Catch::Contains("seq 1") && Catch::Contains("without the chain key"));
  }
  SECTION("a line that is not an event") {
    auto ls = lines;
    ls.insert(ls.begin() + 2, "{\"hello\":1}");
    CHECK_THAT(verify_text(join(ls)).problem, Catch::Contains("not an audit event"));
  }
}

TEST_CASE("a torn last line is cut off, kept aside and reported; the chain continues", "[audit][spool]") {
  Fixture f;
  for (int i = 0; i < 3; ++i) REQUIRE(f.recorder->record(decision("svc", Decision::allow)));
  f.close();
  std::string path = f.segments().back();
  std::string text = read_all(path);
  write_all(path, text + "{\"v\":1,\"id\":\"torn\",\"seq\":4,\"at\":\"20");  // the crash came mid-write
  f.open();
  CHECK(f.recovery.torn_bytes > 0);
  CHECK_FALSE(f.recovery.torn_file.empty());
  CHECK(fs::exists(f.recovery.torn_file));
  CHECK(read_all(f.recovery.torn_file).find("\"seq\":4") != std::string::npos);
  CHECK(f.recovery.last_seq == 3);
  REQUIRE(f.recorder->record(decision("svc", Decision::allow)));
  auto r = f.verify();
  INFO(r.problem);
  CHECK(r.ok);
  CHECK(r.last_seq == 4);
}

TEST_CASE("acknowledged segments are deleted, never the active one, never what is not shipped",
          "[audit][spool]") {
  Fixture f(1 << 20, 16 * 1024, 2048);
  for (int i = 0; i < 40; ++i) REQUIRE(f.recorder->record(decision("svc", Decision::allow)));
  std::size_t before = f.segments().size();
  REQUIRE(before > 3);
  auto batch = f.spool->read_after(0, 10, 1 << 20);
  REQUIRE(batch);
  CHECK(batch->lines.size() == 10);
  CHECK(batch->last_seq == 10);
  auto next = f.spool->read_after(10, 1000, 1 << 20);
  REQUIRE(next);
  CHECK(next->lines.size() == 30);
  CHECK(chitty::audit::line_seq(next->lines.front()) == 11);
  REQUIRE(f.spool->acknowledge(25));
  CHECK(f.spool->acknowledged() == 25);
  CHECK(f.segments().size() < before);
  CHECK(f.spool->backlog() == 15);
  // What is left still verifies, starting at or before 26.
  auto r = f.verify();
  INFO(r.problem);
  CHECK(r.ok);
  CHECK(r.first_seq <= 26);
  // Everything shipped: only the active segment stays.
  REQUIRE(f.spool->acknowledge(40));
  CHECK(f.segments().size() == 1);
  f.reopen();
  CHECK(f.recovery.acknowledged == 40);
  CHECK(f.spool->backlog() == 0);
  // The oldest segment of unshipped events removed behind the agent's back
  // is missing from the chain (the one before it held only shipped ones).
  for (int i = 0; i < 40; ++i) REQUIRE(f.recorder->record(decision("svc", Decision::allow)));
  f.close();
  auto segs = f.segments();
  REQUIRE(segs.size() > 2);
  fs::remove(segs.front());
  CHECK(f.verify().ok);  // only shipped events were in it
  fs::remove(segs[1]);   // the first unshipped ones
  auto missing = f.verify();
  CHECK_FALSE(missing.ok);
  CHECK_THAT(missing.problem, Catch::Contains("missing"));
}

TEST_CASE("refusals are aggregated per caller, code and action: the first in full, the rest counted",
          "[audit][spool][aggregate]") {
  Fixture f;
  std::uint64_t seq_before = f.spool->last_seq();
  for (int i = 0; i < 50; ++i) {
    // Varying the reference does not defeat the aggregation.
    REQUIRE(f.recorder->record(decision("intruder", Decision::deny, "op://x/y/z" + std::to_string(i % 12))));
  }
  CHECK(f.spool->last_seq() - seq_before == 1);  // the first, in full
  CHECK(f.recorder->aggregated() == 49);
  // Another code, or an allowed decision, of the same caller is its own.
  Event other = decision("intruder", Decision::deny);
  other.code = "bad_request";
  REQUIRE(f.recorder->record(other));
  REQUIRE(f.recorder->record(decision("intruder", Decision::allow)));
  CHECK(f.spool->last_seq() - seq_before == 3);
  f.clock.advance(9s);
  f.recorder->flush();
  CHECK(f.spool->last_seq() - seq_before == 3);  // the window is still open
  f.clock.advance(2s);
  f.recorder->flush();  // the window ends: one aggregate event with the count
  auto events = f.recorder->query({std::string("intruder"), std::nullopt, 10});
  int aggregates = 0;
  for (const auto& e : events) {
    if (e.kind != Kind::aggregate) continue;
    ++aggregates;
    CHECK(e.count == 49);
    CHECK(e.uid == 1000);
    CHECK(e.code == "forbidden");
    CHECK(e.action == "retrieve");
    REQUIRE(e.first_at);
    REQUIRE(e.last_at);
    CHECK(*e.first_at <= *e.last_at);
    CHECK(e.refs.size() == chitty::audit::kAggregateRefs);  // some of the references, bounded
  }
  CHECK(aggregates == 1);  // "bad_request" came once: nothing to aggregate
  // The next window starts with a full event again.
  std::uint64_t seq = f.spool->last_seq();
  REQUIRE(f.recorder->record(decision("intruder", Decision::deny)));
  CHECK(f.spool->last_seq() == seq + 1);
  auto v = f.verify();
  INFO(v.problem);
  CHECK(v.ok);
}

TEST_CASE("what a refused caller sends is bounded in the trail; an aggregate names only what all its refusals share",
          "[audit][spool][aggregate]") {
  Fixture f;
  std::uint64_t before = f.spool->bytes();
  for (int i = 0; i < 100; ++i) {
    Event e = decision("svc", Decision::deny, "op://v/" + std::string(250, 'a' + static_cast<char>(i % 26)) + "/" +
                                                   std::string(250, '%') + "/" + std::to_string(i));
    e.reason = "may not read " + e.ref;
    e.pid = 100 + i % 2;  // two processes of one uid
    REQUIRE(f.recorder->record(e));
  }
  f.clock.advance(11s);
  f.recorder->flush();
  CHECK(f.spool->bytes() - before < 8 * 1024);  // one event in full and one aggregate
  for (const auto& e : f.recorder->query({std::nullopt, std::nullopt, 10})) {
    CHECK(e.ref.size() < 300);
    CHECK(e.reason.size() < 560);
    for (const auto& r : e.refs) CHECK(r.size() < 300);
    if (e.kind == Kind::aggregate) {
      CHECK(e.count == 99);
      CHECK(e.uid == 1000);
      CHECK(e.pid == -1);         // two processes: neither is named
      CHECK(e.service == "svc");  // all of them this service
    }
  }
}

TEST_CASE("many refused callers: beyond max_aggregates they are counted per code and action only",
          "[audit][spool][aggregate]") {
  Fixture f;
  std::uint64_t seq_before = f.spool->last_seq();
  // 1000 callers (uids), each refused 5 times in one window.
  for (int round = 0; round < 5; ++round) {
    for (int uid = 0; uid < 1000; ++uid) {
      Event e = decision("", Decision::deny, "op://guess/" + std::to_string(uid) + "/f");
      e.uid = 100000 + uid;
      REQUIRE(f.recorder->record(e));
    }
  }
  const std::uint64_t keys = chitty::audit::RecorderOptions{}.max_aggregates;
  CHECK(f.spool->last_seq() - seq_before == keys);  // the first refusal of each counted caller
  f.clock.advance(11s);
  f.recorder->flush();
  // Plus one aggregate per counted caller and one for everyone else.
  CHECK(f.spool->last_seq() - seq_before == 2 * keys + 1);
  std::uint64_t total = 0;
  bool overflow = false;
  for (const auto& e : f.recorder->query({std::nullopt, std::nullopt, 1000})) {
    if (e.kind == Kind::aggregate) total += e.count;
    if (e.kind == Kind::decision) total += 1;
    if (e.kind == Kind::aggregate && e.uid < 0) overflow = true;
  }
  CHECK(total == 5000);  // every refusal is accounted for
  CHECK(overflow);
}

TEST_CASE("spool pressure: the reserve is for allowed decisions and state events; refusals are only counted there",
          "[audit][spool][cap]") {
  Fixture f(64 * 1024, 24 * 1024, 1 << 20);
  // Refusals of many callers cannot push the spool into its reserve: past
  // max_aggregates callers they write nothing until their window ends.
  for (int i = 0; i < 2000; ++i) {
    Event e = decision("", Decision::deny);
    e.uid = 50000 + i;
    REQUIRE(f.recorder->record(e));
  }
  CHECK(f.recorder->room() == Spool::Room::normal);
  int allowed = 0;
  while (f.recorder->room() == Spool::Room::normal && f.recorder->record(decision("svc", Decision::allow))) ++allowed;
  CHECK(allowed > 5);
  REQUIRE(f.recorder->room() == Spool::Room::reserve);
  // In the reserve: refusals are counted, nothing written.
  std::uint64_t seq_before = f.spool->last_seq();
  for (int i = 0; i < 50; ++i) {
    Event e = decision("intruder", Decision::deny, "op://x/y/" + std::to_string(i));
    e.uid = 7000 + i;
    REQUIRE(f.recorder->record(e));
  }
  CHECK(f.spool->last_seq() - seq_before <= 1);  // (an alert on entering the reserve)
  // Allowed decisions still go in.
  seq_before = f.spool->last_seq();
  REQUIRE(f.recorder->record(decision("svc", Decision::allow)));
  CHECK(f.spool->last_seq() == seq_before + 1);
  // The window ends: the counts of before the reserve are written (2000
  // callers less the first max_aggregates, written one by one); the
  // reserve's own count, per code only, waits six windows.
  f.clock.advance(11s);
  f.recorder->flush();
  const std::uint64_t keys = chitty::audit::RecorderOptions{}.max_aggregates;
  auto aggregates = [&] {
    std::vector<Event> out;
    for (const auto& e : f.recorder->query({std::nullopt, std::nullopt, 100})) {
      if (e.kind == Kind::aggregate && e.uid < 0) out.push_back(e);
    }
    return out;
  };
  REQUIRE(aggregates().size() == 1);
  CHECK(aggregates()[0].count == 2000 - keys);
  CHECK(aggregates()[0].action == "retrieve");
  f.clock.advance(50s);
  f.recorder->flush();
  REQUIRE(aggregates().size() == 2);
  CHECK(aggregates()[1].count == 50);
  CHECK(aggregates()[1].action == "*");
  CHECK(aggregates()[1].refs.empty());  // no references: it costs little of the reserve
  // Fill the reserve with allowed decisions until nothing fits.
  while (f.recorder->record(decision("svc", Decision::allow))) {
  }
  CHECK(f.recorder->room() == Spool::Room::full);
  auto r = f.recorder->record(decision("svc", Decision::deny, "op://another/one/field"));
  REQUIRE_FALSE(r);
  CHECK_THAT(r.error().message, Catch::Contains("full"));
  CHECK(f.recorder->refused() > 0);
  auto v = f.verify();
  INFO(v.problem);
  CHECK(v.ok);
}

TEST_CASE("the journal export entry of an event", "[audit][shipper]") {
  Fixture f;
  REQUIRE(f.recorder->record(decision("svc", Decision::deny)));
  std::string line;
  f.spool->for_each_newest_first([&](std::string_view l) {
    line = std::string(l);
    return false;
  });
  std::string entry = chitty::audit::journal_export_entry(line);
  CHECK(entry.find("CHITTY_SERVICE=svc\n") != std::string::npos);
  CHECK(entry.find("CHITTY_DECISION=deny\n") != std::string::npos);
  CHECK(entry.find("CHITTY_SEQ=1\n") != std::string::npos);
  CHECK(entry.find("CHITTY_EVENT=" + line + "\n") != std::string::npos);
  CHECK(entry.find("__REALTIME_TIMESTAMP=") == 0);
  CHECK(entry.ends_with("\n\n"));
}

TEST_CASE("batched fsyncs run off the loop and complete on it; close syncs what is left", "[audit][spool]") {
  Fixture f(1 << 20, 16 * 1024, 1 << 20);  // one segment: no rotation syncs
  REQUIRE(f.recorder->record(decision("svc", Decision::allow)));
  CHECK(f.spool->dirty());  // fsync_events = 4: not yet
  for (int i = 0; i < 3; ++i) REQUIRE(f.recorder->record(decision("svc", Decision::allow)));
  // The fourth event asked for a sync, handed to the thread pool: the spool
  // counts as synced, and the request completes on the loop.
  CHECK_FALSE(f.spool->dirty());
  REQUIRE(f.recorder->record(decision("svc", Decision::allow)));
  CHECK(f.spool->dirty());
  f.loop.run();  // only the sync (the timer does not keep the loop alive)
  CHECK(f.spool->dirty());  // the fifth came after the sync was started
  f.recorder->close();
  CHECK_FALSE(f.spool->dirty());
  CHECK(f.verify().events == 5);
}

TEST_CASE("fsync_events = 1 syncs every event before record() returns", "[audit][spool]") {
  TempDir dir;
  ManualClock clock;
  chitty::loop::Loop loop;
  auto k = key();
  SpoolOptions options;
  options.dir = dir / "audit";
  Recovery recovery;
  auto spool = Spool::open(options, recovery);
  REQUIRE(spool);
  chitty::audit::RecorderOptions ro;
  ro.fsync_events = 1;
  {
    SpoolRecorder rec(loop, **spool, *k, clock, recovery, ro);
    for (int i = 0; i < 3; ++i) {
      REQUIRE(rec.record(decision("svc", Decision::allow)));
      CHECK_FALSE((*spool)->dirty());
    }
    rec.close();
  }
  spool->reset();
  REQUIRE(loop.close());
}

TEST_CASE("line_seq and line_mac read only lines shaped as the recorder writes them", "[audit][spool]") {
  using chitty::audit::line_mac;
  using chitty::audit::line_seq;
  std::string mac(64, 'a');
  std::string good = "{\"v\":1,\"id\":\"ab12\",\"seq\":42,\"prev\":\"0\",\"mac\":\"" + mac + "\"}";
  CHECK(line_seq(good) == 42);
  CHECK(line_mac(good) == mac);
  CHECK(line_seq("{\"v\":1,\"id\":\"x\",\"seq\":0,") == 0);
  // Found by the spool_recovery fuzzer: a damaged line whose "seq" had
  // leading zeros was taken for an event.
  CHECK_FALSE(line_seq("a000\"i1\",\"seq\":0000001243956972,\"at\":\"x\""));
  CHECK_FALSE(line_seq("{\"v\":1,\"id\":\"x\",\"seq\":007,"));
  CHECK_FALSE(line_seq("{\"v\":2,\"id\":\"x\",\"seq\":7,"));
  CHECK_FALSE(line_seq("{\"v\":1,\"id\":\"x\",\"seq\":7"));
  CHECK_FALSE(line_seq("{\"v\":1,\"id\":\"x\",\"seq\":99999999999999999999,"));  // 20 digits: overflow
  CHECK_FALSE(line_seq("{\"v\":1,\"id\":\"x\",\"other\":1,\"seq\":7,"));
  CHECK(line_mac(good.substr(0, good.size() - 1)).empty());
  std::string upper = good;
  upper[upper.size() - 3] = 'A';
  CHECK(line_mac(upper).empty());
}

TEST_CASE("every event kind and decision has the name the audit line and the docs use", "[audit]") {
  using chitty::audit::Decision;
  using chitty::audit::Kind;
  const std::pair<Kind, std::string_view> kinds[] = {
      {Kind::decision, "decision"}, {Kind::revoke, "revoke"}, {Kind::mode, "mode"},           {Kind::reload, "reload"},
      {Kind::start, "start"},       {Kind::stop, "stop"},     {Kind::aggregate, "aggregate"}, {Kind::alert, "alert"},
      {Kind::prefetch, "prefetch"}};
  for (auto [k, name] : kinds) CHECK(chitty::audit::kind_name(k) == name);
  const std::pair<Decision, std::string_view> decisions[] = {
      {Decision::allow, "allow"}, {Decision::deny, "deny"}, {Decision::error, "error"}, {Decision::none, "none"}};
  for (auto [d, name] : decisions) CHECK(chitty::audit::decision_name(d) == name);
}
