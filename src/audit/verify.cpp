#include "chitty/audit/verify.hpp"

#include <dirent.h>
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <vector>

#include "chitty/audit/spool.hpp"
#include "chitty/json/reader.hpp"

namespace chitty::audit {

std::optional<Head> parse_head(std::string_view text) {
  std::size_t colon = text.find(':');
  if (colon == std::string_view::npos || colon == 0) return std::nullopt;
  Head h;
  for (char c : text.substr(0, colon)) {
    if (c < '0' || c > '9') return std::nullopt;
    h.seq = h.seq * 10 + static_cast<std::uint64_t>(c - '0');
  }
  h.mac = std::string(text.substr(colon + 1));
  secure::MacKey::Mac m;
  if (!secure::from_hex(h.mac, m)) return std::nullopt;
  return h;
}

bool Verifier::broken(std::string problem) {
  r_.ok = false;
  r_.break_line = line_no_;
  r_.break_file = file_;
  r_.problem = std::move(problem);
  return false;
}

bool Verifier::line(std::string_view text, std::string_view file) {
  if (!r_.problem.empty()) return false;
  if (file != file_) {
    file_ = std::string(file);
    line_no_ = 0;
  }
  ++line_no_;
  if (text.empty()) return true;
  // At-least-once delivery: the very same event again is not a break.
  if (text == prev_line_) {
    ++r_.duplicates;
    return true;
  }
  static constexpr std::string_view kMacKey = ",\"mac\":\"";
  std::string_view mac_hex = line_mac(text);
  if (mac_hex.empty()) return broken("not an audit event (no MAC at the end of the line)");
  std::string body = std::string(text.substr(0, text.size() - (kMacKey.size() + 64 + 2))) + "}";
  auto doc = json::parse(body);
  if (!doc || doc->type != json::Value::Type::object) return broken("not an audit event (not a JSON object)");
  const json::Value* seq_v = doc->find("seq");
  const json::Value* prev_v = doc->find("prev");
  if (seq_v == nullptr || !seq_v->integer || *seq_v->integer < 1) return broken("the event has no seq");
  if (prev_v == nullptr || prev_v->type != json::Value::Type::string) return broken("the event has no prev");
  auto seq = static_cast<std::uint64_t>(*seq_v->integer);
  secure::MacKey::Mac given;
  if (!secure::from_hex(mac_hex, given)) return broken("the MAC is not 64 hex digits");
  if (key_.mac(body) != given) {
    return broken("seq " + std::to_string(seq) +
                  ": the MAC does not match — the event was altered, or written without the chain key");
  }
  if (r_.events == 0) {
    if (expect_first_ != 0 && seq > expect_first_) {
      return broken("events " + std::to_string(expect_first_) + " to " + std::to_string(seq - 1) +
                    " are missing before the first one here (deleted before they were shipped)");
    }
    r_.first_seq = seq;
  } else {
    if (seq <= r_.last_seq) {
      return broken("seq " + std::to_string(seq) + " after " + std::to_string(r_.last_seq) +
                    ": events reordered or repeated");
    }
    if (seq != r_.last_seq + 1) {
      return broken("seq jumps from " + std::to_string(r_.last_seq) + " to " + std::to_string(seq) + ": " +
                    std::to_string(seq - r_.last_seq - 1) + " event(s) missing");
    }
    if (prev_v->string != r_.last_mac) {
      return broken("seq " + std::to_string(seq) + ": its prev is not the MAC of seq " + std::to_string(r_.last_seq) +
                    " — the chain was spliced");
    }
  }
  if (head_ && seq == head_->seq) {
    head_seen_ = true;
    if (mac_hex != head_->mac) {
      std::string why = "seq " + std::to_string(seq) + " is not the event the mirrored head names: ";
      if (restart_seq_ != 0) {
        why += "the spool was cut back before it and the agent restarted on the cut spool (the start event at seq " +
               std::to_string(restart_seq_) + " recovered head " + restart_head_ + ")";
      } else {
        why += "the tail was rewritten";
      }
      return broken(why);
    }
  }
  if (const json::Value* kind = doc->find("kind");
      kind != nullptr && kind->type == json::Value::Type::string && kind->string == "start") {
    if (const json::Value* rh = doc->find("recovered_head"); rh != nullptr && rh->type == json::Value::Type::string) {
      restart_seq_ = seq;
      restart_head_ = rh->string;
    }
  }
  r_.last_seq = seq;
  r_.last_mac = std::string(mac_hex);
  ++r_.events;
  prev_line_ = std::string(text);
  return true;
}

VerifyReport Verifier::finish() {
  if (!r_.problem.empty()) return r_;
  if (head_ && !head_seen_) {
    if (r_.events == 0 || r_.last_seq < head_->seq) {
      r_.problem = "the chain ends at seq " + std::to_string(r_.last_seq) + " but the mirrored head is seq " +
                   std::to_string(head_->seq) + ": the tail was cut off";
    } else {
      r_.problem = "the chain here starts at seq " + std::to_string(r_.first_seq) + ", after the mirrored head (seq " +
                   std::to_string(head_->seq) +
                   "), so it cannot be checked against it: verify the sink's copy, which holds the older events";
    }
    return r_;
  }
  if (r_.events == 0) {
    r_.problem = "no events";
    return r_;
  }
  r_.ok = true;
  return r_;
}

VerifyReport verify_path(const std::string& path, const secure::MacKey& key, const std::optional<Head>& head) {
  struct stat st {};
  std::vector<std::string> files;
  std::uint64_t expect_first = 0;
  if (path != "-" && ::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
    DIR* d = ::opendir(path.c_str());
    if (d != nullptr) {
      while (dirent* e = ::readdir(d)) {
        std::string_view n(e->d_name);
        if (n.starts_with("segment-") && n.ends_with(".ndjson")) files.push_back(path + "/" + e->d_name);
      }
      ::closedir(d);
    }
    std::sort(files.begin(), files.end());
    std::ifstream shipped(path + "/shipped");
    std::uint64_t acked = 0;
    // Segments wholly shipped are deleted: what is left must start at or
    // before the first event the sink does not have.
    if (shipped >> acked) expect_first = acked + 1;
  } else {
    files.push_back(path);
  }
  Verifier v(key, expect_first, head);
  for (const auto& f : files) {
    std::ifstream file_in;
    std::istream* in = &std::cin;
    if (f != "-") {
      file_in.open(f);
      if (!file_in) {
        VerifyReport r;
        r.problem = "cannot read " + f;
        return r;
      }
      in = &file_in;
    }
    std::string line;
    while (std::getline(*in, line)) {
      if (!v.line(line, f)) return v.finish();
    }
  }
  return v.finish();
}

}  // namespace chitty::audit
