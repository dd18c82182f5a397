// The prediction replay in one process, in a second: a trace from
// bench/predict/trace.py (JSON lines) fed to the real predict::Model and
// Prefetcher on the real broker and cache, with a manual clock and an
// upstream that answers each fetch after a simulated latency. It reports the
// figures bench/predict/replay.py reports (hit rate over predictable reads,
// misses by class, item fetches against those needed, by kind of reference,
// prefetches by kind) — for tuning the predictor without the nine-minute
// replay. The real replay stays the measurement (bench/README.md, "Prediction
// simulator").
//
//   python3 bench/predict/trace.py --seed 1 > /tmp/trace1.jsonl
//   ./build/bench/predict_sim /tmp/trace1.jsonl [--latency-ms 80] [--factor 20] [--off] [--verbose] [--jitter-seed N]
//
// Time is trace time throughout; the agent's windows are the replay's (in
// trace seconds) and the upstream's latency is the replay's (real ms times
// the compression factor). A fetch is one item GET, preceded by the item
// look-up by title when the reference was last resolved more than the
// replay's resolution TTL ago (as the Connect provider does).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "chitty/audit/audit.hpp"
#include "chitty/broker/broker.hpp"
#include "chitty/cache/cache.hpp"
#include "chitty/catalog/catalog.hpp"
#include "chitty/policy/gate.hpp"
#include "chitty/policy/rules.hpp"
#include "chitty/predict/model.hpp"
#include "chitty/predict/prefetcher.hpp"
#include "chitty/secure/arena.hpp"
#include "chitty/secure/sealer.hpp"
#include "chitty/upstream/provider.hpp"
#include "manual_clock.hpp"

using namespace chitty;
using namespace std::chrono_literals;

namespace {

// The replay's windows and TTLs, in trace seconds (bench/predict/replay.py).
constexpr double kTtl = 300.0;
constexpr double kStartupWindow = 120.0;
constexpr double kCoaccessWindow = 30.0;
constexpr double kPeriodicLead = 40.0;
constexpr double kResolutionTtl = 600.0;

Duration secs(double s) { return std::chrono::duration_cast<Duration>(std::chrono::duration<double>(s)); }
double to_secs(Duration d) { return std::chrono::duration<double>(d).count(); }

struct TraceRead {
  double t = 0;
  std::string service;
  int run = 0;
  std::string ref;
  std::string cls;
  bool first_ever = false;
  bool run_first = false;
  bool predictable = false;
};

// A field of one flat JSON object line (the trace's reads: no nesting, no
// escaped quotes).
std::string field(std::string_view line, std::string_view key) {
  const std::string k = "\"" + std::string(key) + "\": ";
  auto at = line.find(k);
  if (at == std::string_view::npos) throw std::runtime_error("trace line without " + std::string(key));
  at += k.size();
  if (line[at] == '"') {
    auto end = line.find('"', at + 1);
    return std::string(line.substr(at + 1, end - at - 1));
  }
  auto end = line.find_first_of(",}", at);
  return std::string(line.substr(at, end - at));
}

std::vector<TraceRead> load(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot open " + path);
  std::vector<TraceRead> out;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line.rfind("{\"params\"", 0) == 0) continue;
    TraceRead r;
    r.t = std::stod(field(line, "t"));
    r.service = field(line, "service");
    r.run = std::stoi(field(line, "run"));
    r.ref = field(line, "ref");
    r.cls = field(line, "class");
    r.first_ever = field(line, "first_ever") == "true";
    r.run_first = field(line, "run_first") == "true";
    r.predictable = field(line, "predictable") == "true";
    out.push_back(std::move(r));
  }
  return out;
}

// replay.py's klass(): the first read of a restarted service is its own class.
std::string klass(const TraceRead& r) {
  if (r.cls == "startup" && r.run_first && r.run > 0) return "restart-first";
  return r.cls;
}

// replay.py's ref_kind(): what a reference is for, from its item's title.
std::string ref_kind(const std::string& ref) {
  // op://Bench/svcN-<kind><n>/credential
  auto a = ref.find('/', 5);
  auto b = ref.find('/', a + 1);
  std::string title = ref.substr(a + 1, b - a - 1);
  std::string name = title.substr(title.find('-') + 1);
  if (name.rfind("chain", 0) == 0) return name.back() == 'a' ? "chain-head" : "chain-step";
  while (!name.empty() && std::isdigit(static_cast<unsigned char>(name.back()))) name.pop_back();
  if (name == "hot") return "hot";
  if (name == "start") return "start-up only";
  if (name == "cron") return "periodic";
  if (name == "misc") return "noise only";
  return "other";
}

// trace.py's needed_fetches(): per reference, a fetch at each read more than
// a TTL after the last such fetch.
std::map<std::string, int> needed_by_ref(const std::vector<TraceRead>& reads) {
  std::map<std::string, double> last;
  std::map<std::string, int> out;
  for (const TraceRead& r : reads) {
    auto it = last.find(r.ref);
    if (it == last.end() || r.t - it->second > kTtl) {
      ++out[r.ref];
      last[r.ref] = r.t;
    }
  }
  return out;
}

// An upstream that answers each fetch after the latency (two round trips
// when the reference must be looked up by title first).
class SimUpstream final : public upstream::Provider {
 public:
  SimUpstream(secure::Arena& arena, const Clock& clock, Duration latency)
      : arena_(arena), clock_(clock), latency_(latency) {}

  std::string_view source() const noexcept override { return "1password"; }
  bool holds(const catalog::Entry*) const noexcept override { return true; }
  void fetch(const upstream::FetchRequest& request, upstream::FetchDone done) override {
    const std::string ref = request.ref.canonical();
    const MonoTime now = clock_.now();
    Duration d = latency_;
    auto r = resolved_.find(ref);
    if (r == resolved_.end() || now - r->second >= secs(kResolutionTtl)) {
      d += latency_;
      resolved_[ref] = now + latency_;
    }
    ++fetches_by_ref[ref];
    fetch_times[ref].push_back(to_secs(now - MonoTime{}));
    pending_.emplace(now + d, Pending{ref, std::move(done)});
  }
  std::optional<MonoTime> next() const {
    if (pending_.empty()) return std::nullopt;
    return pending_.begin()->first;
  }
  // Answers every fetch due by now.
  void complete_due() {
    while (!pending_.empty() && pending_.begin()->first <= clock_.now()) {
      Pending p = std::move(pending_.begin()->second);
      pending_.erase(pending_.begin());
      secure::SecureBuffer b = secure::SecureBuffer::allocate(arena_, 16);
      if (!b.append("value-of-secret!")) throw std::runtime_error("no locked memory");
      p.done(std::move(b));
    }
  }

  std::map<std::string, int> fetches_by_ref;
  std::map<std::string, std::vector<double>> fetch_times;

 private:
  struct Pending {
    std::string ref;
    upstream::FetchDone done;
  };
  secure::Arena& arena_;
  const Clock& clock_;
  Duration latency_;
  std::map<std::string, MonoTime> resolved_;
  std::multimap<MonoTime, Pending> pending_;
};

struct Args {
  std::string trace;
  double latency_ms = 80;
  double factor = 20;
  bool predict = true;
  bool verbose = false;
  std::uint64_t seed = 1;  // of the refresh jitter
};

double percentile(std::vector<double> v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  const auto rank = static_cast<std::size_t>(std::max(1.0, std::ceil(p / 100.0 * static_cast<double>(v.size()))));
  return v[rank - 1];
}

int run(const Args& args) {
  const std::vector<TraceRead> reads = load(args.trace);
  testing::ManualClock clock;
  const MonoTime t0 = clock.now();

  policy::Rules rules;
  policy::Gate gate{rules, clock};
  secure::ArenaOptions ao;
  ao.capacity = 16 << 20;
  auto arena = std::move(*secure::Arena::create(ao));
  auto sealer = std::move(*secure::Sealer::create(*arena));
  cache::Options co;
  co.ttl = secs(kTtl);
  co.fallback_window = secs(3 * kTtl);
  cache::Cache cache(*arena, *sealer, clock, co);
  SimUpstream upstream(*arena, clock, secs(args.latency_ms / 1000.0 * args.factor));
  broker::Sources sources;
  sources.primaries.push_back(&upstream);
  broker::Broker broker(cache, sources, rules, gate, clock);

  auto cat = catalog::Catalog::build({});
  rules.set_catalog(std::make_shared<const catalog::Catalog>(std::move(*cat)));
  std::set<std::string> service_names;
  for (const TraceRead& r : reads) service_names.insert(r.service);
  std::map<std::string, std::int64_t> uid_of;
  std::vector<policy::ServiceSpec> specs;
  for (const std::string& name : service_names) {
    policy::ServiceSpec s;
    s.name = name;
    s.uid = 61000 + std::stoi(name.substr(3));
    uid_of[name] = *s.uid;
    s.allow = {"op://Bench/**"};  // what the model predicts is what the service read: allowed
    s.rate_limit = Rate{100000000, std::chrono::hours(1)};
    specs.push_back(std::move(s));
  }
  auto pol = policy::Policy::build(specs);
  if (!pol) throw std::runtime_error("policy: " + pol.error().message);
  rules.set_policy(std::make_shared<const policy::Policy>(std::move(*pol)));

  predict::Options mo;
  mo.startup_window = secs(kStartupWindow);
  mo.coaccess_window = secs(kCoaccessWindow);
  predict::Model model(mo, clock);
  predict::PrefetchOptions po;
  po.enabled = args.predict;
  po.periodic_lead = secs(kPeriodicLead);
  audit::MemoryRecorder audit(16);
  predict::Prefetcher prefetcher(model, broker, audit, clock, po);
  // The refresh jitter from a fixed seed: runs are repeatable.
  std::mt19937_64 rng(args.seed);
  prefetcher.set_jitter_source([&rng] { return std::uniform_real_distribution<double>(0.0, 1.0)(rng); });
  // The Predictor's timer: at the prefetcher's next tick, and at least every
  // (real) second.
  const Duration tick_ceiling = secs(args.factor);
  MonoTime tick_at = clock.now();
  broker.on_read([&](const broker::Read& r) {
    if (auto at = prefetcher.on_read(r); at && *at < tick_at) tick_at = *at;
  });

  struct Result {
    bool done = false;
    bool hit = false;
    double latency = 0;  // trace seconds
  };
  std::vector<Result> results(reads.size());
  auto advance_to = [&](MonoTime target) {
    for (;;) {
      MonoTime next = target;
      if (auto u = upstream.next(); u && *u < next) next = *u;
      if (args.predict && tick_at < next) next = tick_at;
      if (next > clock.now()) clock.advance(next - clock.now());
      upstream.complete_due();
      if (args.predict && tick_at <= clock.now()) {
        prefetcher.tick();
        tick_at = std::min(prefetcher.next_tick(), clock.now() + tick_ceiling);
        // Rounded up to the millisecond, as the agent's timer is.
        tick_at = t0 + std::chrono::ceil<std::chrono::milliseconds>(tick_at - t0);
      }
      if (clock.now() >= target && !(upstream.next() && *upstream.next() <= clock.now()) &&
          !(args.predict && tick_at <= clock.now())) {
        return;
      }
    }
  };

  for (std::size_t i = 0; i < reads.size(); ++i) {
    const TraceRead& r = reads[i];
    advance_to(t0 + secs(r.t));
    identity::Identity who;
    const auto uid = static_cast<uid_t>(uid_of[r.service]);
    who.raw_uid = uid;
    who.uid = identity::Fact<uid_t>::known(uid);
    who.pid = identity::Fact<pid_t>::known(static_cast<pid_t>(uid * 10 + r.run));
    who.exe = identity::Fact<std::string>::known("/usr/bin/svc");
    broker::Ask ask;
    ask.ref = *catalog::parse_reference(r.ref);
    const MonoTime asked = clock.now();
    broker.retrieve(who, std::move(ask), "sim", [&results, i, asked, &clock](broker::Answer a) {
      Result& res = results[i];
      res.done = true;
      if (!a.outcome) throw std::runtime_error("refused: " + a.outcome.error().message);
      res.hit = a.outcome->cache != broker::CacheState::miss;
      res.latency = to_secs(clock.now() - asked);

    });
  }
  advance_to(clock.now() + secs(60));

  // Figures.
  std::map<std::string, std::pair<int, int>> by_class;  // reads, misses
  int predictable = 0, predictable_hits = 0, all_hits = 0;
  std::vector<double> lat;
  for (std::size_t i = 0; i < reads.size(); ++i) {
    if (!results[i].done) throw std::runtime_error("a read was never answered");
    all_hits += results[i].hit;
    if (!reads[i].predictable) continue;
    ++predictable;
    predictable_hits += results[i].hit;
    auto& c = by_class[klass(reads[i])];
    ++c.first;
    c.second += !results[i].hit;
    // Caller latency in real ms: a hit costs about what the replay measures for one.
    lat.push_back(results[i].hit ? 0.7 : results[i].latency / args.factor * 1000.0);
  }
  const auto needed = needed_by_ref(reads);
  std::map<std::string, std::pair<int, int>> by_kind;  // fetched, needed
  int fetched = 0, needed_total = 0;
  for (const auto& [ref, n] : needed) {
    by_kind[ref_kind(ref)].second += n;
    needed_total += n;
  }
  for (const auto& [ref, n] : upstream.fetches_by_ref) {
    by_kind[ref_kind(ref)].first += n;
    fetched += n;
  }

  std::printf("%s @%g ms: predictable hit rate %.2f%% (%d/%d), all %.2f%%, p50 %.2f ms, p99 %.2f ms\n",
              args.predict ? "on" : "off", args.latency_ms, 100.0 * predictable_hits / predictable, predictable_hits,
              predictable, 100.0 * all_hits / static_cast<double>(reads.size()), percentile(lat, 50),
              percentile(lat, 99));
  std::printf("  misses:");
  for (const auto& [k, c] : by_class) std::printf(" %s %d/%d", k.c_str(), c.second, c.first);
  std::printf("\n  fetches %d / needed %d = %.3fx:", fetched, needed_total, static_cast<double>(fetched) / needed_total);
  for (const auto& [k, c] : by_kind) std::printf(" %s %d/%d", k.c_str(), c.first, c.second);
  std::printf("\n");
  if (args.predict) {
    std::printf("  prefetches issued/used/wasted:");
    for (auto k : {predict::Kind::refresh, predict::Kind::startup, predict::Kind::coaccess, predict::Kind::periodic}) {
      const auto& c = prefetcher.counts(k);
      std::printf(" %s %llu/%llu/%llu", std::string(predict::kind_name(k)).c_str(),
                  static_cast<unsigned long long>(c.issued), static_cast<unsigned long long>(c.used),
                  static_cast<unsigned long long>(c.wasted));
    }
    std::printf("\n");
  }
  if (args.verbose) {
    for (std::size_t i = 0; i < reads.size(); ++i) {
      if (!reads[i].predictable || results[i].hit) continue;
      const TraceRead& r = reads[i];
      std::printf("  miss t=%.1f %s run %d %s %s;", r.t, r.service.c_str(), r.run, klass(r).c_str(), r.ref.c_str());
      // The reference's reads and fetches before it (trace seconds).
      std::printf(" earlier reads:");
      int shown = 0;
      for (std::size_t j = i; j-- > 0 && shown < 6;) {
        if (reads[j].ref == r.ref) {
          std::printf(" %.1f", reads[j].t);
          ++shown;
        }
      }
      std::printf("; fetches:");
      for (double f : upstream.fetch_times[catalog::parse_reference(r.ref)->canonical()]) {
        const double at = f - to_secs(t0 - MonoTime{});
        if (at < r.t && at > r.t - 1000) std::printf(" %.1f", at);
      }
      std::printf("\n");
    }
    // Fetches per reference against needed.
    for (const auto& [ref, need] : needed) {
      const std::string key = catalog::parse_reference(ref)->canonical();
      const int n = upstream.fetches_by_ref.count(key) ? upstream.fetches_by_ref.at(key) : 0;
      if (n != need) std::printf("  fetched/needed %s %d/%d\n", ref.c_str(), n, need);
    }
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Args args;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&] {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "%s needs a value\n", a.c_str());
        std::exit(2);
      }
      return std::string(argv[++i]);
    };
    if (a == "--latency-ms") {
      args.latency_ms = std::stod(value());
    } else if (a == "--factor") {
      args.factor = std::stod(value());
    } else if (a == "--off") {
      args.predict = false;
    } else if (a == "--jitter-seed") {
      args.seed = std::stoull(value());
    } else if (a == "--verbose") {
      args.verbose = true;
    } else if (!a.empty() && a[0] != '-' && args.trace.empty()) {
      args.trace = a;
    } else {
      std::fprintf(stderr, "usage: predict_sim TRACE.jsonl [--latency-ms 80] [--factor 20] [--off] [--verbose] [--jitter-seed N]\n");
      return 2;
    }
  }
  if (args.trace.empty()) {
    std::fprintf(stderr, "usage: predict_sim TRACE.jsonl [--latency-ms 80] [--factor 20] [--off] [--verbose] [--jitter-seed N]\n");
    return 2;
  }
  try {
    return run(args);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "predict_sim: %s\n", e.what());
    return 1;
  }
}
