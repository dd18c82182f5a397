// Process hardening for a process that holds secrets.
#pragma once

#include "chitty/base/result.hpp"

namespace chitty::secure {

// Initialises libsodium, makes the process non-dumpable (PR_SET_DUMPABLE 0:
// no core dumps, no ptrace or /proc/PID/mem by same-uid processes) and sets
// RLIMIT_CORE to 0. Call first thing, before any secret exists.
[[nodiscard]] Result<void> harden_process();

// For a client that holds secrets briefly and starts other programs
// (chittyctl): initialises libsodium and makes the process non-dumpable
// (no core dump, no ptrace by same-uid processes), but leaves RLIMIT_CORE
// alone, since the programs it starts inherit it (and become dumpable again
// at their exec).
[[nodiscard]] Result<void> harden_client_process();

// Whether the process is non-dumpable now (for /health and tests).
bool process_non_dumpable() noexcept;

}  // namespace chitty::secure
