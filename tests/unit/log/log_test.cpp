// The logging facade: the JSON line for every kind of value, redaction of
// secrets and credentials, level names, and level filtering through the
// process-wide sink.
#include "chitty/log/log.hpp"

#include <chrono>
#include <cmath>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <catch2/catch.hpp>

#include "json_reader.hpp"

namespace chitty::log {

using namespace std::string_view_literals;
using Catch::Matchers::Contains;
using Catch::Matchers::EndsWith;
using Catch::Matchers::StartsWith;

namespace {

using chitty::testing::Json;
using chitty::testing::read_json;


// 2026-11-24T05:48:49.123Z
const WallTime kAt{std::chrono::milliseconds(1795499329123)};
constexpr std::string_view kHead = R"({"ts":"2026-11-24T05:48:49.123Z","level":"info","topic":"test","msg":"m")";

std::string line_with(std::span<const Field> fields, Level level = Level::info, std::string_view topic = "test",
                      std::string_view message = "m") {
  return JsonLinesSink::format(Record{kAt, level, topic, message, fields});
}

// The formatted line for one field, checked to be one valid JSON object.
std::string line_with(std::string_view key, Value value) {
  const Field fields[] = {{key, value}};
  std::string line = line_with(fields);
  INFO(line);
  REQUIRE(read_json(line).has_value());
  return line;
}

// What the record writes for one field value: the text after `"key":`.
std::string field_json(Value value) {
  std::string line = line_with("k", value);
  std::string prefix = std::string(kHead) + R"(,"k":)";
  REQUIRE(line.starts_with(prefix));
  REQUIRE(line.ends_with("}"));
  return line.substr(prefix.size(), line.size() - prefix.size() - 1);
}

struct Captured {
  Level level;
  std::string topic;
  std::string message;
  std::string line;
  WallTime time;
};

class CaptureSink final : public Sink {
 public:
  explicit CaptureSink(std::vector<Captured>& out) : out_(out) {}
  void write(const Record& r) noexcept override {
    out_.push_back({r.level, std::string(r.topic), std::string(r.message), JsonLinesSink::format(r), r.time});
  }

 private:
  std::vector<Captured>& out_;
};

// Installs a capturing sink for one test and restores the default sink and
// the previous level afterwards, also when an assertion fails.
class CaptureScope {
 public:
  CaptureScope() : saved_level_(level()) { set_sink(std::make_unique<CaptureSink>(records)); }
  ~CaptureScope() {
    set_sink(nullptr);
    set_level(saved_level_);
  }
  CaptureScope(const CaptureScope&) = delete;
  CaptureScope& operator=(const CaptureScope&) = delete;

  std::vector<Captured> records;

 private:
  Level saved_level_;
};

void log_at_every_level() {
  debug("test", "d");
  info("test", "i");
  warn("test", "w");
  error("test", "e");
}

std::vector<Level> levels_of(const std::vector<Captured>& records) {
  std::vector<Level> out;
  for (const auto& r : records) out.push_back(r.level);
  return out;
}

}  // namespace

TEST_CASE("JsonLinesSink::format writes the fixed fields in order", "[log][format]") {
  std::string line = line_with(std::span<const Field>{});
  CHECK(line == std::string(kHead) + "}");
  CHECK(line.find('\n') == std::string::npos);

  CHECK(line_with({}, Level::debug, "server", "accepted") ==
        R"({"ts":"2026-11-24T05:48:49.123Z","level":"debug","topic":"server","msg":"accepted"})");
  CHECK_THAT(line_with({}, Level::warning), Contains(R"("level":"warning")"));
  CHECK_THAT(line_with({}, Level::error), Contains(R"("level":"error")"));
}

TEST_CASE("JsonLinesSink::format keeps fields in the order given", "[log][format]") {
  const Field fields[] = {{"request_id", "r-1"}, {"fd", 7}, {"ok", true}};
  std::string line = line_with(fields);
  CHECK(line == std::string(kHead) + R"(,"request_id":"r-1","fd":7,"ok":true})");
  auto doc = read_json(line);
  REQUIRE(doc.has_value());
  REQUIRE(doc->members.size() == 7);
  CHECK(doc->members[4].first == "request_id");
  CHECK(doc->members[6].first == "ok");
}

TEST_CASE("JsonLinesSink::format writes strings as escaped, valid JSON", "[log][format]") {
  CHECK(field_json("plain") == R"("plain")");
  CHECK(field_json(std::string("from std::string")) == R"("from std::string")");
  CHECK(field_json("say \"hi\"\\") == R"("say \"hi\"\\")");
  CHECK(field_json("a\nb\tc\r") == R"("a\nb\tc\r")");
  CHECK(field_json("\x01\x1f\x7f") == R"("\u0001\u001f\u007f")");
  CHECK(field_json("nul\0inside"sv) == R"("nul\u0000inside")");
  CHECK(field_json("caf\xC3\xA9") == "\"caf\xC3\xA9\"");

  // Invalid UTF-8 becomes U+FFFD so the line stays valid JSON.
  std::string bad = field_json("x\xFFy\xC3");
  CHECK(bad == "\"x\xEF\xBF\xBDy\xEF\xBF\xBD\"");

  // A line cannot be split by a field: a client-supplied newline stays escaped.
  std::string line = line_with("path", "/v1/secret\n{\"level\":\"error\"}");
  CHECK(line.find('\n') == std::string::npos);
  auto doc = read_json(line);
  REQUIRE(doc.has_value());
  REQUIRE(doc->find("path") != nullptr);
  CHECK(doc->find("path")->text == "/v1/secret\n{\"level\":\"error\"}");
  CHECK(doc->find("level")->text == "info");
}

TEST_CASE("JsonLinesSink::format escapes topic, message and keys", "[log][format]") {
  const Field fields[] = {{"we\"ird\nkey", 1}};
  std::string line = line_with(fields, Level::info, "to\"pic", "line one\nline \xFF two");
  INFO(line);
  CHECK(line.find('\n') == std::string::npos);
  auto doc = read_json(line);
  REQUIRE(doc.has_value());
  CHECK(doc->find("topic")->text == "to\"pic");
  CHECK(doc->find("msg")->text == "line one\nline \xEF\xBF\xBD two");
  REQUIRE(doc->find("we\"ird\nkey") != nullptr);
  CHECK(doc->find("we\"ird\nkey")->text == "1");
}

TEST_CASE("JsonLinesSink::format writes signed integers exactly", "[log][format]") {
  CHECK(field_json(0) == "0");
  CHECK(field_json(42) == "42");
  CHECK(field_json(-42) == "-42");
  CHECK(field_json(-1L) == "-1");
  CHECK(field_json(std::numeric_limits<int>::min()) == "-2147483648");
  CHECK(field_json(std::numeric_limits<std::int64_t>::max()) == "9223372036854775807");
  CHECK(field_json(std::numeric_limits<std::int64_t>::min()) == "-9223372036854775808");
  CHECK(field_json(std::numeric_limits<long long>::min() + 1) == "-9223372036854775807");
}

TEST_CASE("JsonLinesSink::format writes unsigned integers exactly", "[log][format]") {
  CHECK(field_json(0u) == "0");
  CHECK(field_json(4294967295u) == "4294967295");
  CHECK(field_json(std::size_t{123}) == "123");
  CHECK(field_json(std::numeric_limits<std::uint64_t>::max()) == "18446744073709551615");
  CHECK(field_json(std::numeric_limits<unsigned long long>::max()) == "18446744073709551615");
}

TEST_CASE("JsonLinesSink::format writes booleans", "[log][format]") {
  CHECK(field_json(true) == "true");
  CHECK(field_json(false) == "false");
}

TEST_CASE("JsonLinesSink::format writes finite doubles as numbers and the rest as null", "[log][format]") {
  CHECK(field_json(1.5) == "1.5");
  CHECK(field_json(-0.25) == "-0.25");
  CHECK(field_json(0.0) == "0");
  CHECK(field_json(100.0) == "100");
  // Large and small magnitudes use exponents that are still JSON numbers.
  for (double d : {1e21, 1.5e-7, -3.25e300, 123456789.0, -0.001}) {
    std::string text = field_json(d);
    INFO(d << " -> " << text);
    auto v = read_json(text);
    REQUIRE(v.has_value());
    CHECK(v->type == Json::Type::number);
    CHECK(std::stod(text) == Approx(d).epsilon(1e-5));
  }
  CHECK(field_json(std::numeric_limits<double>::quiet_NaN()) == "null");
  CHECK(field_json(-std::numeric_limits<double>::quiet_NaN()) == "null");
  CHECK(field_json(std::numeric_limits<double>::infinity()) == "null");
  CHECK(field_json(-std::numeric_limits<double>::infinity()) == "null");
}

TEST_CASE("JsonLinesSink::format shows only the length of redacted values", "[log][format][redact]") {
  const std::string secret = "hunter2-correct-horse-battery";
  std::string line = line_with("token", redact(std::string_view(secret)));
  CHECK(line == std::string(kHead) + R"(,"token":"[redacted 29 bytes]"})");
  CHECK(line.find("hunter2") == std::string::npos);
  CHECK(line.find("horse") == std::string::npos);

  const char bytes[] = {'s', '3', 'c', 'r', '3', 't', '\0', 'x'};
  std::string from_span = field_json(redact(std::span<const char>(bytes, sizeof bytes)));
  CHECK(from_span == R"("[redacted 8 bytes]")");
  CHECK(from_span.find("s3cr3t") == std::string::npos);

  CHECK(field_json(redact(std::string_view())) == R"("[redacted 0 bytes]")");
  CHECK(field_json(Redacted{std::numeric_limits<std::size_t>::max()}) == R"("[redacted 18446744073709551615 bytes]")");
}

TEST_CASE("level_name and parse_level agree", "[log][level]") {
  CHECK(level_name(Level::debug) == "debug");
  CHECK(level_name(Level::info) == "info");
  CHECK(level_name(Level::warning) == "warning");
  CHECK(level_name(Level::error) == "error");

  for (Level l : {Level::debug, Level::info, Level::warning, Level::error}) {
    Level parsed = l == Level::error ? Level::debug : Level::error;
    CHECK(parse_level(level_name(l), parsed));
    CHECK(parsed == l);
  }
  Level warn_alias = Level::debug;
  CHECK(parse_level("warn", warn_alias));
  CHECK(warn_alias == Level::warning);
}

TEST_CASE("parse_level rejects anything else", "[log][level]") {
  for (std::string_view bad : {""sv, "Info"sv, "DEBUG"sv, "WARN"sv, "warning "sv, " error"sv, "fatal"sv, "trace"sv,
                               "notice"sv, "err"sv, "0"sv, "info\0"sv}) {
    Level out = Level::info;
    INFO("input " << Catch::Detail::stringify(std::string(bad)));
    CHECK_FALSE(parse_level(bad, out));
  }
}

TEST_CASE("set_level filters records before they reach the sink", "[log][level][sink]") {
  CaptureScope scope;

  SECTION("warning drops debug and info") {
    set_level(Level::warning);
    CHECK(level() == Level::warning);
    CHECK_FALSE(enabled(Level::info));
    CHECK(enabled(Level::error));
    log_at_every_level();
    CHECK(levels_of(scope.records) == std::vector<Level>{Level::warning, Level::error});
  }
  SECTION("debug lets everything through") {
    set_level(Level::debug);
    log_at_every_level();
    CHECK(levels_of(scope.records) == std::vector<Level>{Level::debug, Level::info, Level::warning, Level::error});
  }
  SECTION("info is the usual threshold") {
    set_level(Level::info);
    log_at_every_level();
    CHECK(levels_of(scope.records) == std::vector<Level>{Level::info, Level::warning, Level::error});
  }
  SECTION("error keeps only errors") {
    set_level(Level::error);
    log_at_every_level();
    REQUIRE(scope.records.size() == 1);
    CHECK(scope.records[0].message == "e");
  }
}

TEST_CASE("the installed sink receives topic, message, fields and the current time", "[log][sink]") {
  CaptureScope scope;
  set_level(Level::info);
  auto before = std::chrono::system_clock::now();
  warn("server", "connection limit reached", {{"request_id", "r-17"}, {"open", 1024u}, {"token", redact("abc"sv)}});
  auto after = std::chrono::system_clock::now();

  REQUIRE(scope.records.size() == 1);
  const Captured& r = scope.records[0];
  CHECK(r.level == Level::warning);
  CHECK(r.topic == "server");
  CHECK(r.message == "connection limit reached");
  CHECK_THAT(r.line, StartsWith(R"({"ts":")"));
  CHECK_THAT(r.line, EndsWith(R"("level":"warning","topic":"server","msg":"connection limit reached",)"
                              R"("request_id":"r-17","open":1024,"token":"[redacted 3 bytes]"})"));
  CHECK(r.time >= before - std::chrono::milliseconds(1));
  CHECK(r.time <= after + std::chrono::milliseconds(1));
}

TEST_CASE("set_sink replaces the previous sink", "[log][sink]") {
  std::vector<Captured> first;
  CaptureScope scope;
  set_level(Level::info);
  set_sink(std::make_unique<CaptureSink>(first));
  info("test", "to the first");
  set_sink(std::make_unique<CaptureSink>(scope.records));
  info("test", "to the second");
  REQUIRE(first.size() == 1);
  CHECK(first[0].message == "to the first");
  REQUIRE(scope.records.size() == 1);
  CHECK(scope.records[0].message == "to the second");
}

TEST_CASE("redact_url hides the password of the userinfo", "[log][redact]") {
  CHECK(redact_url("https://u:p@h/") == "https://u:***@h/");
  CHECK(redact_url("https://ops:s3cret@connect.example:8443/v1/vaults?x=1") ==
        "https://ops:***@connect.example:8443/v1/vaults?x=1");
  CHECK(redact_url("http://user:pw@host") == "http://user:***@host");
  CHECK(redact_url("https://user:@host/") == "https://user:***@host/");
  // An '@' inside the password: everything up to the last '@' of the authority is userinfo.
  std::string at_in_password = redact_url("https://user:p@ss@host/x");
  CHECK(at_in_password == "https://user:***@host/x");
  CHECK(at_in_password.find("ss") == std::string::npos);
}

TEST_CASE("redact_url hides a userinfo without password entirely", "[log][redact]") {
  // A bare userinfo is more often a token than a user name.
  CHECK(redact_url("https://ghp_tokenvalue@host/path") == "https://***@host/path");
  CHECK(redact_url("https://tok@connect.example:8080") == "https://***@connect.example:8080");
  CHECK(redact_url("https://tok@host:8080/a:b") == "https://***@host:8080/a:b");
}

TEST_CASE("redact_url leaves URLs without userinfo unchanged", "[log][redact]") {
  for (std::string_view url :
       {"https://connect.example:8443/v1/vaults"sv, "http://localhost"sv, "unix:///run/chitty-agent/agent.sock"sv,
        ""sv}) {
    CHECK(redact_url(url) == url);
  }
}

TEST_CASE("redact_url treats the last '@' as the end of a userinfo, even past a '/', '?' or '#'", "[log][redact]") {
  // An unencoded password may contain '/', '?' or '#'; better to over-redact a
  // URL with '@' in its path than to print such a password.
  CHECK(redact_url("https://user:pa/ss@host/x") == "https://user:***@host/x");
  CHECK(redact_url("https://user:pa?ss@host") == "https://user:***@host");
  CHECK(redact_url("https://user:pa#ss@host") == "https://user:***@host");
  CHECK(redact_url("https://host/path@not-userinfo") == "https://***@not-userinfo");
  CHECK(redact_url("https://host?q=a@b") == "https://***@b");
}

TEST_CASE("redact_url leaves text without a scheme unchanged when it holds no credentials", "[log][redact]") {
  for (std::string_view text :
       {"connect.example:8080"sv, "/run/chitty-agent/agent.sock"sv, "localhost"sv, "not a url"sv}) {
    CHECK(redact_url(text) == text);
  }
}

TEST_CASE("redact_url never returns the password of a URL written without a scheme", "[log][redact]") {
  // A misconfigured upstream ("user:pass@host:port", the scheme forgotten) is
  // exactly what ends up in a config error message; it must not leak.
  std::string out = redact_url("ops:s3cret-pass@connect.example:8080/v1");
  CHECK(out.find("s3cret-pass") == std::string::npos);
  CHECK_THAT(out, Contains("connect.example:8080"));
}

TEST_CASE("is_sensitive_header matches credential headers in any case", "[log][redact]") {
  for (std::string_view name : {"Authorization"sv, "authorization"sv, "AUTHORIZATION"sv, "Proxy-Authorization"sv,
                                "Cookie"sv, "cookie"sv, "Set-Cookie"sv, "X-Emergency-Token"sv, "x-emergency-token"sv,
                                "X-Chitty-Step-Up"sv, "X-CHITTY-STEP-UP"sv, "X-Api-Key"sv, "X-Auth-Token"sv}) {
    INFO(std::string(name));
    CHECK(is_sensitive_header(name));
  }
  for (std::string_view name : {"Content-Type"sv, "Host"sv, "Content-Length"sv, "X-Request-Id"sv, ""sv,
                                "Authorization "sv, "Authorizatio"sv, "XAuthorization"sv, "Cookies"sv}) {
    INFO(std::string(name));
    CHECK_FALSE(is_sensitive_header(name));
  }
}

}  // namespace chitty::log

TEST_CASE("a throttle lets a burst through per period and reports what it held back", "[log][throttle]") {
  using namespace std::chrono_literals;
  chitty::log::Throttle t(3, 10s);
  chitty::MonoTime t0{};
  t0 += 1h;
  int written = 0;
  for (int i = 0; i < 1000; ++i) {
    if (t.allow(t0 + std::chrono::milliseconds(i))) ++written;
  }
  CHECK(written == 3);
  CHECK(t.suppressed() == 0);  // the lines written so far held nothing back
  // The next period: the first line says how many were held back.
  REQUIRE(t.allow(t0 + 10s));
  CHECK(t.suppressed() == 997);
  REQUIRE(t.allow(t0 + 10s));
  CHECK(t.suppressed() == 0);
  // A flood for a minute writes at most burst per period.
  written = 0;
  for (int ms = 0; ms < 60000; ms += 1) {
    if (t.allow(t0 + 20s + std::chrono::milliseconds(ms))) ++written;
  }
  CHECK(written == 3 * 6);
}
