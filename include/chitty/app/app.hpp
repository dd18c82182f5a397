// The composition root: configuration in, a running agent out.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "chitty/base/clock.hpp"
#include "chitty/config/config.hpp"

namespace chitty::app {

// Exit codes of chitty-agent (docs/operations.md).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;    // could not start, or did not stop cleanly
inline constexpr int kExitBadConfig = 2;  // the configuration is invalid

// Where the configuration comes from: a file (or the built-in defaults) and
// the command-line overrides that win over it, at start and on every reload.
struct RunOptions {
  std::optional<std::string> config_path;
  std::optional<std::string> socket;     // --socket
  std::optional<std::string> state_dir;  // --state-dir
  // --accept-revocations: take <state_dir>/revocations.json as it is (or an
  // empty set when it is missing) and seal it again, instead of refusing to
  // start because its MAC does not match or it is missing.
  bool accept_revocations = false;
};

// Loads the configuration as the agent does at start and on SIGHUP.
config::LoadResult load_configuration(const RunOptions& options);

// What the configuration asks for that this process cannot deliver, one
// warning each (--check-config prints them; the agent logs them at start):
// an `exe` selector, without CAP_SYS_PTRACE, matches only callers of the
// agent's own uid (docs/systemd.md, "Executable selectors").
std::vector<std::string> selector_warnings(const config::Config& config);

// Tells the service manager (STOPPING=1 and STATUS=) that the agent gives up
// before run() could start, e.g. on an invalid configuration.
void report_startup_failure(const std::string& reason);

// Runs the agent with `config` until SIGTERM or SIGINT has drained it.
// `process_start` is when main() began (for the start-up time in the log).
int run(const RunOptions& options, const config::Config& config, MonoTime process_start);

}  // namespace chitty::app
