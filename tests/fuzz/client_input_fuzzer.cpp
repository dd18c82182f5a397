// Fuzz target: what chittyctl reads from others — MCP messages (from an AI
// assistant's client), inject templates, env files — and the output masker.
// The first byte chooses; the rest is the input. Invariants: nothing
// crashes; the MCP server answers every message with at most one line of
// valid JSON and never with the value its agent gave it withheld; every
// refusal has a message; the streaming masker, fed in arbitrary pieces,
// conceals exactly the union of all the values' occurrences (each run of
// overlapping ones once).
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "canned_reply.hpp"
#include "chitty/client/env_file.hpp"
#include "chitty/client/masker.hpp"
#include "chitty/client/mcp.hpp"
#include "chitty/client/template.hpp"
#include "chitty/json/reader.hpp"

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

chitty::secure::Arena& arena() {
  static auto a = [] {
    chitty::secure::ArenaOptions o;
    o.capacity = 1 << 20;
    o.allow_unlocked = true;
    o.use_memfd_secret = false;
    return std::move(*chitty::secure::Arena::create(o));
  }();
  return *a;
}

// An agent that grants everything, withholding the value as the MCP
// channel's default does; its answers never hold the secret below.
struct CannedAgent final : chitty::client::Transport {
  chitty::client::Outcome<chitty::client::Reply> send(const chitty::client::Request& r) override {
    static constexpr std::string_view body =
        R"({"success":true,"credential":{"value":null,"withheld":true,"masked_value":"…cdef","ref":"op://V/I/f","source":"env","fetched_at":"2026-12-08T00:00:00.000Z","expires_at":"2026-12-08T00:05:00.000Z"},"metadata":{"risk_score":3,"risk_level":"low","decision":"allow","risk_factors":[],"cache":"hit","mode":"normal","request_id":"r"},"status":"healthy","events":[],"valid":true})";
    auto reply = chitty::testing::canned_reply(arena(), r, 200, body);
    check(reply.has_value());
    return reply;
  }
};

void mcp(std::string_view input) {
  static CannedAgent agent;
  static chitty::client::McpServer server(arena(), agent, chitty::client::McpServerOptions{"0", "", "", nullptr});
  int answers = 0;
  server.handle(input, [&](std::span<const char> m) {
    ++answers;
    std::string_view text(m.data(), m.size());
    check(text.find('\n') == std::string_view::npos);
    check(chitty::json::parse(text).has_value());
  });
  check(answers <= 1);
}

// The reference: every occurrence of every value as an interval,
// overlapping intervals merged, each merged one concealed once.
std::string naive_mask(std::string_view in, const std::vector<std::string>& values) {
  std::vector<std::pair<std::size_t, std::size_t>> spans;
  for (const auto& v : values) {
    if (v.empty()) continue;
    for (std::size_t at = in.find(v); at != std::string_view::npos; at = in.find(v, at + 1)) {
      spans.emplace_back(at, at + v.size());
    }
  }
  std::sort(spans.begin(), spans.end());
  std::string out;
  std::size_t pos = 0;
  for (std::size_t k = 0; k < spans.size();) {
    std::size_t start = spans[k].first, end = spans[k].second;
    for (++k; k < spans.size() && spans[k].first < end; ++k) end = std::max(end, spans[k].second);
    out.append(in.substr(pos, start - pos));
    out += chitty::client::kConcealed;
    pos = end;
  }
  out.append(in.substr(pos));
  return out;
}

// Input: up to three values (length-prefixed), then the stream; the bytes
// of the stream also choose where it is cut into reads.
void masker(std::string_view input) {
  std::vector<std::string> values;
  for (int k = 0; k < 3 && !input.empty(); ++k) {
    std::size_t n = static_cast<unsigned char>(input[0]) % 24;
    input.remove_prefix(1);
    n = std::min(n, input.size());
    values.emplace_back(input.substr(0, n));
    input.remove_prefix(n);
  }
  std::vector<std::span<const char>> spans;
  for (const auto& v : values) spans.emplace_back(v.data(), v.size());
  auto m = chitty::client::Masker::create(arena(), spans);
  check(m.has_value());
  std::string out;
  auto emit = [&](std::span<const char> b) { out.append(b.data(), b.size()); };
  std::size_t i = 0;
  while (i < input.size()) {
    std::size_t n = 1 + static_cast<unsigned char>(input[i]) % 7;
    n = std::min(n, input.size() - i);
    m->feed({input.data() + i, n}, emit);
    i += n;
  }
  m->finish(emit);
  check(out == naive_mask(input, values));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size);

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  std::string_view input(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 4) {
    case 0: mcp(input); break;
    case 1: {
      auto t = chitty::client::parse_template(input, [](std::string_view name) -> std::optional<std::string> {
        if (name.size() % 2 == 0) return std::nullopt;
        return std::string(name);
      });
      if (!t) check(!t.error().message.empty());
      break;
    }
    case 2: {
      auto e = chitty::client::parse_env_file(input, "f");
      if (!e) {
        check(!e.error().message.empty());
      } else {
        for (const auto& en : *e) check(chitty::client::is_env_name(en.name));
      }
      break;
    }
    default: masker(input); break;
  }
  return 0;
}
