// Reading another process's memory for secrets: every readable mapping of
// /proc/PID/maps through /proc/PID/mem (needs root or CAP_SYS_PTRACE for a
// non-dumpable process). Reports how much it read, so that a scan that
// read nothing cannot pass for a clean one.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

namespace chitty::testing {

struct Scan {
  std::uint64_t bytes_read = 0;
  std::size_t regions_read = 0;
  std::size_t regions_unreadable = 0;  // memfd_secret, [vvar], guard pages ...
  std::size_t regions_skipped = 0;     // sanitizer shadow (terabytes of reserved space)
  std::vector<std::size_t> hits;       // occurrences per needle
};

// Counts the occurrences of each needle in the memory of `pid`. Needles may
// straddle chunk borders. Throws std::runtime_error if /proc/PID cannot be
// opened.
Scan scan_memory(pid_t pid, const std::vector<std::string>& needles);

}  // namespace chitty::testing
