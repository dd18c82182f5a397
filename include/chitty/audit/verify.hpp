// Checking an audit chain (docs/audit.md): a spool directory or an exported
// stream (the sink's NDJSON), line by line — each line an event, its MAC
// right under the chain key, its seq one more than the last, its prev the
// MAC of the event before; optionally a head that was mirrored elsewhere
// (journald): the chain must contain that very event (its seq with its MAC),
// so that a cut-off tail shows — also when the agent was restarted on the
// cut spool and new events have since passed the old seq. Reports the first
// break. Used by `chitty-agent --verify-audit` (and chittyctl).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "chitty/secure/mac_key.hpp"

namespace chitty::audit {

struct Head {
  std::uint64_t seq = 0;
  std::string mac;  // hex
};
// "SEQ:MAC" (as the agent logs it); nullopt when malformed.
std::optional<Head> parse_head(std::string_view text);

struct VerifyReport {
  bool ok = false;
  std::uint64_t events = 0;
  std::uint64_t duplicates = 0;  // the same event twice in a row (at-least-once delivery)
  std::uint64_t first_seq = 0;
  std::uint64_t last_seq = 0;
  std::string last_mac;
  // The first break: where (line number in the input, 1-based; the file for
  // a spool) and what.
  std::uint64_t break_line = 0;
  std::string break_file;
  std::string problem;
};

class Verifier {
 public:
  // `expect_first`: the chain must start at or before this seq (a spool:
  // the acknowledged seq + 1: nothing unshipped may be missing); 0 = wherever
  // the first event says. `head`: a mirrored head the chain must contain.
  Verifier(const secure::MacKey& key, std::uint64_t expect_first = 0, std::optional<Head> head = std::nullopt)
      : key_(key), expect_first_(expect_first), head_(std::move(head)) {}
  // Feeds one line; false once the chain is broken (finish() says where).
  bool line(std::string_view text, std::string_view file = "");
  // The verdict after the last line.
  VerifyReport finish();

 private:
  bool broken(std::string problem);
  const secure::MacKey& key_;
  std::uint64_t expect_first_;
  std::optional<Head> head_;
  bool head_seen_ = false;
  // The last start event that recovered a chain (its seq and the head it
  // recovered), for the report when the mirrored head is not in the chain.
  std::uint64_t restart_seq_ = 0;
  std::string restart_head_;
  VerifyReport r_;
  std::uint64_t line_no_ = 0;
  std::string file_;
  std::string prev_line_;
};

// Verifies a spool directory (its segments in order, from the acknowledged
// seq) or a file of NDJSON ("-" for standard input).
VerifyReport verify_path(const std::string& path, const secure::MacKey& key, const std::optional<Head>& head);

}  // namespace chitty::audit
