// Text files in the state directory that only the agent may have written
// (the prediction model, the risk baselines): the text, then a last line
// "mac <hex>", an HMAC under the audit chain key over a domain string and
// the text — the domain, one per kind of file, keeps any other MAC'd file
// (an audit line, the revocations file, another kind of state) from passing
// for this one. A file whose MAC does not verify is refused, never
// half-trusted.
//
// Thread: any (blocking file I/O: small files, read at start and written
// on an interval).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "chitty/base/result.hpp"
#include "chitty/secure/mac_key.hpp"

namespace chitty::secure {

struct SignedFile {
  std::string path;
  std::string_view domain;  // e.g. "chitty-agent prediction model v1\n"
  std::string_view what;    // names the file in errors: "prediction model"
  std::size_t max_bytes;
};

// Replaces the file atomically with `text` (a final newline added when it
// has none) and its MAC.
[[nodiscard]] Result<void> save_signed_text(const SignedFile& f, std::string text, const MacKey& key);

// The text, or nullopt when there is no file yet. Refused: a file that is
// not the agent's private file, is larger than max_bytes, has no MAC line,
// or whose MAC does not verify under `key`.
[[nodiscard]] Result<std::optional<std::string>> load_signed_text(const SignedFile& f, const MacKey& key);

// The same for a state with `std::string serialize() const` and
// `Result<void> parse(std::string_view)` (the prediction model, the risk
// baselines). load: true when read, false when there is no file yet; a text
// parse() refuses is refused too, the state left as it was.
template <typename State>
[[nodiscard]] Result<void> save_signed_state(const SignedFile& f, const State& state, const MacKey& key) {
  return save_signed_text(f, state.serialize(), key);
}
template <typename State>
[[nodiscard]] Result<bool> load_signed_state(const SignedFile& f, State& state, const MacKey& key) {
  auto text = load_signed_text(f, key);
  if (!text) return tl::unexpected(text.error());
  if (!*text) return false;
  if (auto ok = state.parse(**text); !ok) return fail(std::string(f.what) + " " + f.path + ": " + ok.error().message);
  return true;
}

}  // namespace chitty::secure
