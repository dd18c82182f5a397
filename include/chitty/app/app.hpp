// The composition root: configuration in, a running agent out.
#pragma once

#include "chitty/base/clock.hpp"
#include "chitty/config/config.hpp"

namespace chitty::app {

// Exit codes of chitty-agent (docs/operations.md).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;      // could not start or crashed out of the loop
inline constexpr int kExitBadConfig = 2;    // the configuration is invalid

// Runs the agent with `config` until SIGTERM or SIGINT has drained it.
// `process_start` is when main() began (for the start-up time in the log).
int run(const config::Config& config, MonoTime process_start);

}  // namespace chitty::app
