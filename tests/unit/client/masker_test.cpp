// Masking a command's output: whole values replaced, values split across
// reads held back and replaced, nothing of a value ever let through.
#include <catch2/catch.hpp>

#include "test_arena.hpp"

#include <string>

#include "chitty/client/masker.hpp"

using chitty::client::Masker;

namespace {

chitty::secure::Arena& arena() { return chitty::testing::client_test_arena(); }

struct Out {
  std::string text;
  std::vector<std::string> pieces;
  Masker::Emit emit() {
    return [this](std::span<const char> b) {
      text.append(b.data(), b.size());
      pieces.emplace_back(b.data(), b.size());
    };
  }
};

std::string masked(const std::vector<std::string>& values, const std::vector<std::string>& chunks) {
  std::vector<std::span<const char>> spans;
  for (const auto& v : values) spans.emplace_back(v.data(), v.size());
  auto m = Masker::create(arena(), spans);
  REQUIRE(m);
  Out out;
  for (const auto& c : chunks) m->feed({c.data(), c.size()}, out.emit());
  m->finish(out.emit());
  return out.text;
}

}  // namespace

TEST_CASE("a value in one read is replaced", "[client][masker]") {
  CHECK(masked({"s3cr3t-value"}, {"key=s3cr3t-value\n"}) == "key=<concealed by chitty>\n");
  CHECK(masked({"s3cr3t-value"}, {"s3cr3t-value s3cr3t-value"}) == "<concealed by chitty> <concealed by chitty>");
  CHECK(masked({"abc"}, {"no secret here"}) == "no secret here");
}

TEST_CASE("a value split across reads, at every split point, is replaced", "[client][masker]") {
  const std::string value = "sk-live-0123456789abcdef";
  const std::string line = "token: " + value + " end";
  for (std::size_t a = 0; a <= line.size(); ++a) {
    for (std::size_t b = a; b <= line.size(); b += 3) {
      CAPTURE(a, b);
      CHECK(masked({value}, {line.substr(0, a), line.substr(a, b - a), line.substr(b)}) ==
            "token: <concealed by chitty> end");
    }
  }
  // One byte at a time.
  std::vector<std::string> bytes;
  for (char c : line) bytes.emplace_back(1, c);
  CHECK(masked({value}, bytes) == "token: <concealed by chitty> end");
}

TEST_CASE("no piece of a value is emitted before it is decided", "[client][masker]") {
  const std::string value = "hunter2-hunter2";
  std::vector<std::span<const char>> spans{{value.data(), value.size()}};
  auto m = Masker::create(arena(), spans);
  REQUIRE(m);
  Out out;
  std::string first = "x hunter2-hun";
  m->feed({first.data(), first.size()}, out.emit());
  CHECK(out.text == "x ");  // the possible start of the value is held back
  CHECK(m->held() == 11);
  std::string second = "ter2!";
  m->feed({second.data(), second.size()}, out.emit());
  CHECK(out.text == "x <concealed by chitty>!");
  CHECK(m->held() == 0);
}

TEST_CASE("a held-back prefix that turns out not to be a value is emitted as it was", "[client][masker]") {
  CHECK(masked({"password123"}, {"pass", "port 22"}) == "passport 22");
  // At the end of the stream, a prefix of a value is just text.
  CHECK(masked({"password123"}, {"the pass"}) == "the pass");
}

TEST_CASE("overlapping occurrences are concealed together; no part of either shows", "[client][masker]") {
  CHECK(masked({"abc", "abcdef"}, {"xabcdefy"}) == "x<concealed by chitty>y");
  CHECK(masked({"abc", "abcdef"}, {"xab", "cdey"}) == "x<concealed by chitty>dey");
  CHECK(masked({"abc", "abcdef"}, {"x", "abc"}) == "x<concealed by chitty>");
  // A shorter value that starts first and runs into a longer one: the
  // longer one's rest must not show (found by review).
  const std::string a = "QQQQ-shortone-AB", b = "AB-SECRET-TAIL-123456";
  const std::string both = "QQQQ-shortone-AB-SECRET-TAIL-123456\n";
  CHECK(masked({a, b}, {both}) == "<concealed by chitty>\n");
  for (std::size_t cut = 0; cut <= both.size(); ++cut) {
    CAPTURE(cut);
    CHECK(masked({a, b}, {both.substr(0, cut), both.substr(cut)}) == "<concealed by chitty>\n");
  }
  // A value inside another, and a run of overlapping occurrences of one.
  CHECK(masked({"SECRET", "my-SECRET-token"}, {"my-SECRET-token!"}) == "<concealed by chitty>!");
  CHECK(masked({"aba"}, {"xababay"}) == "x<concealed by chitty>y");
  // Occurrences side by side are two.
  CHECK(masked({"abc"}, {"abcabc"}) == "<concealed by chitty><concealed by chitty>");
}

TEST_CASE("values with newlines and binary bytes are masked", "[client][masker]") {
  std::string pem = "-----BEGIN KEY-----\nAAAA\n-----END KEY-----";
  CHECK(masked({pem}, {"key:\n" + pem.substr(0, 20), pem.substr(20) + "\n"}) == "key:\n<concealed by chitty>\n");
  std::string bin("\x00\xff\x01secret", 9);
  CHECK(masked({bin}, {std::string("a") + bin + "b"}) == "a<concealed by chitty>b");
}

TEST_CASE("large reads are masked across the window", "[client][masker]") {
  const std::string value = "needle-in-the-haystack-0123456789";
  std::string big(200000, 'h');
  big.replace(65530, value.size(), value);  // across the first window's end
  big.replace(150000, value.size(), value);
  std::string expect = big;
  expect.replace(150000, value.size(), std::string(chitty::client::kConcealed));
  expect.replace(65530, value.size(), std::string(chitty::client::kConcealed));
  CHECK(masked({value}, {big}) == expect);
}

TEST_CASE("empty values are ignored and too large ones refused", "[client][masker]") {
  CHECK(masked({"", "abc"}, {"abc"}) == "<concealed by chitty>");
  std::string huge(Masker::kMaxValue + 1, 'x');
  std::vector<std::span<const char>> spans{{huge.data(), huge.size()}};
  auto m = Masker::create(arena(), spans);
  REQUIRE_FALSE(m);
  CHECK(m.error().message.find("--no-masking") != std::string::npos);
}
