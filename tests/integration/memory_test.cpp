// Locked memory under pressure, against the real agent: a client that
// pipelines large secret answers and never reads them pins the arena's
// transient memory. While it does, and after it lets go, the cache must keep
// what it holds, freed memory must serve every size again, /health must
// report what can really be allocated, and an emergency token that cannot be
// checked for lack of memory is "busy" (503), never "wrong" (401).
#include <catch2/catch.hpp>

#include <signal.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "json_checks.hpp"
#include "json_reader.hpp"
#include "process.hpp"
#include "uds_client.hpp"

using namespace std::chrono_literals;
using chitty::testing::AgentProcess;
using chitty::testing::AgentSpec;
using chitty::testing::at;
using chitty::testing::encode;
using chitty::testing::HttpResponse;
using chitty::testing::Json;
using chitty::testing::parse;
using chitty::testing::TempDir;
using chitty::testing::UdsClient;

namespace {

// A printable value of exactly `n` bytes that no other value contains.
std::string value_of_size(const std::string& prefix, std::size_t n) {
  std::string v = prefix + "-";
  while (v.size() < n) v += static_cast<char>('a' + v.size() % 26);
  v.resize(n);
  return v;
}

struct Secret {
  std::string name;  // environment variable and credential type
  std::string ref;
  std::string value;
};

// Catalog entries backed by environment variables, and a service for this
// uid that may read them all.
std::string catalog_for(const std::vector<Secret>& secrets) {
  std::string out;
  for (const auto& s : secrets) {
    out += "[[credential]]\ntype = \"" + s.name + "\"\nref = \"" + s.ref + "\"\nenv = \"" + s.name +
           "\"\ncategory = \"service\"\n";
  }
  out += "[[service]]\nname = \"tests\"\nuid = " + std::to_string(geteuid()) +
         "\nallow = [\"op://Tests/**\"]\nrate_limit = \"100000/h\"\n";
  return out;
}

std::vector<std::string> environment_for(const std::vector<Secret>& secrets) {
  std::vector<std::string> env;
  for (const auto& s : secrets) env.push_back(s.name + "=" + s.value);
  return env;
}

std::string get_request(const Secret& s) {
  return "GET /v1/secret?ref=" + encode(s.ref) + " HTTP/1.1\r\nHost: x\r\n\r\n";
}

HttpResponse fetch(const std::string& socket, const Secret& s) {
  UdsClient c(socket);
  REQUIRE(c.send(get_request(s)));
  auto r = c.read_response(10s);
  REQUIRE(r);
  return *r;
}

Json health(const std::string& socket) {
  // (A sanitized agent writing a burst of large answers can take seconds.)
  auto h = chitty::testing::get(socket, "/health", 30s);
  REQUIRE(h);
  return parse(h->body);
}

std::uint64_t figure(const Json& h, std::string_view section, std::string_view key) {
  return std::stoull(at(at(h, section), key).text);
}

// Clients that pipeline requests for large answers and never read: once a
// socket buffer is full (some hundreds of KiB), the next answer waits in the
// agent's locked memory and the agent reads no more from that client. Many
// clients, then, to hold the whole arena.
struct Burst {
  std::vector<UdsClient> clients;
  Burst(const std::string& socket, const std::vector<Secret>& large, int connections, int per_connection) {
    for (int c = 0; c < connections; ++c) {
      clients.emplace_back(socket);
      std::string pipeline;
      for (int i = 0; i < per_connection; ++i) pipeline += get_request(large[(c + i) % large.size()]);
      REQUIRE(clients.back().send(pipeline));
    }
  }
};

// Waits until the agent's locked memory in use stops changing (the burst has
// taken what it can), and returns it.
std::uint64_t settled_use(const std::string& socket) {
  std::uint64_t last = 0;
  int same = 0;
  for (auto deadline = std::chrono::steady_clock::now() + 10s; std::chrono::steady_clock::now() < deadline;) {
    std::uint64_t now = figure(health(socket), "memory", "locked_bytes_used");
    same = now == last ? same + 1 : 0;
    last = now;
    if (same >= 3) break;
    std::this_thread::sleep_for(100ms);
  }
  return last;
}

// Waits until the locked memory in use is back at `baseline` (or below).
bool back_to(const std::string& socket, std::uint64_t baseline) {
  for (auto deadline = std::chrono::steady_clock::now() + 10s; std::chrono::steady_clock::now() < deadline;) {
    if (figure(health(socket), "memory", "locked_bytes_used") <= baseline) return true;
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

}  // namespace

TEST_CASE("a pinned burst of large answers leaves the cache whole and its memory usable by every size",
          "[integration][memory]") {
  // Small values cached before the burst, large ones for the burst, and
  // small ones of other sizes first asked for after it. Sizes vary, so an
  // allocator that kept freed memory per size would have none for them.
  std::vector<Secret> before, large, after;
  for (int i = 0; i < 24; ++i) {
    before.push_back({"BEFORE_" + std::to_string(i), "op://Tests/Before " + std::to_string(i) + "/value",
                      value_of_size("before" + std::to_string(i), 20 + 25 * i)});
    after.push_back({"AFTER_" + std::to_string(i), "op://Tests/After " + std::to_string(i) + "/value",
                     value_of_size("after" + std::to_string(i), 700 + 97 * i)});
  }
  for (std::size_t n : {40000, 20000, 10000, 5000}) {
    large.push_back({"LARGE_" + std::to_string(n), "op://Tests/Large " + std::to_string(n) + "/value",
                     value_of_size("large" + std::to_string(n), n)});
  }
  std::vector<Secret> all = before;
  all.insert(all.end(), large.begin(), large.end());
  all.insert(all.end(), after.begin(), after.end());

  for (bool force_mlock : {false, true}) {
    INFO("memory path: " << (force_mlock ? "mlock (memfd_secret forced off)" : "memfd_secret where the kernel has it"));
    TempDir dir;
    AgentSpec spec;
    spec.settings = "write_timeout = \"60s\"\nmax_pipelined_requests = 1024\nmax_connections_per_uid = 256";
    // A 640 KiB arena: the imported values and the cache take about a third.
    spec.rest = "[cache]\nmax_locked_bytes = \"512KiB\"\ntransient_locked_bytes = \"128KiB\"\n" + catalog_for(all);
    spec.env = environment_for(all);
    if (force_mlock) spec.env.push_back("CHITTY_TEST_NO_MEMFD_SECRET=1");
    AgentProcess agent(dir, spec);
    REQUIRE(agent.wait_ready());
    const std::string& sock = agent.socket();

    for (const auto& s : before) REQUIRE(fetch(sock, s).status == 200);
    for (const auto& s : large) REQUIRE(fetch(sock, s).status == 200);
    Json h0 = health(sock);
    const std::uint64_t entries_before = figure(h0, "cache", "entries");
    CHECK(entries_before == before.size() + large.size());
    const std::uint64_t baseline = figure(h0, "memory", "locked_bytes_used");

    {
      Burst burst(sock, large, 48, 256);
      const std::uint64_t pinned = settled_use(sock);
      INFO("locked bytes in use: " << baseline << " before the burst, " << pinned << " during it");
      REQUIRE(pinned > baseline + 200 * 1024);  // the burst really holds the arena
      // Not one more of the largest answers fits, and /health says so: the
      // largest block it reports is what one allocation can have.
      Json h1 = health(sock);
      CHECK(figure(h1, "memory", "largest_allocatable_block") < 40000);
      CHECK(figure(h1, "memory", "locked_bytes_available") >= figure(h1, "memory", "largest_allocatable_block"));
      CHECK(figure(h1, "cache", "entries") == entries_before);
      CHECK(figure(h1, "cache", "evictions") == 0);
    }  // the clients hang up: their answers are dropped and wiped
    REQUIRE(back_to(sock, baseline));

    // Every size is served from the memory the burst gave back: new values
    // are fetched and cached without evicting anything.
    for (const auto& s : after) {
      HttpResponse r = fetch(sock, s);
      INFO(s.name << ": " << r.status << " " << r.body.substr(0, 200));
      CHECK(r.status == 200);
      CHECK(r.header("X-Cache") == "MISS");
      CHECK(r.body == s.value);
    }
    Json h2 = health(sock);
    CHECK(figure(h2, "cache", "entries") == entries_before + after.size());
    CHECK(figure(h2, "cache", "evictions") == 0);
    for (const auto& s : before) {
      HttpResponse r = fetch(sock, s);
      CHECK(r.status == 200);
      CHECK(r.header("X-Cache") == "HIT");  // never evicted
    }
    // What /health calls available can be had: the freed memory is whole
    // again, so the largest block is the largest an allocation may be.
    Json h3 = health(sock);
    CHECK(figure(h3, "memory", "largest_allocatable_block") == 65536);
    CHECK(figure(h3, "memory", "locked_bytes_available") >= figure(h3, "memory", "largest_allocatable_block"));
    CHECK(fetch(sock, large.front()).status == 200);
    CHECK(agent.stop(SIGTERM) == 0);
  }
}

TEST_CASE("an emergency token that cannot be checked for lack of locked memory is 503, and costs no attempt",
          "[integration][memory][emergency]") {
  // The token is twice the size of the answers that fill the arena: once
  // they have taken it, no hole left is large enough to open the token into.
  const std::string token = value_of_size("sos", 16000);
  std::string wrong = token;
  wrong.back() = wrong.back() == 'x' ? 'y' : 'x';
  const Secret answer{"PAYLOAD", "op://Tests/Payload/value", value_of_size("payload", 8000)};
  TempDir dir;
  dir.write("emergency-token", token + "\n", 0600);
  AgentSpec spec;
  spec.settings =
      "write_timeout = \"60s\"\nmax_header_bytes = \"64KiB\"\nmax_pipelined_requests = 1024\nmax_connections_per_uid = 256";
  spec.rest =
      "[cache]\nmax_locked_bytes = \"64KiB\"\ntransient_locked_bytes = \"64KiB\"\n[emergency]\ntoken_file = \"" +
      (dir / "emergency-token") + "\"\n" + catalog_for({answer});
  spec.env = environment_for({answer});
  AgentProcess agent(dir, spec);
  REQUIRE(agent.wait_ready());
  const std::string& sock = agent.socket();
  auto clear_all = [&](const std::string& t) {
    std::string body = R"({"all":true})";
    UdsClient c(sock);
    REQUIRE(c.send("POST /api/onepassword/emergency-revoke/clear HTTP/1.1\r\nHost: x\r\nX-Emergency-Token: " + t +
                   "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body));
    auto r = c.read_response(10s);
    REQUIRE(r);
    return *r;
  };
  REQUIRE(fetch(sock, answer).status == 200);
  const std::uint64_t baseline = figure(health(sock), "memory", "locked_bytes_used");

  {
    Burst burst(sock, {answer}, 32, 512);
    const std::uint64_t pinned = settled_use(sock);
    Json h = health(sock);
    INFO("locked bytes in use: " << baseline << " before the burst, " << pinned << " during it; largest block "
                                 << figure(h, "memory", "largest_allocatable_block"));
    REQUIRE(figure(h, "memory", "largest_allocatable_block") < 16000);  // the burst holds the arena
    // More than the ten failures a process may have: none of them counts,
    // since none of them was a check.
    for (int i = 0; i < 12; ++i) {
      HttpResponse r = clear_all(wrong);
      INFO(r.body);
      CHECK(r.status == 503);
      CHECK(r.body.find("\"server_busy\"") != std::string::npos);
    }
    HttpResponse right = clear_all(token);
    CHECK(right.status == 503);  // the right token cannot be checked either
  }
  REQUIRE(back_to(sock, baseline));
  CHECK(clear_all(token).status == 200);  // nothing was charged: not locked out
  CHECK(clear_all(wrong).status == 401);  // and a wrong token is wrong again
}
