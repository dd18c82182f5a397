// The agent's configuration: defaults, loading TOML files into AgentConfig,
// every diagnostic with its file:line:column, the generated default file and
// the reference documentation.
#include "chitty/config/config.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include <catch2/catch.hpp>

#include "chitty/config/schema.hpp"

namespace chitty::config {

using namespace std::chrono_literals;
using Catch::Matchers::Contains;
using Catch::Matchers::StartsWith;

namespace {

constexpr std::string_view kFile = "agent.toml";

std::string describe(const std::vector<Diagnostic>& diagnostics) {
  std::string out;
  for (const auto& d : diagnostics) out += d.to_string() + "\n";
  return out;
}

// Loads a document that must be valid and returns its [agent] table.
AgentConfig load_ok(std::string_view toml) {
  LoadResult r = load_string(toml, kFile);
  if (!r) FAIL("unexpected diagnostics:\n" << describe(r.error()));
  CHECK(r->source == kFile);
  return r->agent;
}

// Loads a document that must be rejected and returns every diagnostic.
std::vector<Diagnostic> load_errors(std::string_view toml) {
  LoadResult r = load_string(toml, kFile);
  REQUIRE_FALSE(r.has_value());
  REQUIRE_FALSE(r.error().empty());
  for (const auto& d : r.error()) CHECK(d.file == kFile);
  return r.error();
}

// Loads a document that must be rejected with exactly one diagnostic.
Diagnostic load_error(std::string_view toml) {
  auto diagnostics = load_errors(toml);
  INFO(describe(diagnostics));
  REQUIRE(diagnostics.size() == 1);
  return diagnostics[0];
}

// The one diagnostic for `[agent]\n<line>`: always on line 2.
Diagnostic agent_key_error(std::string_view key_line) {
  std::string doc = "[agent]\n" + std::string(key_line) + "\n";
  INFO(doc);
  Diagnostic d = load_error(doc);
  CHECK(d.line == 2);
  CHECK(d.column >= 1);
  return d;
}

AgentConfig agent_with(std::string_view key_line) { return load_ok("[agent]\n" + std::string(key_line) + "\n"); }

void check_same_agent(const AgentConfig& a, const AgentConfig& b) {
  CHECK(a.socket == b.socket);
  CHECK(a.socket_mode == b.socket_mode);
  CHECK(a.socket_group == b.socket_group);
  CHECK(a.socket_world_accessible == b.socket_world_accessible);
  CHECK(a.state_dir == b.state_dir);
  CHECK(a.log_level == b.log_level);
  CHECK(a.max_connections == b.max_connections);
  CHECK(a.max_connections_per_uid == b.max_connections_per_uid);
  CHECK(a.reserved_service_connections == b.reserved_service_connections);
  CHECK(a.max_header_bytes == b.max_header_bytes);
  CHECK(a.max_headers == b.max_headers);
  CHECK(a.max_uri_bytes == b.max_uri_bytes);
  CHECK(a.max_body_bytes == b.max_body_bytes);
  CHECK(a.max_requests_per_connection == b.max_requests_per_connection);
  CHECK(a.max_pipelined_requests == b.max_pipelined_requests);
  CHECK(a.idle_timeout == b.idle_timeout);
  CHECK(a.header_timeout == b.header_timeout);
  CHECK(a.body_timeout == b.body_timeout);
  CHECK(a.write_timeout == b.write_timeout);
  CHECK(a.shutdown_timeout == b.shutdown_timeout);
}

bool is_word_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

// True if `word` occurs in `text` on its own ("socket" inside "socket_mode" does not count).
bool contains_word(std::string_view text, std::string_view word) {
  for (std::size_t at = text.find(word); at != std::string_view::npos; at = text.find(word, at + 1)) {
    bool starts = at == 0 || !is_word_char(text[at - 1]);
    bool ends = at + word.size() == text.size() || !is_word_char(text[at + word.size()]);
    if (starts && ends) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("defaults() holds the documented default of every key", "[config][defaults]") {
  Config c = defaults();
  const AgentConfig& a = c.agent;
  CHECK(c.source == "<built-in defaults>");
  CHECK(a.socket == "/run/chitty-agent/agent.sock");
  CHECK(a.socket_mode == 0660);
  CHECK(a.socket_group.empty());
  CHECK_FALSE(a.socket_world_accessible);
  CHECK(a.state_dir == "/var/lib/chitty-agent");
  CHECK(a.log_level == log::Level::info);
  CHECK(a.max_connections == 1024);
  CHECK(a.max_connections_per_uid == 128);
  CHECK(a.reserved_service_connections == 64);
  CHECK(a.max_header_bytes == 16 * 1024);
  CHECK(a.max_headers == 64);
  CHECK(a.max_uri_bytes == 8 * 1024);
  CHECK(a.max_body_bytes == 64 * 1024);
  CHECK(a.max_requests_per_connection == 1000);
  CHECK(a.max_pipelined_requests == 16);
  CHECK(a.idle_timeout == 60s);
  CHECK(a.header_timeout == 10s);
  CHECK(a.body_timeout == 10s);
  CHECK(a.write_timeout == 10s);
  CHECK(a.shutdown_timeout == 10s);
  CHECK(validate(c).empty());
}

TEST_CASE("every default of the agent schema satisfies its own key", "[config][defaults]") {
  Config c;
  auto diagnostics = apply_defaults(agent_schema(), &c);
  INFO(describe(diagnostics));
  CHECK(diagnostics.empty());
  check_same_agent(c.agent, defaults().agent);
}

TEST_CASE("the agent schema's tables have unique, documented keys", "[config][schema]") {
  const Schema& s = agent_schema();
  std::vector<std::string> tables;
  for (const auto& t : s.tables) tables.emplace_back(std::string(t.is_array ? "[[" : "[") + std::string(t.name) +
                                                     (t.is_array ? "]]" : "]"));
  CHECK(tables == std::vector<std::string>{"[agent]", "[cache]", "[[cache.category]]", "[upstream.onepassword]", "[fallback]", "[[credential]]",
                                           "[[service]]", "[audit]", "[emergency]", "[predict]", "[risk]", "[risk.weights]", "[[risk.category]]"});
  for (const auto& t : s.tables) {
    std::set<std::string_view> names;
    for (const auto& k : t.keys) {
      INFO(std::string(t.name) << "." << std::string(k.name));
      CHECK(names.insert(k.name).second);
      CHECK_FALSE(k.doc.empty());
      CHECK(k.bind.assign != nullptr);
      CHECK((k.required ? k.default_toml.empty() : true));  // a required key has no default
    }
  }
  CHECK(s.tables[0].keys.size() == 22);
}

TEST_CASE("an empty document yields the defaults", "[config][load]") {
  check_same_agent(load_ok(""), defaults().agent);
  check_same_agent(load_ok("# only a comment\n\n[agent]\n"), defaults().agent);
}

TEST_CASE("load_string reads a full [agent] table", "[config][load]") {
  AgentConfig a = load_ok(R"(# every key, none at its default
[agent]
socket = "/run/user/1000/chitty/agent.sock"
socket_mode = "0770"
socket_group = "chitty-clients"
socket_world_accessible = true
state_dir = "/srv/chitty/state"
log_level = "debug"
max_connections = 4096
max_connections_per_uid = 128
reserved_service_connections = 16
max_header_bytes = "32KiB"
max_headers = 100
max_uri_bytes = 2048
max_body_bytes = "1MiB"
max_requests_per_connection = 50
max_pipelined_requests = 4
idle_timeout = "5m"
header_timeout = "300ms"
body_timeout = "1m30s"
write_timeout = "2s"
shutdown_timeout = "0s"
)");
  CHECK(a.socket == "/run/user/1000/chitty/agent.sock");
  CHECK(a.socket_mode == 0770);
  CHECK(a.socket_group == "chitty-clients");
  CHECK(a.socket_world_accessible);
  CHECK(a.state_dir == "/srv/chitty/state");
  CHECK(a.log_level == log::Level::debug);
  CHECK(a.max_connections == 4096);
  CHECK(a.max_connections_per_uid == 128);
  CHECK(a.reserved_service_connections == 16);
  CHECK(a.max_header_bytes == 32 * 1024);
  CHECK(a.max_headers == 100);
  CHECK(a.max_uri_bytes == 2048);
  CHECK(a.max_body_bytes == 1024 * 1024);
  CHECK(a.max_requests_per_connection == 50);
  CHECK(a.max_pipelined_requests == 4);
  CHECK(a.idle_timeout == 5min);
  CHECK(a.header_timeout == 300ms);
  CHECK(a.body_timeout == 90s);
  CHECK(a.write_timeout == 2s);
  CHECK(a.shutdown_timeout == 0ms);
}

TEST_CASE("keys left out of the file keep their defaults", "[config][load]") {
  AgentConfig a = agent_with("max_headers = 10");
  CHECK(a.max_headers == 10);
  AgentConfig expected = defaults().agent;
  expected.max_headers = 10;
  check_same_agent(a, expected);
}

TEST_CASE("the [agent] table may be written inline or with dotted keys", "[config][load]") {
  CHECK(load_ok("agent = { max_headers = 12, log_level = \"error\" }\n").max_headers == 12);
  CHECK(load_ok("agent.max_headers = 13\n").max_headers == 13);
}

TEST_CASE("log_level accepts every level name", "[config][load]") {
  CHECK(agent_with(R"(log_level = "debug")").log_level == log::Level::debug);
  CHECK(agent_with(R"(log_level = "info")").log_level == log::Level::info);
  CHECK(agent_with(R"(log_level = "warning")").log_level == log::Level::warning);
  CHECK(agent_with(R"(log_level = "warn")").log_level == log::Level::warning);
  CHECK(agent_with(R"(log_level = "error")").log_level == log::Level::error);

  Diagnostic d = agent_key_error(R"(log_level = "verbose")");
  CHECK_THAT(d.message, Contains("agent.log_level"));
  CHECK_THAT(d.message, Contains("\"verbose\" is not one of: debug, info, warning, warn, error"));
  CHECK(d.column == 13);
}

TEST_CASE("an unknown key is reported at its position with a suggestion", "[config][diagnostics]") {
  Diagnostic d = load_error(R"([agent]
socket = "/run/x.sock"
  max_conections = 10
)");
  CHECK(d.line == 3);
  CHECK(d.column == 3);
  CHECK_THAT(d.message, Contains("unknown key \"agent.max_conections\""));
  CHECK_THAT(d.message, Contains("did you mean \"max_connections\"?"));
  CHECK(d.to_string() == "agent.toml:3:3: " + d.message);

  Diagnostic typo = agent_key_error("idle_timout = \"5s\"");
  CHECK(typo.column == 1);
  CHECK_THAT(typo.message, Contains("did you mean \"idle_timeout\"?"));
}

TEST_CASE("an unknown key far from every name gets no suggestion", "[config][diagnostics]") {
  Diagnostic d = agent_key_error("colour = \"blue\"");
  CHECK_THAT(d.message, Contains("unknown key \"agent.colour\""));
  CHECK_THAT(d.message, !Contains("did you mean"));
}

TEST_CASE("an unknown section is reported with a suggestion", "[config][diagnostics]") {
  Diagnostic d = load_error("# comment\n[agnet]\nsocket = \"/run/x.sock\"\n");
  CHECK(d.line == 2);
  CHECK_THAT(d.message, Contains("unknown section \"agnet\""));
  CHECK_THAT(d.message, Contains("did you mean \"agent\"?"));

  Diagnostic stray = load_error("socket = \"/run/x.sock\"\n");
  CHECK(stray.line == 1);
  CHECK_THAT(stray.message, Contains("unknown key \"socket\""));
}

TEST_CASE("[agent] must be a single table", "[config][diagnostics]") {
  Diagnostic scalar = load_error("agent = 5\n");
  CHECK(scalar.line == 1);
  CHECK_THAT(scalar.message, Contains("must be a [agent] table"));

  Diagnostic array = load_error("[[agent]]\nmax_headers = 5\n");
  CHECK(array.line == 1);
  CHECK_THAT(array.message, Contains("must be a [agent] table"));
}

TEST_CASE("every problem in a file is reported on its own line, sorted by line", "[config][diagnostics]") {
  // toml++ hands keys over in name order; the loader must sort by position.
  auto diagnostics = load_errors(R"([agent]
socket_world_accessible = "yes"
max_headers = 0
socket_mode = "0999"
unknown_thing = 1
idle_timeout = "5"
max_body_bytes = "1TB"
log_level = "verbose"
state_dir = "relative/dir"
)");
  INFO(describe(diagnostics));
  REQUIRE(diagnostics.size() == 8);
  const char* expected[] = {"agent.socket_world_accessible",
                            "agent.max_headers",
                            "agent.socket_mode",
                            "agent.unknown_thing",
                            "agent.idle_timeout",
                            "agent.max_body_bytes",
                            "agent.log_level",
                            "agent.state_dir"};
  for (std::size_t i = 0; i < diagnostics.size(); ++i) {
    CHECK(diagnostics[i].line == i + 2);
    CHECK_THAT(diagnostics[i].message, Contains(expected[i]));
  }
}

TEST_CASE("cross-key conflicts are reported together with the other problems", "[config][diagnostics]") {
  // load_file/load_string promise every problem, cross-key conflicts included.
  auto diagnostics = load_errors(R"([agent]
max_connections = 10
max_connections_per_uid = 20
max_headers = 0
)");
  INFO(describe(diagnostics));
  REQUIRE(diagnostics.size() == 2);
  CHECK(diagnostics[0].line == 3);
  CHECK_THAT(diagnostics[0].message, Contains("larger than max_connections"));
  CHECK(diagnostics[1].line == 4);
  CHECK_THAT(diagnostics[1].message, Contains("agent.max_headers"));
}

TEST_CASE("values of the wrong type are rejected", "[config][diagnostics]") {
  CHECK_THAT(agent_key_error(R"(max_connections = "10")").message,
             Contains("agent.max_connections: expected an integer, got a string"));
  CHECK_THAT(agent_key_error("max_connections = 10.0").message, Contains("expected an integer, got a float"));
  CHECK_THAT(agent_key_error("socket = 5").message, Contains("agent.socket: expected a path string, got an integer"));
  CHECK_THAT(agent_key_error("socket_group = false").message, Contains("expected a string, got a boolean"));
  CHECK_THAT(agent_key_error("socket_world_accessible = 1").message,
             Contains("agent.socket_world_accessible: expected true or false, got an integer"));
  CHECK_THAT(agent_key_error("socket_world_accessible = \"true\"").message,
             Contains("expected true or false, got a string"));
  CHECK_THAT(agent_key_error("idle_timeout = 5").message, Contains("agent.idle_timeout: expected a duration string"));
  CHECK_THAT(agent_key_error("max_body_bytes = 1.5").message, Contains("got a float"));
  CHECK_THAT(agent_key_error("max_body_bytes = [1]").message, Contains("got an array"));
  CHECK_THAT(agent_key_error("log_level = 1").message, Contains("agent.log_level: expected a string, got an integer"));
  CHECK_THAT(agent_key_error("socket_mode = true").message, Contains("got a boolean"));
  CHECK_THAT(agent_key_error("max_headers = 1979-05-27").message, Contains("got a date"));
  CHECK_THAT(agent_key_error("max_headers = { a = 1 }").message, Contains("got a table"));
}

TEST_CASE("integers outside their bounds are rejected and the bounds are accepted", "[config][bounds]") {
  Diagnostic zero = agent_key_error("max_connections = 0");
  CHECK_THAT(zero.message, Contains("agent.max_connections: 0 is out of range; must be between 1 and 65536"));
  CHECK(zero.column == 19);
  CHECK_THAT(agent_key_error("max_connections = 65537").message, Contains("65537 is out of range"));
  CHECK_THAT(agent_key_error("max_connections = -1").message, Contains("-1 is out of range"));
  CHECK_THAT(agent_key_error("max_headers = 1025").message, Contains("between 1 and 1024"));
  CHECK_THAT(agent_key_error("max_requests_per_connection = 1000000001").message, Contains("out of range"));
  CHECK_THAT(agent_key_error("max_pipelined_requests = 0").message, Contains("out of range"));
  CHECK_THAT(agent_key_error("max_connections_per_uid = 0").message, Contains("out of range"));

  CHECK(load_ok("[agent]\nmax_connections = 65536\nmax_connections_per_uid = 65536\n").max_connections == 65536);
  CHECK(agent_with("max_connections = 256").max_connections == 256);
  CHECK(agent_with("max_headers = 1").max_headers == 1);
  CHECK(agent_with("max_headers = 1024").max_headers == 1024);
  CHECK(agent_with("max_requests_per_connection = 1000000000").max_requests_per_connection == 1'000'000'000);
}

TEST_CASE("durations are read with units and checked against their bounds", "[config][bounds]") {
  CHECK(agent_with(R"(header_timeout = "300ms")").header_timeout == 300ms);
  CHECK(agent_with(R"(idle_timeout = "5m")").idle_timeout == 5min);
  CHECK(agent_with(R"(idle_timeout = "1h")").idle_timeout == 60min);
  CHECK(agent_with(R"(body_timeout = "1m30s")").body_timeout == 90s);
  CHECK(agent_with(R"(write_timeout = "100ms")").write_timeout == 100ms);
  CHECK(agent_with(R"(shutdown_timeout = "0s")").shutdown_timeout == 0ms);

  Diagnostic too_long = agent_key_error(R"(idle_timeout = "1h30m")");
  CHECK_THAT(too_long.message, Contains("agent.idle_timeout: \"1h30m\" is out of range; must be between 100ms and 1h"));
  CHECK(too_long.column == 16);
  CHECK_THAT(agent_key_error(R"(header_timeout = "99ms")").message, Contains("between 100ms and 10m"));
  CHECK_THAT(agent_key_error(R"(header_timeout = "10m1ms")").message, Contains("out of range"));
  CHECK_THAT(agent_key_error(R"(idle_timeout = "0s")").message, Contains("out of range"));
  CHECK_THAT(agent_key_error(R"(idle_timeout = "5")").message, Contains("missing unit"));
  CHECK_THAT(agent_key_error(R"(idle_timeout = "5 minutes")").message, Contains("unknown unit"));
  CHECK_THAT(agent_key_error(R"(idle_timeout = "")").message, Contains("empty duration"));
}

TEST_CASE("sizes are read with units or as bytes and checked against their bounds", "[config][bounds]") {
  CHECK(agent_with(R"(max_body_bytes = "8MiB")").max_body_bytes == 8 * 1024 * 1024);
  CHECK(agent_with(R"(max_uri_bytes = "64KiB")").max_uri_bytes == 64 * 1024);
  CHECK(agent_with("max_header_bytes = 2048").max_header_bytes == 2048);
  CHECK(agent_with(R"(max_header_bytes = "2048")").max_header_bytes == 2048);
  CHECK(agent_with(R"(max_body_bytes = "1MB")").max_body_bytes == 1'000'000);
  CHECK(agent_with(R"(max_body_bytes = "16MiB")").max_body_bytes == 16 * 1024 * 1024);
  CHECK(agent_with("max_uri_bytes = 256").max_uri_bytes == 256);

  Diagnostic big = agent_key_error(R"(max_body_bytes = "17MiB")");
  CHECK_THAT(big.message, Contains("agent.max_body_bytes: 17MiB is out of range; must be between 1KiB and 16MiB"));
  CHECK_THAT(agent_key_error("max_header_bytes = 1023").message, Contains("1023B is out of range"));
  CHECK_THAT(agent_key_error(R"(max_header_bytes = "2MiB")").message, Contains("between 1KiB and 1MiB"));
  CHECK_THAT(agent_key_error("max_uri_bytes = 255").message, Contains("out of range"));
  CHECK_THAT(agent_key_error("max_uri_bytes = -1").message, Contains("cannot be negative"));
  CHECK_THAT(agent_key_error(R"(max_body_bytes = "8 MiB")").message, Contains("unknown unit"));
  CHECK_THAT(agent_key_error(R"(max_body_bytes = "8mb")").message, Contains("unknown unit"));
}

TEST_CASE("socket_mode accepts octal strings and TOML octal integers", "[config][mode]") {
  CHECK(agent_with(R"(socket_mode = "0660")").socket_mode == 0660);
  CHECK(agent_with(R"(socket_mode = "660")").socket_mode == 0660);
  CHECK(agent_with("socket_mode = 0o660").socket_mode == 0660);
  CHECK(agent_with(R"(socket_mode = "0600")").socket_mode == 0600);
  CHECK(agent_with(R"(socket_mode = "0620")").socket_mode == 0620);
  CHECK(agent_with("socket_mode = 0o770").socket_mode == 0770);
}

TEST_CASE("socket_mode as a decimal integer is rejected with a hint", "[config][mode]") {
  Diagnostic d = agent_key_error("socket_mode = 660");
  CHECK(d.column == 15);
  CHECK_THAT(d.message, Contains("agent.socket_mode"));
  CHECK_THAT(d.message, Contains("mode 660 is not written in octal"));
  CHECK_THAT(d.message, Contains("0o660"));
  CHECK_THAT(d.message, Contains("\"0660\""));
  // 432 == 0o660, but only the octal spelling says "permission bits".
  CHECK_THAT(agent_key_error("socket_mode = 432").message, Contains("mode 432 is not written in octal"));
  CHECK_THAT(agent_key_error("socket_mode = 0x1b0").message, Contains("is not written in octal"));
}

TEST_CASE("socket_mode rejects what is not a permission mode", "[config][mode]") {
  CHECK_THAT(agent_key_error(R"(socket_mode = "0999")").message, Contains("expected an octal file mode"));
  CHECK_THAT(agent_key_error(R"(socket_mode = "rw-rw----")").message, Contains("expected an octal file mode"));
  CHECK_THAT(agent_key_error(R"(socket_mode = "0o660")").message, Contains("expected an octal file mode"));
  CHECK_THAT(agent_key_error(R"(socket_mode = "")").message, Contains("expected an octal file mode"));
  CHECK_THAT(agent_key_error(R"(socket_mode = "00660")").message, Contains("expected an octal file mode"));
  CHECK_THAT(agent_key_error("socket_mode = -1").message, Contains("mode -1 is not written in octal"));
  CHECK_THAT(agent_key_error("socket_mode = 0o17777").message, Contains("out of range"));
  Diagnostic sticky = agent_key_error(R"(socket_mode = "1770")");
  CHECK_THAT(sticky.message, Contains("mode 1770 is out of range"));
  CHECK_THAT(sticky.message, Contains("setuid, setgid and sticky bits are not allowed"));
}

TEST_CASE("a world-accessible socket_mode needs socket_world_accessible", "[config][mode][cross]") {
  Diagnostic d = load_error(R"([agent]
max_headers = 32
socket_mode = "0777"
)");
  CHECK(d.line == 3);
  CHECK(d.column == 1);
  CHECK_THAT(d.message, Contains("socket_mode 0777 lets every local user connect"));
  CHECK_THAT(d.message, Contains("socket_world_accessible"));

  CHECK(load_error("[agent]\nsocket_mode = \"0606\"\n").line == 2);
  CHECK(load_error("[agent]\nsocket_mode = 0o664\n").line == 2);

  AgentConfig open = load_ok(R"([agent]
socket_mode = "0777"
socket_world_accessible = true
)");
  CHECK(open.socket_mode == 0777);
  CHECK(open.socket_world_accessible);
}

TEST_CASE("a socket_mode without write permission is rejected", "[config][mode][cross]") {
  Diagnostic d = load_error("[agent]\n\nsocket_mode = \"0440\"\n");
  CHECK(d.line == 3);
  CHECK_THAT(d.message, Contains("socket_mode 0440 grants nobody write permission"));
  CHECK_THAT(load_error("[agent]\nsocket_mode = \"0000\"\n").message, Contains("grants nobody write permission"));
}

TEST_CASE("max_connections_per_uid may not exceed max_connections", "[config][cross]") {
  Diagnostic d = load_error(R"([agent]
max_connections = 100
# the per-uid limit below is larger
max_connections_per_uid = 200
)");
  CHECK(d.line == 4);
  CHECK(d.column == 1);
  CHECK_THAT(d.message, Contains("max_connections_per_uid (200) is larger than max_connections (100)"));

  // Written in the other order the diagnostic still points at the per-uid key.
  Diagnostic swapped = load_error("[agent]\nmax_connections_per_uid = 300\nmax_connections = 299\n");
  CHECK(swapped.line == 2);

  AgentConfig equal = load_ok("[agent]\nmax_connections = 100\nmax_connections_per_uid = 100\n");
  CHECK(equal.max_connections_per_uid == 100);
}

TEST_CASE("a conflict with a key left at its default is still reported", "[config][cross]") {
  // max_connections_per_uid defaults to 128; lowering max_connections below it is a conflict.
  Diagnostic d = load_error("[agent]\nmax_connections = 50\n");
  CHECK_THAT(d.message, Contains("max_connections_per_uid (128) is larger than max_connections (50)"));
  CHECK_THAT(d.message, Contains("(the default value)"));
}

TEST_CASE("paths must be absolute", "[config][path]") {
  Diagnostic d = agent_key_error(R"(socket = "run/agent.sock")");
  CHECK_THAT(d.message, Contains("agent.socket: must be an absolute path, got \"run/agent.sock\""));
  CHECK_THAT(agent_key_error(R"(state_dir = "var/lib/chitty")").message, Contains("must be an absolute path"));
  CHECK_THAT(agent_key_error(R"(state_dir = "./state")").message, Contains("must be an absolute path"));
  CHECK_THAT(agent_key_error(R"(socket = "")").message, Contains("must be an absolute path"));
  CHECK_THAT(agent_key_error(R"(socket = "~/agent.sock")").message, Contains("must be an absolute path"));
}

TEST_CASE("the socket path must fit in sockaddr_un", "[config][path]") {
  const std::string fits = "/" + std::string(106, 's');
  const std::string too_long = "/" + std::string(107, 's');
  REQUIRE(fits.size() == 107);
  CHECK(agent_with("socket = \"" + fits + "\"").socket == fits);

  Diagnostic d = agent_key_error("socket = \"" + too_long + "\"");
  CHECK_THAT(d.message, Contains("agent.socket: is 108 bytes long; at most 107 are allowed"));
}

TEST_CASE("the socket path must name a file", "[config][path]") {
  Diagnostic d = load_error("[agent]\nmax_headers = 8\nsocket = \"/run/chitty/\"\n");
  CHECK(d.line == 3);
  CHECK_THAT(d.message, Contains("socket must name a file"));
}

TEST_CASE("socket_group is bounded and may not hold NUL bytes", "[config][load]") {
  CHECK(agent_with("socket_group = \"" + std::string(64, 'g') + "\"").socket_group.size() == 64);
  CHECK_THAT(agent_key_error("socket_group = \"" + std::string(65, 'g') + "\"").message,
             Contains("is 65 bytes long; at most 64 are allowed"));
  CHECK_THAT(agent_key_error(R"(socket_group = "wheel\u0000x")").message, Contains("must not contain NUL bytes"));
}

TEST_CASE("a TOML syntax error is one diagnostic with its line", "[config][diagnostics]") {
  Diagnostic d = load_error(R"([agent]
max_headers = 10
socket = "/run/unterminated
max_connections = 10
)");
  CHECK(d.line == 3);
  CHECK(d.column >= 1);
  CHECK_THAT(d.message, StartsWith("TOML syntax error: "));

  Diagnostic dup = load_error("[agent]\nmax_headers = 10\nmax_headers = 11\n");
  CHECK(dup.line == 3);
  CHECK_THAT(dup.message, StartsWith("TOML syntax error: "));
}

TEST_CASE("load_file reports a missing file without a position", "[config][file]") {
  const std::string path = "/nonexistent-chitty-dir/agent.toml";
  LoadResult r = load_file(path);
  REQUIRE_FALSE(r.has_value());
  REQUIRE(r.error().size() == 1);
  const Diagnostic& d = r.error()[0];
  CHECK(d.file == path);
  CHECK(d.line == 0);
  CHECK(d.column == 0);
  CHECK_THAT(d.message, Contains("cannot open the file"));
  CHECK_THAT(d.message, Contains("No such file or directory"));
  CHECK(d.to_string() == path + ": " + d.message);
}

TEST_CASE("load_file reads a file and names it in diagnostics", "[config][file]") {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("chitty-config-test-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  struct Cleanup {
    fs::path p;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(p, ec);
    }
  } cleanup{dir};

  const std::string good = (dir / "good.toml").string();
  std::ofstream(good) << "[agent]\nmax_headers = 20\nidle_timeout = \"2m\"\n";
  LoadResult ok = load_file(good);
  REQUIRE(ok.has_value());
  CHECK(ok->source == good);
  CHECK(ok->agent.max_headers == 20);
  CHECK(ok->agent.idle_timeout == 2min);

  const std::string bad = (dir / "bad.toml").string();
  std::ofstream(bad) << "[agent]\n\nmax_headers = 0\n";
  LoadResult err = load_file(bad);
  REQUIRE_FALSE(err.has_value());
  REQUIRE(err.error().size() == 1);
  CHECK(err.error()[0].file == bad);
  CHECK_THAT(err.error()[0].to_string(), StartsWith(bad + ":3:15: agent.max_headers: 0 is out of range"));
}

TEST_CASE("Diagnostic::to_string formats FILE:LINE:COL: message", "[config][diagnostics]") {
  CHECK((Diagnostic{"agent.toml", 3, 7, "boom"}).to_string() == "agent.toml:3:7: boom");
  CHECK((Diagnostic{"/etc/chitty/agent.toml", 12, 1, "x"}).to_string() == "/etc/chitty/agent.toml:12:1: x");
  CHECK((Diagnostic{"agent.toml", 3, 0, "no column"}).to_string() == "agent.toml:3: no column");
  CHECK((Diagnostic{"agent.toml", 0, 0, "whole file"}).to_string() == "agent.toml: whole file");
}

TEST_CASE("default_config_toml parses back into the defaults", "[config][defaults]") {
  const std::string text = default_config_toml();
  LoadResult r = load_string(text, "<default config>");
  if (!r) FAIL("default_config_toml() does not load:\n" << describe(r.error()) << text);
  CHECK(r->source == "<default config>");
  check_same_agent(r->agent, defaults().agent);

  for (const auto& t : agent_schema().tables) {
    if (t.is_array) {
      // No default elements: shown commented out, as a template.
      CHECK_THAT(text, Contains("\n# [[" + std::string(t.name) + "]]\n"));
    } else {
      CHECK_THAT(text, Contains("\n[" + std::string(t.name) + "]\n"));
    }
    for (const auto& k : t.keys) {
      INFO(std::string(t.name) << "." << std::string(k.name));
      if (k.default_toml.empty()) {
        CHECK_THAT(text, Contains("\n# " + std::string(k.name) + " = ...\n"));
      } else {
        std::string lead = t.is_array ? "# " : "";
        CHECK_THAT(text, Contains("\n" + lead + std::string(k.name) + " = " + std::string(k.default_toml) + "\n"));
      }
    }
  }
}

TEST_CASE("docs/config.md documents every key of the schema", "[config][docs]") {
  const char* root = std::getenv("CHITTY_SOURCE_ROOT");
  REQUIRE(root != nullptr);  // set by meson test; run by hand with CHITTY_SOURCE_ROOT=<repo>
  const std::filesystem::path doc_path = std::filesystem::path(root) / "docs" / "config.md";
  INFO("reading " << doc_path.string());
  std::ifstream in(doc_path);
  REQUIRE(in.good());  // a missing reference is a failure, not a skip
  std::stringstream buf;
  buf << in.rdbuf();
  const std::string doc = buf.str();
  REQUIRE_FALSE(doc.empty());

  for (const auto& t : agent_schema().tables) {
    for (const auto& k : t.keys) {
      INFO("key " << std::string(t.name) << "." << std::string(k.name));
      CHECK(contains_word(doc, k.name));
    }
  }
}

}  // namespace chitty::config

namespace chitty::config {

TEST_CASE("[cache], [fallback], the catalog and services load into their structs", "[config][catalog]") {
  LoadResult r = load_string(R"([cache]
ttl = "2m"
fallback_window = "10m"
max_entries = 50
max_locked_bytes = "1MiB"

[[cache.category]]
name = "ai"
ttl = "30s"

[fallback]
systemd_credentials = false

[[credential]]
type = "openai_api_key"
ref = "op://AI/OpenAI/api_key"
env = "OPENAI_API_KEY"
category = "ai"

[[credential]]
type = "db"
ref = "op://Infra/Postgres/password"
systemd_credential = "db.password"

[[service]]
name = "web"
uid = 33
allow = ["type:openai_api_key", "op://Infra/**"]
)",
                               kFile);
  if (!r) FAIL(describe(r.error()));
  CHECK(r->cache.ttl == 2min);
  CHECK(r->cache.fallback_window == 10min);
  CHECK(r->cache.max_entries == 50);
  CHECK(r->cache.max_locked_bytes == 1024 * 1024);
  REQUIRE(r->cache.categories.size() == 1);
  CHECK(r->cache.categories[0].name == "ai");
  CHECK(r->cache.categories[0].ttl == 30s);
  CHECK(r->fallback.env);
  CHECK_FALSE(r->fallback.systemd_credentials);
  REQUIRE(r->credentials.size() == 2);
  CHECK(r->credentials[0].env == "OPENAI_API_KEY");
  CHECK(r->credentials[0].systemd_credential.empty());
  CHECK(r->credentials[1].systemd_credential == "db.password");
  CHECK(r->credentials[1].category.empty());
  REQUIRE(r->services.size() == 1);
  CHECK(r->services[0].uid == 33);
  CHECK(r->services[0].allow.size() == 2);
}

TEST_CASE("catalog and service mistakes are reported at their lines", "[config][catalog]") {
  auto diagnostics = load_errors(R"([cache]
ttl = "20m"
fallback_window = "15m"

[[credential]]
type = "a"
ref = "op://only/two"

[[credential]]
type = "a"
ref = "op://V/I/F"
env = "BAD-NAME"

[[credential]]
ref = "op://V/I/G"

[[service]]
name = "one"
uid = 10
allow = ["type:nope", "op://V/**x"]

[[service]]
name = "two"
uid = 10

[[service]]
name = "three"
)");
  std::string all = describe(diagnostics);
  INFO(all);
  CHECK_THAT(all, Contains("agent.toml:3:") && Contains("fallback_window"));
  CHECK_THAT(all, Contains("agent.toml:7:") && Contains("(2 parts given)"));
  CHECK_THAT(all, Contains("agent.toml:10:") && Contains("defined twice"));
  CHECK_THAT(all, Contains("agent.toml:12:") && Contains("BAD-NAME"));
  CHECK_THAT(all, Contains("type") && Contains("required"));
  CHECK_THAT(all, Contains("agent.toml:20:") && Contains("\"type:nope\" names no [[credential]] type"));
  CHECK_THAT(all, Contains("op://V/**x"));
  CHECK_THAT(all, Contains("agent.toml:23:") && Contains("has the same selectors as \"one\""));
  CHECK_THAT(all, Contains("service \"three\" has no selector"));
}

}  // namespace chitty::config

namespace chitty::config {

TEST_CASE("a selector on the kernel's overflow uid or gid is refused: it could never match", "[config][service]") {
  auto diagnostics = load_errors(R"([[service]]
name = "nobody"
uid = 65534

[[service]]
name = "nogroup"
gid = 65534

[[service]]
name = "fine"
uid = 65533
)");
  std::string all = describe(diagnostics);
  INFO(all);
  REQUIRE(diagnostics.size() == 2);
  CHECK_THAT(all, Contains("agent.toml:3:") && Contains("uid 65534 is the kernel's overflow uid"));
  CHECK_THAT(all, Contains("agent.toml:7:") && Contains("gid 65534 is the kernel's overflow gid"));
  CHECK_THAT(all, Contains("could never match"));
}

TEST_CASE("[upstream.onepassword] loads into its struct with its defaults", "[config][upstream]") {
  LoadResult r = load_string(R"([upstream.onepassword]
url = "http://127.0.0.1:8080"
token_file = "/run/credentials/chitty-agent.service/op-token"
backup_url = "https://connect-backup.internal:8443"
timeout = "3s"
failure_threshold = 4
)", kFile);
  if (!r) FAIL(describe(r.error()));
  const OnePasswordConfig& o = r->onepassword;
  CHECK(o.url == "http://127.0.0.1:8080");
  CHECK(o.token_file == "/run/credentials/chitty-agent.service/op-token");
  CHECK(o.backup_url == "https://connect-backup.internal:8443");
  CHECK(o.timeout == 3s);
  CHECK(o.failure_threshold == 4);
  CHECK(o.connect_timeout == 1s);
  CHECK(o.max_response_bytes == 63 * 1024);
  CHECK(o.services_vault == "ChittyOS Services");
  CHECK(o.integrations_vault == "ChittyOS Integrations");
  CHECK(o.probe_interval == 5s);
  CHECK(o.negative_ttl == 30s);
  CHECK(defaults().onepassword.url.empty());  // no upstream unless configured
}

TEST_CASE("[upstream.onepassword] mistakes are reported at their lines", "[config][upstream]") {
  auto all = describe(load_errors(R"([upstream.onepassword]
url = "http://connect.example.com:8080"
backup_url = "ftp://x"
token_file = "relative/token"
token_env = "OP TOKEN"
ca_file = "ca.pem"
breaker_backoff = "10s"
breaker_max_backoff = "5s"
max_response_bytes = "1MiB"
)"));
  INFO(all);
  CHECK_THAT(all, Contains("agent.toml:2:") && Contains("unencrypted"));
  CHECK_THAT(all, Contains("agent.toml:3:") && Contains("http:// or https://"));
  CHECK_THAT(all, Contains("agent.toml:4:") && Contains("absolute"));
  CHECK_THAT(all, Contains("agent.toml:5:") && Contains("not an environment variable name"));
  CHECK_THAT(all, Contains("agent.toml:6:") && Contains("absolute"));
  CHECK_THAT(all, Contains("agent.toml:8:") && Contains("shorter than breaker_backoff"));
  CHECK_THAT(all, Contains("agent.toml:9:"));
  // Both token sources at once (and neither) is refused.
  CHECK_THAT(all, Contains("exactly one of token_file and token_env"));
  auto none = describe(load_errors("[upstream.onepassword]\nurl = \"http://localhost:8080\"\n"));
  CHECK_THAT(none, Contains("agent.toml:2:") && Contains("exactly one of token_file and token_env"));
  auto creds = describe(load_errors("[upstream.onepassword]\nurl = \"https://user:pw@h\"\ntoken_env = \"T\"\n"));
  CHECK_THAT(creds, Contains("credentials"));
  auto orphan = describe(load_errors("[upstream.onepassword]\nbackup_url = \"http://127.0.0.1:1\"\n"));
  CHECK_THAT(orphan, Contains("backup_url needs url"));
  // Plain http elsewhere only with the explicit opt-in; loopback forms are fine.
  for (std::string url : {"http://localhost:8080", "http://127.0.0.2:1", "http://[::1]:8080/prefix"}) {
    INFO(url);
    CHECK(load_string("[upstream.onepassword]\nurl = \"" + url + "\"\ntoken_env = \"T\"\n", kFile));
  }
  CHECK(load_string("[upstream.onepassword]\nurl = \"http://10.0.0.5:8080\"\ntoken_env = \"T\"\nallow_insecure_http = true\n",
                    kFile));
}

}  // namespace chitty::config

namespace chitty::config {

TEST_CASE("reload is declared: every key can be compared, copied and shown; restart keys are held", "[config][reload]") {
  for (const auto& t : agent_schema().tables) {
    for (const auto& k : t.keys) {
      INFO(std::string(t.name) << "." << std::string(k.name));
      CHECK(k.bind.same != nullptr);
      CHECK(k.bind.copy != nullptr);
      CHECK(k.bind.show != nullptr);
    }
  }
  LoadResult running = load_string("[agent]\nsocket = \"/run/a.sock\"\nidle_timeout = \"30s\"\n[audit]\nfsync_events = 8\n", "running.toml");
  LoadResult next = load_string(
      "[agent]\nsocket = \"/run/b.sock\"\nidle_timeout = \"5s\"\nlog_level = \"debug\"\n[audit]\nfsync_events = 4\n"
      "[emergency]\ntoken_file = \"/etc/t\"\n",
      "next.toml");
  REQUIRE(running);
  REQUIRE(next);
  auto all = changes(agent_schema(), &*running, &*next);
  std::vector<std::string> keys;
  for (const auto& c : all) keys.push_back(c.key + (c.reload == Reload::restart ? " (restart)" : ""));
  CHECK(keys == std::vector<std::string>{"agent.socket (restart)", "agent.log_level", "agent.idle_timeout",
                                         "audit.fsync_events (restart)", "emergency.token_file"});
  auto held = hold_restart_keys(agent_schema(), &*running, &*next);
  REQUIRE(held.size() == 2);
  CHECK(held[0].key == "agent.socket");
  CHECK(held[0].running == "\"/run/a.sock\"");
  CHECK(held[0].next == "\"/run/b.sock\"");
  CHECK(held[1].key == "audit.fsync_events");
  CHECK(held[1].running == "8");
  // The running values are kept; the rest is the file's.
  CHECK(next->agent.socket == "/run/a.sock");
  CHECK(next->audit.fsync_events == 8);
  CHECK(next->agent.idle_timeout == std::chrono::seconds(5));
  CHECK(next->emergency.token_file == "/etc/t");
  CHECK(changes(agent_schema(), &*running, &*next).size() == 3);  // only what applies at once is left
  CHECK(hold_restart_keys(agent_schema(), &*running, &*next).empty());
}

TEST_CASE("docs/config.md's reload column is the schema's", "[config][docs][reload]") {
  const char* root = std::getenv("CHITTY_SOURCE_ROOT");
  REQUIRE(root != nullptr);
  std::ifstream in(std::filesystem::path(root) / "docs" / "config.md");
  REQUIRE(in.good());
  // The rows of each section "## `[table]`": | `key` | ... | reload |
  std::map<std::string, std::string> documented;  // "table.key" -> last cell
  std::string section;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("#", 0) == 0) {
      auto open = line.find("`[");
      section = open != std::string::npos && line.find("`[[") == std::string::npos
                    ? line.substr(open + 2, line.find("]`") - open - 2)
                    : "";
      continue;
    }
    if (section.empty() || line.rfind("| `", 0) != 0) continue;
    std::string key = line.substr(3, line.find('`', 3) - 3);
    auto last = line.rfind('|', line.size() - 2);
    std::string cell = line.substr(last + 1, line.size() - last - 2);
    while (!cell.empty() && cell.front() == ' ') cell.erase(0, 1);
    while (!cell.empty() && cell.back() == ' ') cell.pop_back();
    documented[section + "." + key] = cell;
  }
  for (const auto& t : agent_schema().tables) {
    if (t.is_array) continue;  // replaced whole on reload: they apply at once
    for (const auto& k : t.keys) {
      std::string name = std::string(t.name) + "." + std::string(k.name);
      INFO(name);
      REQUIRE(documented.count(name) == 1);
      CHECK(documented[name] == std::string(reload_name(k.reload())));
    }
  }
}

}  // namespace chitty::config

// The one URL rule (chitty/base/service_url.hpp), shared by --check-config
// and the HTTP client: a table of what is accepted and what is refused.
#include "chitty/base/service_url.hpp"

namespace chitty::config {

TEST_CASE("service URLs: one rule, loopback by address, never by prefix", "[config][url]") {
  struct Case {
    const char* url;
    bool ok;  // with allow_insecure_http = false
  };
  const Case cases[] = {
      {"https://connect.example.com", true},
      {"https://connect.example.com:8443/", true},
      {"http://127.0.0.1:8080", true},
      {"http://127.1.2.3", true},
      {"http://LOCALHOST:8080", true},  // a name is case-insensitive
      {"http://localhost.:8080", true},
      {"HTTP://localhost", true},
      {"http://[::1]:8080", true},
      {"http://[::ffff:127.0.0.1]", true},
      {"http://127.example.com", false},  // a name that starts with 127: not an address
      {"http://127.0.0.1.evil.com", false},
      {"http://128.0.0.1", false},
      {"http://10.0.0.1", false},
      {"http://[::2]", false},
      {"http://0x7f000001", false},  // not a dotted quad
      {"http://user:pw@127.0.0.1", false},
      {"http://127.0.0.1@evil.com", false},
      {"http://evil.com#@127.0.0.1", false},
      {"http://127.0.0.1%2f@evil", false},
      {"http://127.0.0.1\\@evil.com", false},
      {"ftp://127.0.0.1", false},
      {"127.0.0.1:8080", false},
      {"http://", false},
      {"http://127.0.0.1:0", false},
      {"http://127.0.0.1:99999", false},
      {"http://127.0.0.1:", false},
      {"http://[::1", false},
      {"https://connect.example.com/?x=1", false},  // a base URL has no query
  };
  for (const auto& c : cases) {
    INFO(c.url);
    auto r = check_service_url(c.url, false, true, "the token");
    CHECK(static_cast<bool>(r) == c.ok);
    if (!r) CHECK_FALSE(r.error().message.empty());
  }
  // allow_insecure_http lifts only the loopback rule, never the others.
  CHECK(check_service_url("http://10.0.0.1", true, true, "x"));
  CHECK_FALSE(check_service_url("http://u@10.0.0.1", true, true, "x"));
  // --check-config applies the same rule: what the client accepts, the check accepts.
  for (const auto& c : cases) {
    if (std::string_view(c.url).find('?') != std::string_view::npos) continue;
    INFO(c.url);
    LoadResult r =
        load_string(std::string("[upstream.onepassword]\nurl = \"") + c.url + "\"\ntoken_env = \"OP_TOKEN\"\n", "u.toml");
    if (!r && c.ok) FAIL_CHECK(r.error().front().to_string());
    CHECK(static_cast<bool>(r) == c.ok);
  }
}

}  // namespace chitty::config
