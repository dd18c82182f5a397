// The services' baselines kept in the state directory across restarts, so
// that a restarted agent does not take every access for a first one: the
// engine's text form and a MAC under the audit chain key (docs/risk.md, "The
// baselines file"). A file whose MAC does not verify is refused.
//
// Thread: loop thread (the file is small: references, names and counts).
#pragma once

#include <string>

#include "chitty/base/result.hpp"
#include "chitty/risk/engine.hpp"
#include "chitty/secure/mac_key.hpp"

namespace chitty::risk {

// Replaces `path` atomically with the engine's baselines and their MAC.
[[nodiscard]] Result<void> save_baselines(const std::string& path, const Engine& engine, const secure::MacKey& key);

// What load_baselines() found.
enum class Loaded { baselines, none };  // none: no file yet (a first start)

// Reads `path` into `engine`: refused (the baselines left as they were)
// when the file is not the agent's private file, its MAC does not verify
// under `key`, or its text is not a baselines file.
[[nodiscard]] Result<Loaded> load_baselines(const std::string& path, Engine& engine, const secure::MacKey& key);

}  // namespace chitty::risk
