// The risk engine against a labelled trace (docs/risk.md, "Evaluation"):
// simulated weeks of benign traffic from several services — office-hours
// and round-the-clock ones, a daily restart that reads the whole set at
// once, a weekly deploy that changes the executable, two services arriving
// part-way — with abuse of each kind injected in the last week, fed to
// risk::Engine on a simulated clock the way the broker will (a request in
// the step-up or deny band is refused; policy refuses what the service may
// not read). Prints the share of benign requests flagged and refused, each
// abuse kind's detection (flagged: monitor or above; denied) and delay, and
// what assess() + record() cost per request.
//
//   risk_eval [--weeks N] [--seed S] [--check]
//
// --check exits 1 when a target is missed: benign requests refused under
// 0.1%, every abuse kind flagged, enumeration denied within 10 requests and
// 1 s.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "chitty/risk/engine.hpp"

using namespace std::chrono_literals;
using chitty::Duration;
using chitty::MonoTime;
using chitty::WallTime;
using chitty::risk::Band;
using chitty::risk::Engine;
using chitty::risk::Outcome;
using chitty::risk::Request;

namespace {

class SimClock final : public chitty::Clock {
 public:
  // Monday 2026-11-23T00:00:00Z.
  SimClock() : start_(std::chrono::seconds(1795392000)) {}
  MonoTime now() const noexcept override { return MonoTime(at_); }
  WallTime wall_now() const noexcept override { return start_ + at_; }
  void set(Duration since_start) noexcept { at_ = since_start; }

 private:
  WallTime start_;
  Duration at_{0};
};

enum class Kind { benign, enumeration, off_hours, stolen_executable, burst, outside_set };
constexpr const char* kKindNames[] = {"benign", "enumeration", "off-hours reads", "stolen executable",
                                      "burst", "outside its usual set"};
constexpr int kAbuseKinds = 5;

struct Event {
  Duration at;
  int service;       // index into services
  std::string ref;
  std::int64_t uid;
  std::string exe;
  Kind kind;
  int instance;      // which injected abuse (0 for benign)
  bool allowed;      // policy lets the service read it
  bool exists = true;
};

struct Service {
  std::string name;
  std::int64_t uid;
  bool office;                 // office hours (weekdays 08-18 UTC) or round the clock
  Duration arrives;            // when it first runs
  std::vector<std::string> refs;      // what it reads
  std::vector<std::string> allowed;   // what policy lets it read (refs and a few more)
  std::string exe(int version) const {
    return "/opt/" + name + "/releases/v" + std::to_string(version) + "/bin/" + name;
  }
};

struct Args {
  int weeks = 3;
  unsigned seed = 1;
  bool check = false;
};

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--weeks") && i + 1 < argc) {
      a.weeks = std::max(2, std::atoi(argv[++i]));
    } else if (!std::strcmp(argv[i], "--seed") && i + 1 < argc) {
      a.seed = static_cast<unsigned>(std::atoi(argv[++i]));
    } else if (!std::strcmp(argv[i], "--check")) {
      a.check = true;
    } else {
      std::fprintf(stderr, "usage: risk_eval [--weeks N] [--seed S] [--check]\n");
      std::exit(2);
    }
  }
  return a;
}

// Requests per minute of a service at `t` (since Monday 00:00 UTC).
double rate(const Service& s, Duration t) {
  const auto minutes = std::chrono::duration_cast<std::chrono::minutes>(t).count();
  const int hour = static_cast<int>((minutes / 60) % 24);
  const int day = static_cast<int>((minutes / 1440) % 7);
  if (!s.office) return 1.5 + 0.5 * std::sin(2 * M_PI * hour / 24.0);
  const bool weekday = day < 5;
  if (weekday && hour >= 8 && hour < 18) return 3.0;
  return 0.01;  // a stray job now and then
}

std::vector<Service> make_services(std::mt19937& rng, Duration total) {
  std::vector<Service> out;
  for (int i = 0; i < 8; ++i) {
    Service s;
    s.name = "svc" + std::to_string(i + 1);
    s.uid = 61001 + i;
    s.office = i % 2 == 0;
    s.arrives = i == 6 ? total / 7 * 2 : i == 7 ? total / 7 * 4 : Duration(0);
    const int n = 4 + static_cast<int>(rng() % 9);
    for (int k = 0; k < n; ++k) s.refs.push_back("op://" + s.name + "/item" + std::to_string(k) + "/credential");
    s.allowed = s.refs;
    for (int k = 0; k < 12; ++k) s.allowed.push_back("op://" + s.name + "/spare" + std::to_string(k) + "/credential");
    out.push_back(std::move(s));
  }
  return out;
}

int version_at(Duration t) { return 1 + static_cast<int>(t / std::chrono::hours(24 * 7)); }

// Benign traffic: per minute, a Poisson number of reads of the service's
// references (the first few read most); a daily restart reads the whole set
// within two seconds; a weekly deploy (Monday 00:00) changes the executable.
void benign(const std::vector<Service>& services, Duration total, std::mt19937& rng, std::vector<Event>& out) {
  for (int si = 0; si < static_cast<int>(services.size()); ++si) {
    const Service& s = services[si];
    std::uniform_real_distribution<double> unit(0.0, 1.0);
    for (Duration t = s.arrives; t < total; t += 1min) {
      std::poisson_distribution<int> count(rate(s, t));
      for (int k = count(rng); k > 0; --k) {
        const auto at = t + std::chrono::duration_cast<Duration>(std::chrono::duration<double>(60.0 * unit(rng)));
        // Zipf-like: the first references far more often.
        const double u = unit(rng);
        const auto idx = static_cast<std::size_t>(std::pow(u, 2.5) * static_cast<double>(s.refs.size()));
        out.push_back(Event{at, si, s.refs[std::min(idx, s.refs.size() - 1)], s.uid, s.exe(version_at(at)),
                            Kind::benign, 0, true});
      }
    }
    // Daily restarts at a random time of the day (and the service's first start).
    for (Duration day = s.arrives; day < total; day += 24h) {
      const Duration at = day == s.arrives ? day : day + std::chrono::seconds(rng() % 86400);
      for (std::size_t k = 0; k < s.refs.size(); ++k) {
        const Duration when = at + std::chrono::milliseconds(150 * k);
        out.push_back(Event{when, si, s.refs[k], s.uid, s.exe(version_at(when)), Kind::benign, 0, true});
      }
    }
  }
}

// Abuse in the last week, each kind `per_kind` times at random moments.
void abuse(const std::vector<Service>& services, Duration total, std::mt19937& rng, std::vector<Event>& out,
           int per_kind) {
  const Duration last_week = total - 24h * 7;
  int instance = 0;
  auto when = [&](bool night) {
    Duration t = last_week + std::chrono::seconds(rng() % (86400 * 7 - 3600));
    if (night) {  // 02:00-04:00 UTC of that day
      t = t - (t % 24h) + 2h + std::chrono::seconds(rng() % 7200);
    }
    return t;
  };
  for (int n = 0; n < per_kind; ++n) {
    const int victim = static_cast<int>(rng() % 6);
    const Service& s = services[victim];
    const Service& other = services[(victim + 1) % 6];
    // Enumeration: guessing names, 50 ms apart; some exist and are allowed.
    ++instance;
    Duration t = when(false);
    for (int k = 0; k < 40; ++k) {
      Event e{t + k * 50ms, victim, "op://" + s.name + "/guess" + std::to_string(k) + "/credential", s.uid,
              s.exe(version_at(t)), Kind::enumeration, instance, k % 3 == 0};
      e.exists = k % 3 == 0;
      if (k % 3 == 0) e.ref = s.allowed[s.refs.size() + static_cast<std::size_t>(k / 3) % 12];
      out.push_back(e);
    }
    // Off-hours: an office service's own references read at night, from its own executable.
    ++instance;
    const int office = victim % 2 == 0 ? victim : (victim + 1) % 6;
    const Service& o = services[office];
    t = when(true);
    for (std::size_t k = 0; k < o.refs.size(); ++k) {
      out.push_back(Event{t + std::chrono::seconds(20 * k), office, o.refs[k], o.uid, o.exe(version_at(t)),
                          Kind::off_hours, instance, true});
    }
    // A stolen executable: the service's binary run by another uid, reading
    // the other service's references its (broad) rules happen to allow.
    ++instance;
    t = when(false);
    for (std::size_t k = 0; k < other.refs.size(); ++k) {
      out.push_back(Event{t + std::chrono::seconds(5 * k), victim, other.refs[k], 4242, s.exe(version_at(t)),
                          Kind::stolen_executable, instance, true});
    }
    // A burst: its own references, 50 a second for 10 s.
    ++instance;
    t = when(false);
    for (int k = 0; k < 500; ++k) {
      out.push_back(Event{t + k * 20ms, victim, s.refs[static_cast<std::size_t>(k) % s.refs.size()], s.uid,
                          s.exe(version_at(t)), Kind::burst, instance, true});
    }
    // Reading outside its usual set: allowed spares, one every 30 s.
    ++instance;
    t = when(false);
    for (int k = 0; k < 12; ++k) {
      out.push_back(Event{t + k * 30s, victim, s.allowed[s.refs.size() + static_cast<std::size_t>(k)], s.uid,
                          s.exe(version_at(t)), Kind::outside_set, instance, true});
    }
  }
}

struct Detection {
  bool flagged = false, denied = false;
  int requests_to_flag = 0, requests_to_deny = 0;
  Duration first{}, flag_at{}, deny_at{};
  int seen = 0;
};

double pct(std::uint64_t a, std::uint64_t b) { return b == 0 ? 0.0 : 100.0 * static_cast<double>(a) / static_cast<double>(b); }

double median(std::vector<double> v) {
  if (v.empty()) return NAN;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse_args(argc, argv);
  std::mt19937 rng(args.seed);
  const Duration total = std::chrono::hours(24 * 7 * args.weeks);
  const std::vector<Service> services = make_services(rng, total);
  std::vector<Event> events;
  benign(services, total, rng, events);
  abuse(services, total, rng, events, 10);
  // In time order; events at the same instant in the order generated.
  std::vector<std::size_t> order(events.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
    return events[a].at != events[b].at ? events[a].at < events[b].at : a < b;
  });

  SimClock clock;
  Engine engine(chitty::risk::Options{}, clock);
  std::uint64_t benign_total = 0, benign_flagged = 0, benign_refused = 0, benign_learning = 0;
  std::map<int, Detection> detections;  // by instance
  std::map<int, Kind> kind_of;
  std::array<std::uint64_t, 101> scores{};
  std::array<std::uint64_t, chitty::risk::kFactors> benign_factors{};  // in flagged benign requests
  auto spent = std::chrono::steady_clock::duration::zero();

  for (std::size_t i : order) {
    const Event& e = events[i];
    clock.set(e.at);
    const Service& s = services[static_cast<std::size_t>(e.service)];
    const std::string unit = s.name + ".service";  // outlives the request's view of it
    Request r;
    r.service = s.name;
    r.ref = e.ref;
    r.uid = e.uid;
    r.exe = e.exe;
    r.unit = unit;
    const auto t0 = std::chrono::steady_clock::now();
    const auto a = engine.assess(r);
    Outcome outcome = a.band == Band::monitor ? Outcome::monitored : Outcome::served;
    if (a.band == Band::step_up || a.band == Band::deny) {
      outcome = Outcome::refused;
    } else if (!e.exists) {
      outcome = Outcome::not_found;
    } else if (!e.allowed) {
      outcome = Outcome::forbidden;
    }
    engine.record(r, outcome);
    spent += std::chrono::steady_clock::now() - t0;
    ++scores[static_cast<std::size_t>(a.score)];

    if (e.kind == Kind::benign) {
      ++benign_total;
      if (a.learning) ++benign_learning;
      if (a.band != Band::allow) {
        ++benign_flagged;
        for (const auto& f : a.fired) {
          if (f.weight > 0) ++benign_factors[static_cast<std::size_t>(f.factor)];
        }
      }
      if (a.band == Band::step_up || a.band == Band::deny) ++benign_refused;
      continue;
    }
    kind_of[e.instance] = e.kind;
    Detection& d = detections[e.instance];
    if (d.seen++ == 0) d.first = e.at;
    if (!d.flagged && a.band != Band::allow) {
      d.flagged = true;
      d.requests_to_flag = d.seen;
      d.flag_at = e.at;
    }
    if (!d.denied && a.band == Band::deny) {
      d.denied = true;
      d.requests_to_deny = d.seen;
      d.deny_at = e.at;
    }
  }

  const std::size_t n = events.size();
  std::printf("risk_eval: %d weeks, seed %u, %zu services, %zu requests (%llu benign, %llu of them while learning)\n",
              args.weeks, args.seed, services.size(), n, static_cast<unsigned long long>(benign_total),
              static_cast<unsigned long long>(benign_learning));
  std::printf("benign requests flagged (monitor or above): %llu (%.3f%%); refused (step-up or deny): %llu (%.3f%%)\n",
              static_cast<unsigned long long>(benign_flagged), pct(benign_flagged, benign_total),
              static_cast<unsigned long long>(benign_refused), pct(benign_refused, benign_total));
  std::printf("factors in flagged benign requests:");
  for (std::size_t f = 0; f < chitty::risk::kFactors; ++f) {
    if (benign_factors[f] > 0) {
      std::printf(" %s %llu", std::string(chitty::risk::factor_name(static_cast<chitty::risk::Factor>(f))).c_str(),
                  static_cast<unsigned long long>(benign_factors[f]));
    }
  }
  std::printf("\n");
  std::printf("%-24s %9s %8s %7s %16s %16s\n", "abuse kind", "instances", "flagged", "denied", "to flag (req/s)",
              "to deny (req/s)");
  bool ok = pct(benign_refused, benign_total) < 0.1;
  for (int k = 1; k <= kAbuseKinds; ++k) {
    int inst = 0, flagged = 0, denied = 0;
    std::vector<double> fr, fs, dr, ds;
    for (const auto& [i, d] : detections) {
      if (static_cast<int>(kind_of[i]) != k) continue;
      ++inst;
      if (d.flagged) {
        ++flagged;
        fr.push_back(d.requests_to_flag);
        fs.push_back(std::chrono::duration<double>(d.flag_at - d.first).count());
      }
      if (d.denied) {
        ++denied;
        dr.push_back(d.requests_to_deny);
        ds.push_back(std::chrono::duration<double>(d.deny_at - d.first).count());
      }
    }
    char to_flag[32] = "-", to_deny[32] = "-";
    if (!fr.empty()) std::snprintf(to_flag, sizeof to_flag, "%.0f / %.2f", median(fr), median(fs));
    if (!dr.empty()) std::snprintf(to_deny, sizeof to_deny, "%.0f / %.2f", median(dr), median(ds));
    std::printf("%-24s %9d %8d %7d %16s %16s\n", kKindNames[k], inst, flagged, denied, to_flag, to_deny);
    if (flagged < inst) ok = false;
    if (static_cast<Kind>(k) == Kind::enumeration) {
      for (const auto& [i, d] : detections) {
        if (kind_of[i] == Kind::enumeration &&
            (!d.denied || d.requests_to_deny > 10 || d.deny_at - d.first > std::chrono::seconds(1))) {
          ok = false;
        }
      }
    }
  }
  std::printf("score distribution: ");
  for (int lo : {0, 10, 30, 50, 70}) {
    const int hi = lo == 0 ? 9 : lo == 10 ? 29 : lo == 30 ? 49 : lo == 50 ? 69 : 100;
    std::uint64_t c = 0;
    for (int sc = lo; sc <= hi; ++sc) c += scores[static_cast<std::size_t>(sc)];
    std::printf("%d-%d: %.3f%%  ", lo, hi, pct(c, n));
  }
  std::printf("\nassess + record: %.0f ns per request (mean over %zu)\n",
              std::chrono::duration<double, std::nano>(spent).count() / static_cast<double>(n), n);
  std::printf("targets: %s\n", ok ? "met" : "NOT MET");
  return args.check && !ok ? 1 : 0;
}
