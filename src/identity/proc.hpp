// Parsing /proc files of another process (pure functions, unit-tested).
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string_view>
#include <vector>

namespace chitty::identity {

// Field 22 of /proc/PID/stat (start time in clock ticks since boot). The
// command name (field 2) may contain spaces and parentheses, so fields are
// counted from the last ')'.
std::optional<std::uint64_t> stat_start_time(std::string_view stat);

// The "NSpid:" line of /proc/PID/status: the pid in each PID namespace from
// the reader's down to the process's own. Empty if absent.
std::vector<pid_t> status_nspids(std::string_view status);

// The "Pid:" line of /proc/self/fdinfo/<pidfd>: the pinned process's pid in
// the reader's namespace, -1 once it exited, 0 if it is not visible.
std::optional<long> fdinfo_pid(std::string_view fdinfo);

// The effective id on the "Uid:" or "Gid:" line of /proc/PID/status
// (real, effective, saved, filesystem).
std::optional<std::uint32_t> status_effective_id(std::string_view status, std::string_view line_name);

}  // namespace chitty::identity
