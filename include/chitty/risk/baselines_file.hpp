// The services' baselines kept in the state directory across restarts, so
// that a restarted agent does not take every access for a first one: the
// engine's text form and a MAC under the audit chain key (docs/risk.md, "The
// baselines file"). Saved with secure::save_signed_state and read with
// secure::load_signed_state (refused when the MAC does not verify, or the
// text is not a baselines file: the baselines are then left as they were).
#pragma once

#include <string>

#include "chitty/secure/signed_text.hpp"

namespace chitty::risk {

// The baselines file at `path` (normally <state_dir>/risk.baselines).
secure::SignedFile baselines_file(const std::string& path);

}  // namespace chitty::risk
