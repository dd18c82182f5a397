// Durations and sizes as written in configuration files: parsing, canonical
// formatting and the round trip between the two.
#include "chitty/base/units.hpp"

#include <chrono>
#include <cstdint>
#include <limits>
#include <string>

#include <catch2/catch.hpp>

namespace chitty {

using namespace std::chrono_literals;
using Catch::Matchers::Contains;

namespace {

constexpr std::uint64_t kU64Max = std::numeric_limits<std::uint64_t>::max();
constexpr std::int64_t kI64Max = std::numeric_limits<std::int64_t>::max();

std::chrono::nanoseconds duration_of(std::string_view text) {
  auto d = parse_duration(text);
  INFO("parse_duration(\"" << std::string(text) << "\")");
  REQUIRE(d.has_value());
  return *d;
}

std::string duration_error(std::string_view text) {
  auto d = parse_duration(text);
  INFO("parse_duration(\"" << std::string(text) << "\") must fail");
  REQUIRE_FALSE(d.has_value());
  return d.error().message;
}

std::uint64_t size_of(std::string_view text) {
  auto s = parse_size(text);
  INFO("parse_size(\"" << std::string(text) << "\")");
  REQUIRE(s.has_value());
  return *s;
}

std::string size_error(std::string_view text) {
  auto s = parse_size(text);
  INFO("parse_size(\"" << std::string(text) << "\") must fail");
  REQUIRE_FALSE(s.has_value());
  return s.error().message;
}

}  // namespace

TEST_CASE("parse_duration reads every unit", "[units][duration]") {
  CHECK(duration_of("10ns") == 10ns);
  CHECK(duration_of("7us") == 7us);
  CHECK(duration_of("300ms") == 300ms);
  CHECK(duration_of("250ms") == 250ms);
  CHECK(duration_of("45s") == 45s);
  CHECK(duration_of("5m") == 5min);
  CHECK(duration_of("2h") == 2h);
  CHECK(duration_of("1d") == 24h);
  CHECK(duration_of("0s") == 0ns);
  CHECK(duration_of("0ms") == 0ns);
}

TEST_CASE("parse_duration adds up several groups", "[units][duration]") {
  CHECK(duration_of("1h30m") == 90min);
  CHECK(duration_of("1m30s") == 90s);
  CHECK(duration_of("2h0m5s") == 2h + 5s);
  CHECK(duration_of("1s500ms") == 1500ms);
  CHECK(duration_of("1d1h1m1s1ms1us1ns") == 24h + 1h + 1min + 1s + 1ms + 1us + 1ns);
  // "ms" is one unit, not minutes followed by garbage.
  CHECK(duration_of("5m5ms") == 5min + 5ms);
  CHECK(duration_of("007s") == 7s);
}

TEST_CASE("parse_duration accepts the largest representable duration and no more", "[units][duration]") {
  CHECK(duration_of("9223372036854775807ns").count() == kI64Max);
  CHECK(duration_of("106751d") == std::chrono::hours(24) * 106751);

  CHECK_THAT(duration_error("9223372036854775808ns"), Contains("too long"));
  CHECK_THAT(duration_error("106752d"), Contains("too long"));
  // Each group fits, the sum does not.
  CHECK_THAT(duration_error("9223372036854775807ns1ns"), Contains("too long"));
  CHECK_THAT(duration_error("106751d106751d"), Contains("too long"));
  // The number alone does not fit in 64 bits.
  CHECK_THAT(duration_error("99999999999999999999999s"), Contains("number too large"));
  CHECK_THAT(duration_error("18446744073709551616ns"), Contains("number too large"));
}

TEST_CASE("parse_duration rejects text that is not a duration", "[units][duration]") {
  CHECK_THAT(duration_error(""), Contains("empty duration"));
  // A bare number is an error, not seconds.
  CHECK_THAT(duration_error("5"), Contains("missing unit"));
  CHECK_THAT(duration_error("1h30"), Contains("missing unit"));
  CHECK_THAT(duration_error("ms"), Contains("expected a number at position 1"));
  CHECK_THAT(duration_error("5x"), Contains("unknown unit \"x\""));
  CHECK_THAT(duration_error("5S"), Contains("unknown unit \"S\""));
  CHECK_THAT(duration_error("5sec"), Contains("unknown unit \"sec\""));
  CHECK_THAT(duration_error("1.5h"), Contains("unknown unit \".\""));
  CHECK_THAT(duration_error("5s "), Contains("unknown unit"));
  CHECK_THAT(duration_error("5 s"), Contains("unknown unit"));
  CHECK(!parse_duration("-5s").has_value());
  CHECK(!parse_duration(" 5s").has_value());
  CHECK(!parse_duration("+5s").has_value());
  CHECK(!parse_duration("5s-").has_value());
}

TEST_CASE("parse_duration error messages quote the input and list the units", "[units][duration]") {
  std::string msg = duration_error("12parsecs");
  CHECK_THAT(msg, Contains("\"12parsecs\""));
  CHECK_THAT(msg, Contains("ns, us, ms, s, m, h, d"));
  // Control characters in the input are escaped, not copied into the message.
  std::string ctl = duration_error("5\n");
  CHECK_THAT(ctl, Contains("\\n"));
  CHECK(ctl.find('\n') == std::string::npos);
}

TEST_CASE("parse_size reads bytes and every unit", "[units][size]") {
  CHECK(size_of("0") == 0);
  CHECK(size_of("1024") == 1024);
  CHECK(size_of("512B") == 512);
  CHECK(size_of("64KiB") == 64 * 1024);
  CHECK(size_of("8MiB") == 8ULL * 1024 * 1024);
  CHECK(size_of("2GiB") == 2ULL * 1024 * 1024 * 1024);
  CHECK(size_of("1KB") == 1000);
  CHECK(size_of("3MB") == 3'000'000);
  CHECK(size_of("5GB") == 5'000'000'000ULL);
  CHECK(size_of("0MiB") == 0);
  CHECK(size_of("18446744073709551615") == kU64Max);
  CHECK(size_of("17179869183GiB") == 17179869183ULL << 30);
}

TEST_CASE("parse_size rejects text that is not a size", "[units][size]") {
  CHECK_THAT(size_error(""), Contains("empty size"));
  CHECK_THAT(size_error("KiB"), Contains("expected a number"));
  CHECK_THAT(size_error("8mib"), Contains("unknown unit \"mib\""));
  CHECK_THAT(size_error("8kb"), Contains("unknown unit \"kb\""));
  CHECK_THAT(size_error("8 MiB"), Contains("unknown unit \" MiB\""));
  CHECK_THAT(size_error("8MiBs"), Contains("unknown unit"));
  CHECK_THAT(size_error("1.5MiB"), Contains("unknown unit"));
  CHECK(!parse_size("-1").has_value());
  CHECK(!parse_size(" 1").has_value());
  CHECK(!parse_size("1MiB1KiB").has_value());
}

TEST_CASE("parse_size detects overflow", "[units][size]") {
  CHECK_THAT(size_error("18446744073709551616"), Contains("number too large"));
  CHECK_THAT(size_error("17179869184GiB"), Contains("too large"));
  CHECK_THAT(size_error("18446744073709552KB"), Contains("too large"));
}

TEST_CASE("format_duration writes the canonical short form", "[units][duration]") {
  CHECK(format_duration(0ns) == "0s");
  CHECK(format_duration(1ns) == "1ns");
  CHECK(format_duration(1500ns) == "1500ns");
  CHECK(format_duration(1us) == "1us");
  CHECK(format_duration(250ms) == "250ms");
  CHECK(format_duration(1500ms) == "1500ms");
  CHECK(format_duration(1s) == "1s");
  CHECK(format_duration(60s) == "1m");
  CHECK(format_duration(90s) == "1m30s");
  CHECK(format_duration(90min) == "1h30m");
  CHECK(format_duration(3661s) == "1h1m1s");
  CHECK(format_duration(2h + 5s) == "2h5s");
  CHECK(format_duration(48h) == "48h");
  // Negative durations are clamped rather than printed as huge numbers.
  CHECK(format_duration(-5s) == "0s");
}

TEST_CASE("format_duration output parses back to the same duration", "[units][duration]") {
  const std::chrono::nanoseconds samples[] = {
      0ns,
      1ns,
      999ns,
      1us,
      1001us,
      1ms,
      100ms,
      999ms,
      1s,
      59s,
      60s,
      61s,
      3599s,
      3600s,
      90min,
      25h,
      1h + 1ms,
      1min + 1ns,
      std::chrono::nanoseconds(kI64Max),
  };
  for (auto d : samples) {
    std::string text = format_duration(d);
    INFO(d.count() << "ns formatted as " << text);
    auto back = parse_duration(text);
    REQUIRE(back.has_value());
    CHECK(*back == d);
  }
}

TEST_CASE("format_size writes the largest exact binary unit", "[units][size]") {
  CHECK(format_size(0) == "0B");
  CHECK(format_size(1) == "1B");
  CHECK(format_size(512) == "512B");
  CHECK(format_size(1000) == "1000B");
  CHECK(format_size(1024) == "1KiB");
  CHECK(format_size(1536) == "1536B");
  CHECK(format_size(16 * 1024) == "16KiB");
  CHECK(format_size(1024 * 1024) == "1MiB");
  CHECK(format_size(1024 * 1024 + 1024) == "1025KiB");
  CHECK(format_size(8ULL << 20) == "8MiB");
  CHECK(format_size(1ULL << 30) == "1GiB");
  CHECK(format_size(1ULL << 40) == "1024GiB");
  CHECK(format_size(kU64Max) == "18446744073709551615B");
}

TEST_CASE("format_size output parses back to the same size", "[units][size]") {
  const std::uint64_t samples[] = {0,          1,          1023,         1024,   1025, 65536, 1 << 20, (1 << 20) + 1,
                                   3ULL << 30, 1ULL << 40, (1ULL << 63), kU64Max};
  for (auto n : samples) {
    std::string text = format_size(n);
    INFO(n << " formatted as " << text);
    auto back = parse_size(text);
    REQUIRE(back.has_value());
    CHECK(*back == n);
  }
}

}  // namespace chitty
