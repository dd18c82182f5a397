// Secrets served end to end by the real agent — from the environment and from
// systemd credentials — and what is left of them in the agent's memory
// afterwards: nothing. The memory scan reads every readable mapping of the
// agent through /proc/PID/mem and proves it looked (bytes read, a planted
// marker found), on both memory paths (memfd_secret and mlock).
#include <catch2/catch.hpp>

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "json_checks.hpp"
#include "json_reader.hpp"
#include "memory_scan.hpp"
#include "process.hpp"
#include "uds_client.hpp"

using namespace std::chrono_literals;
using chitty::testing::AgentProcess;
using chitty::testing::AgentSpec;
using chitty::testing::HttpResponse;
using chitty::testing::at;
using chitty::testing::encode;
using chitty::testing::Json;
using chitty::testing::parse;
using chitty::testing::Scan;
using chitty::testing::scan_memory;
using chitty::testing::TempDir;
using chitty::testing::UdsClient;

namespace {

bool is_root() { return geteuid() == 0; }

// A value nobody else could have: 40 random hex digits behind a prefix.
std::string random_secret(std::string_view prefix) {
  std::random_device rd;
  std::string s(prefix);
  static constexpr char kHex[] = "0123456789abcdef";
  for (int i = 0; i < 40; ++i) s += kHex[rd() % 16];
  return s;
}

const std::string kRef = "op://ChittyOS Integrations/OpenAI API/api_key";
const std::string kRefQuery = "op://ChittyOS%20Integrations/OpenAI%20API/api_key";
const std::string kCredRef = "op://ChittyOS Services/ChittyID Service Token/service_token";

// A catalog with one env-backed and one systemd-credential-backed entry,
// and a service for this uid that may read both.
std::string catalog_and_service() {
  return "[[credential]]\n"
         "type = \"openai_api_key\"\n"
         "ref = \"" + kRef + "\"\n"
         "env = \"OPENAI_API_KEY\"\n"
         "category = \"integration\"\n"
         "[[credential]]\n"
         "type = \"chittyid_service_token\"\n"
         "ref = \"" + kCredRef + "\"\n"
         "systemd_credential = \"chittyid-token\"\n"
         "category = \"service\"\n"
         "[[service]]\n"
         "name = \"tests\"\n"
         "uid = " + std::to_string(geteuid()) + "\n"
         "allow = [\"type:openai_api_key\", \"type:chittyid_service_token\"]\n"
         "rate_limit = \"100000/h\"\n";
}

HttpResponse send_one(const std::string& socket, const std::string& request) {
  UdsClient c(socket);
  REQUIRE(c.send(request));
  auto r = c.read_response();
  REQUIRE(r);
  return *r;
}

HttpResponse retrieve(const std::string& socket, const std::string& body) {
  return send_one(socket, "POST /api/onepassword/retrieve HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
}

// Lets an agent run as `uid` use `dir`: the socket in dir/run and the state
// directory, both its own (the agent refuses a socket directory others can
// write to).
AgentSpec spec_for_uid(const TempDir& dir, uid_t uid, std::vector<std::string> wrapper) {
  chmod(dir.path().c_str(), 0755);
  for (const char* sub : {"run", "state"}) {
    std::string p = dir / sub;
    REQUIRE(mkdir(p.c_str(), 0700) == 0);
    REQUIRE(chown(p.c_str(), uid, uid) == 0);
  }
  AgentSpec spec;
  spec.socket_name = "run/agent.sock";
  spec.config_mode = 0644;
  spec.wrapper = std::move(wrapper);
  spec.wrapper.insert(spec.wrapper.end(), {"setpriv", "--reuid=" + std::to_string(uid),
                                           "--regid=" + std::to_string(uid), "--clear-groups"});
  return spec;
}

std::string health_memory_backing(const std::string& socket) {
  auto r = chitty::testing::get(socket, "/health");
  REQUIRE(r);
  Json h = parse(r->body);
  return at(at(h, "memory"), "backing").text;
}

}  // namespace

TEST_CASE("with environment fallbacks off, the catalog's variables are still scrubbed and never served",
          "[integration][secrets]") {
  TempDir dir;
  const std::string secret = random_secret("sk-off-");
  AgentSpec spec;
  spec.rest = "[fallback]\nenv = false\n" + catalog_and_service();
  spec.env = {"OPENAI_API_KEY=" + secret, "UNRELATED_SETTING=keep-me"};
  AgentProcess agent(dir, spec);
  REQUIRE(agent.wait_ready());
  std::string environ_text = chitty::testing::read_file("/proc/" + std::to_string(agent.pid()) + "/environ");
  CHECK(environ_text.find(secret) == std::string::npos);
  CHECK(environ_text.find("OPENAI_API_KEY") == std::string::npos);
  CHECK(environ_text.find("UNRELATED_SETTING=keep-me") != std::string::npos);  // the rest is intact
  HttpResponse r = retrieve(agent.socket(), R"({"credential_type":"openai_api_key","context":{"purpose":"api-call"}})");
  CHECK(r.status == 404);
  CHECK(r.body.find(secret) == std::string::npos);
  CHECK_THAT(agent.log(), Catch::Contains("scrubbed from the environment, not imported"));
}

TEST_CASE("a secret from the environment is served through curl, with its cache headers and source",
          "[integration][secrets]") {
  TempDir dir;
  const std::string secret = random_secret("sk-test-");
  AgentSpec spec;
  spec.rest = catalog_and_service();
  spec.env = {"OPENAI_API_KEY=" + secret};
  AgentProcess agent(dir, spec);
  REQUIRE(agent.wait_ready());

  auto first = chitty::testing::curl(agent.socket(), "/api/onepassword/retrieve",
                                     {"-H", "Content-Type: application/json", "--data",
                                      R"({"credential_type":"openai_api_key","context":{"purpose":"api-call"}})"});
  INFO(first.err);
  REQUIRE(first.exit_code == 0);
  CHECK(first.out.find("X-Cache: MISS") != std::string::npos);
  CHECK(first.out.find("X-Chitty-Mode: normal") != std::string::npos);
  CHECK(first.out.find("Age: 0") != std::string::npos);
  CHECK(first.out.find("Cache-Control: no-store") != std::string::npos);
  Json body = parse(first.out.substr(first.out.find("\r\n\r\n") + 4));
  CHECK(at(body, "success").boolean);
  const Json& cred = at(body, "credential");
  CHECK(at(cred, "value").text == secret);
  CHECK(at(cred, "masked_value").text == "…" + secret.substr(secret.size() - 4));
  CHECK(at(cred, "source").text == "env");
  CHECK(at(cred, "ref").text == kRef);
  CHECK(at(at(body, "metadata"), "cache").text == "miss");

  // The same value by reference, now from the cache, as raw text.
  auto raw = chitty::testing::curl(agent.socket(), "/v1/secret?ref=" + kRefQuery);
  REQUIRE(raw.exit_code == 0);
  CHECK(raw.out.find("X-Cache: HIT") != std::string::npos);
  CHECK(raw.out.substr(raw.out.find("\r\n\r\n") + 4) == secret);

  // A forced refresh fetches again (MISS), on GET and on POST.
  auto refreshed = chitty::testing::curl(agent.socket(), "/v1/secret?refresh=true&ref=" + kRefQuery);
  CHECK(refreshed.out.find("X-Cache: MISS") != std::string::npos);
  auto refreshed_post = retrieve(agent.socket(), R"({"credential_type":"openai_api_key","refresh":true})");
  CHECK(refreshed_post.header("X-Cache") == "MISS");

  // /health counts what happened.
  auto h = chitty::testing::get(agent.socket(), "/health");
  REQUIRE(h);
  Json health = parse(h->body);
  const Json& cache = at(health, "cache");
  CHECK(at(cache, "entries").text == "1");
  CHECK(at(cache, "hits").text == "1");
  CHECK(at(health, "mode").text == "normal");
  const Json& memory = at(health, "memory");
  CHECK(std::stoull(at(memory, "locked_bytes_used").text) > 0);
  CHECK(std::stoull(at(memory, "locked_bytes_available").text) > 0);
}

TEST_CASE("a secret from a systemd credential file is served with source systemd-credential",
          "[integration][secrets]") {
  TempDir dir;
  TempDir creds;
  const std::string secret = random_secret("cred-");
  creds.write("chittyid-token", secret + "\n", 0400);
  AgentSpec spec;
  spec.rest = catalog_and_service();
  spec.env = {"CREDENTIALS_DIRECTORY=" + creds.path()};
  AgentProcess agent(dir, spec);
  REQUIRE(agent.wait_ready());

  HttpResponse r = retrieve(agent.socket(), R"({"credential_type":"chittyid_service_token"})");
  REQUIRE(r.status == 200);
  Json body = parse(r.body);
  CHECK(at(at(body, "credential"), "value").text == secret);  // the trailing newline is not part of it
  CHECK(at(at(body, "credential"), "source").text == "systemd-credential");

  // A catalog type whose variable was never set: known, but no source can
  // give it now (503, naming the variable); an unknown type is a 404.
  HttpResponse missing = retrieve(agent.socket(), R"({"credential_type":"openai_api_key"})");
  CHECK(missing.status == 503);
  CHECK(at(at(parse(missing.body), "error"), "code").text == "upstream_unavailable");
  CHECK(missing.body.find("OPENAI_API_KEY") != std::string::npos);
  HttpResponse unknown = retrieve(agent.socket(), R"({"credential_type":"no_such_type"})");
  CHECK(unknown.status == 404);
  CHECK(at(at(parse(unknown.body), "error"), "code").text == "not_found");
}

TEST_CASE("a caller outside every [[service]] gets 403 and no value", "[integration][secrets]") {
  if (!is_root()) {
    WARN("skipped: needs root to run a client as another uid");
    return;
  }
  TempDir dir;
  chmod(dir.path().c_str(), 0755);
  const std::string secret = random_secret("sk-");
  AgentSpec spec;
  spec.settings = "socket_mode = \"0666\"\nsocket_world_accessible = true";
  spec.rest = catalog_and_service();
  spec.env = {"OPENAI_API_KEY=" + secret};
  AgentProcess agent(dir, spec);
  REQUIRE(agent.wait_ready());
  auto r = chitty::testing::run({"setpriv", "--reuid=4321", "--regid=4321", "--clear-groups", "curl", "--silent",
                                 "--unix-socket", agent.socket(), "http://localhost/v1/secret?ref=" + kRefQuery});
  REQUIRE(r.exit_code == 0);
  CHECK(r.out.find(secret) == std::string::npos);
  Json body = parse(r.out);
  CHECK(at(at(body, "error"), "code").text == "forbidden");
}

TEST_CASE("no plaintext of a served secret stays in the agent's memory, on both memory paths",
          "[integration][secrets][memory]") {
  if (!is_root()) {
    WARN("skipped: reading a non-dumpable process's memory needs root (CAP_SYS_PTRACE)");
    return;
  }
  for (bool force_mlock : {false, true}) {
    INFO("memory path: " << (force_mlock ? "mlock (memfd_secret forced off)" : "memfd_secret where the kernel has it"));
    TempDir dir;
    TempDir creds;
    const std::string env_secret = random_secret("envsecret-");
    const std::string cred_secret = random_secret("credsecret-");
    creds.write("chittyid-token", cred_secret, 0400);
    AgentSpec spec;
    spec.rest = catalog_and_service();
    spec.env = {"OPENAI_API_KEY=" + env_secret, "CREDENTIALS_DIRECTORY=" + creds.path()};
    if (force_mlock) spec.env.push_back("CHITTY_TEST_NO_MEMFD_SECRET=1");
    AgentProcess agent(dir, spec);
    REQUIRE(agent.wait_ready());
    // A sanitizer runtime reads /proc/self/environ into a buffer of its own
    // before main(), so under ASan the initial environment (the env secret
    // with it) has one copy the agent never sees. Count it before serving;
    // serving must add nothing. A normal build must have none at all.
    const char* sanitizer = std::getenv("CHITTY_TEST_SANITIZER");
    const bool sanitized = sanitizer != nullptr && std::string_view(sanitizer) != "none" && *sanitizer != '\0';
    Scan before = scan_memory(agent.pid(), {env_secret, cred_secret});
    CHECK(before.hits[1] == 0);
    if (!sanitized) CHECK(before.hits[0] == 0);
    std::string backing = health_memory_backing(agent.socket());
    if (force_mlock) {
      CHECK(backing == "mlock");
    } else {
      CHECK((backing == "memfd_secret" || backing == "mlock"));  // mlock on kernels without secretmem
    }

    // Serve both secrets several ways: miss, hit, raw, pipelined on one connection.
    for (int i = 0; i < 3; ++i) {
      HttpResponse a = retrieve(agent.socket(), R"({"credential_type":"openai_api_key"})");
      REQUIRE(a.status == 200);
      REQUIRE(a.body.find(env_secret) != std::string::npos);
      HttpResponse b = retrieve(agent.socket(), R"({"credential_type":"chittyid_service_token"})");
      REQUIRE(b.status == 200);
      REQUIRE(b.body.find(cred_secret) != std::string::npos);
    }
    {
      UdsClient c(agent.socket());
      std::string get = "GET /v1/secret?ref=" + kRefQuery + " HTTP/1.1\r\nHost: x\r\n\r\n";
      REQUIRE(c.send(get + get + get));
      for (int i = 0; i < 3; ++i) {
        auto r = c.read_response();
        REQUIRE(r);
        REQUIRE(r->body == env_secret);
      }
    }
    // Every response has been read. The agent wipes a response in its write
    // callback, which libuv runs on the loop turn after the bytes left; one
    // more request on a new connection means those turns have passed.
    REQUIRE(chitty::testing::get(agent.socket(), "/health"));
    // The config path is in ordinary memory: the marker that proves the scan
    // sees the agent's data.
    Scan s = scan_memory(agent.pid(), {env_secret, cred_secret, agent.config_path()});
    INFO("read " << s.bytes_read << " bytes in " << s.regions_read << " mappings; " << s.regions_unreadable
                 << " unreadable, " << s.regions_skipped << " skipped");
    CHECK(s.bytes_read > 1'000'000);
    CHECK(s.regions_read >= 10);
    CHECK(s.hits[2] > 0);  // the planted marker: the scan really reads the agent's heap
    CHECK(s.hits[0] == before.hits[0]);  // 0 unless a sanitizer runtime holds its copy of the environment
    CHECK(s.hits[1] == 0);
    if (force_mlock) {
      // Without memfd_secret the arena itself is readable, and was read:
      // what it holds is sealed.
      CHECK(s.bytes_read > 7'000'000);
    }

    // The environment it was given no longer shows the value.
    std::string environ_text = chitty::testing::read_file("/proc/" + std::to_string(agent.pid()) + "/environ");
    CHECK(environ_text.find(env_secret) == std::string::npos);
    CHECK(environ_text.find("OPENAI_API_KEY") == std::string::npos);
    CHECK(environ_text.find("CREDENTIALS_DIRECTORY=") != std::string::npos);  // the rest is intact
    CHECK(agent.stop(SIGTERM) == 0);
  }
}

TEST_CASE("the agent is not dumpable and has no core limit", "[integration][secrets][hardening]") {
  if (!is_root()) {
    WARN("skipped: needs root to run the agent as another uid");
    return;
  }
  // Run as an ordinary uid: for a non-dumpable process the kernel hands its
  // /proc/PID files to root, which is the outside view of PR_SET_DUMPABLE 0.
  TempDir dir;
  AgentSpec spec = spec_for_uid(dir, 4322, {});
  spec.rest = "[cache]\nmax_locked_bytes = \"64KiB\"\ntransient_locked_bytes = \"64KiB\"\n";
  AgentProcess agent(dir, spec);
  REQUIRE(agent.wait_ready());
  struct stat st {};
  REQUIRE(stat(("/proc/" + std::to_string(agent.pid()) + "/environ").c_str(), &st) == 0);
  CHECK(st.st_uid == 0);
  std::string status = chitty::testing::read_file("/proc/" + std::to_string(agent.pid()) + "/status");
  CHECK(status.find("Uid:\t4322") != std::string::npos);  // it does run as 4322
  std::string limits = chitty::testing::read_file("/proc/" + std::to_string(agent.pid()) + "/limits");
  std::istringstream in(limits);
  std::string line;
  bool core_zero = false;
  while (std::getline(in, line)) {
    if (line.rfind("Max core file size", 0) == 0) {
      std::istringstream fields(line.substr(std::strlen("Max core file size")));
      std::string soft, hard;
      fields >> soft >> hard;
      core_zero = soft == "0" && hard == "0";
    }
  }
  CHECK(core_zero);
}

TEST_CASE("too little RLIMIT_MEMLOCK: the agent refuses to start and says how to fix it", "[integration][secrets]") {
  if (!is_root()) {
    WARN("skipped: needs root to drop to a uid without CAP_IPC_LOCK");
    return;
  }
  TempDir dir;
  AgentSpec spec = spec_for_uid(dir, 4323, {"prlimit", "--memlock=65536"});
  AgentProcess agent(dir, spec);
  auto code = agent.wait_exit(10s);
  REQUIRE(code);
  CHECK(*code != 0);
  std::string log = agent.log();
  INFO(log);
  CHECK(log.find("RLIMIT_MEMLOCK is 64KiB") != std::string::npos);
  CHECK(log.find("LimitMEMLOCK=") != std::string::npos);
  CHECK(log.find("allow_unlocked_memory") != std::string::npos);
  CHECK_FALSE(chitty::testing::can_connect(agent.socket()));

  // With the explicit opt-in it runs, and says the memory is not locked.
  TempDir dir2;
  AgentSpec spec2 = spec_for_uid(dir2, 4323, {"prlimit", "--memlock=65536"});
  spec2.rest = "[cache]\nallow_unlocked_memory = true\n";
  AgentProcess unlocked(dir2, spec2);
  REQUIRE(unlocked.wait_ready());
  CHECK(health_memory_backing(unlocked.socket()) == "unlocked");
  CHECK(unlocked.log().find("NOT locked") != std::string::npos);
}

TEST_CASE("a client that pipelines secret requests and never reads pins a bounded amount of plaintext",
          "[integration][secrets][limits]") {
  // 8 KiB values: once the socket buffer is full the agent keeps at most
  // max_secret_responses_per_connection answers (12 KiB blocks) waiting and
  // reads no further requests — before its general limit on unwritten
  // output (64 KiB per connection) would stop it.
  TempDir dir;
  std::string big = random_secret("big-");
  while (big.size() < 8 * 1024) big += big.substr(0, std::min<std::size_t>(big.size(), 8 * 1024 - big.size()));
  AgentSpec spec;
  spec.settings = "max_secret_responses_per_connection = 2\nmax_pipelined_requests = 64\nwrite_timeout = \"30s\"";
  spec.rest = catalog_and_service();
  spec.env = {"OPENAI_API_KEY=" + big};
  AgentProcess agent(dir, spec);
  REQUIRE(agent.wait_ready());
  auto used = [&] {
    auto h = chitty::testing::get(agent.socket(), "/health");
    REQUIRE(h);
    return std::stoull(at(at(parse(h->body), "memory"), "locked_bytes_used").text);
  };
  REQUIRE(retrieve(agent.socket(), R"({"credential_type":"openai_api_key"})").status == 200);  // cached now
  const auto baseline = used();

  constexpr int kRequests = 300;
  UdsClient hog(agent.socket());
  std::string get = "GET /v1/secret?ref=" + kRefQuery + " HTTP/1.1\r\nHost: x\r\n\r\n";
  std::string many;
  for (int i = 0; i < kRequests; ++i) many += get;
  REQUIRE(hog.send(many));
  std::this_thread::sleep_for(300ms);
  const auto pinned = used() - baseline;
  INFO("locked bytes pinned by the client: " << pinned);
  CHECK(pinned > 0);                 // the socket is full: answers do wait
  CHECK(pinned <= 3 * 12 * 1024);    // two waiting, at most one being built; 300 would be 3.6 MiB
  CHECK(agent.running());
  // Reading them all drains everything, and the memory comes back.
  for (int i = 0; i < kRequests; ++i) {
    auto r = hog.read_response(10s);
    REQUIRE(r);
    REQUIRE(r->body.size() == big.size());
  }
  CHECK(used() == baseline);
}
