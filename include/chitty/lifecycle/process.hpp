// The process around the agent: the signals it handles held back until the
// loop watches them, SIGPIPE ignored, the descriptor limit raised.
#pragma once

namespace chitty::lifecycle {

// Blocks (or unblocks) SIGTERM, SIGINT and SIGHUP: from start until the loop
// watches them, so that one arriving while the agent starts is handled when
// it can be, not fatal.
void block_handled_signals(bool block);
// Writes to a socket whose peer left fail with EPIPE instead of killing the
// process; the soft limit on descriptors is raised to the hard one (every
// connection is a descriptor).
void prepare_process();

}  // namespace chitty::lifecycle
