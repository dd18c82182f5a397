// Who is calling, as the kernel tells it: the attested identity of the
// process at the other end of a Unix socket connection.
//
// Every field is a Fact: either established (possibly "none", e.g. a host
// process has no container) or unknown with the reason. Policy matches only
// established facts, so a caller the agent cannot see clearly gets nothing a
// selector on that field would grant. What can be known in each situation
// (host, other uid, other PID namespace, container) is in docs/identity.md.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace chitty::identity {

template <typename T>
class Fact {
 public:
  static Fact known(T value) {
    Fact f;
    f.value_ = std::move(value);
    return f;
  }
  static Fact unknown(std::string reason) {
    Fact f;
    f.reason_ = std::move(reason);
    return f;
  }

  bool is_known() const noexcept { return value_.has_value(); }
  // Precondition: is_known().
  const T& value() const noexcept { return *value_; }
  // Why the fact could not be established (empty when known).
  const std::string& reason() const noexcept { return reason_; }
  // True only for an established fact equal to `v`: an unknown never matches.
  bool matches(const T& v) const { return value_.has_value() && *value_ == v; }

 private:
  std::optional<T> value_;
  std::string reason_;
};

// How the process behind the connection is pinned against PID reuse. (Names:
// peer.cpp, in this order.)
enum class PidfdSource {
  so_peerpidfd,  // the kernel's pidfd of the connecting process (Linux >= 6.5)
  pidfd_open,    // pidfd_open(pid) at accept, checked against the process start time
  none,          // no process to pin (pid unknown)
};
std::string_view pidfd_source_name(PidfdSource s) noexcept;

// The kernel's overflow uid/gid: what SO_PEERCRED reports for a caller whose
// user namespace has no mapping here.
inline constexpr uid_t kOverflowUid = 65534;
inline constexpr gid_t kOverflowGid = 65534;

// Where an identity comes from.
enum class Origin {
  peer,             // the process at the other end of the socket, as the kernel tells it
  load_credential,  // a unit named by systemd's credential helper (load_credential.hpp)
};

struct Identity {
  Origin origin = Origin::peer;
  // What SO_PEERCRED reported, translated into the agent's namespaces.
  uid_t raw_uid = static_cast<uid_t>(-1);
  gid_t raw_gid = static_cast<gid_t>(-1);
  pid_t raw_pid = 0;

  Fact<uid_t> uid = Fact<uid_t>::unknown("not read");  // unknown for the overflow uid
  Fact<gid_t> gid = Fact<gid_t>::unknown("not read");
  Fact<pid_t> pid = Fact<pid_t>::unknown("not read");  // unknown for pid 0 or an exited process
  // The process's start time (/proc/PID/stat field 22, clock ticks since
  // boot) when `pid` is known, else 0: with the pid it names one process,
  // never a later one that reuses the pid.
  std::uint64_t start_time = 0;
  // The pid as the caller sees it in its own PID namespace (innermost NSpid).
  Fact<pid_t> namespace_pid = Fact<pid_t>::unknown("not read");
  // The caller lives in a PID namespace below the agent's.
  Fact<bool> nested_pid_namespace = Fact<bool>::unknown("not read");
  Fact<std::string> exe = Fact<std::string>::unknown("not read");
  // `exe` is unknown only because reading another user's /proc/PID/exe needs
  // CAP_SYS_PTRACE, which the agent is run without (docs/systemd.md,
  // "Executable selectors"): the agent's choice, not a sign about the caller.
  bool exe_withheld = false;
  Fact<std::string> cgroup = Fact<std::string>::unknown("not read");
  // Established as "" when the caller is known to be in no such unit/container.
  Fact<std::string> unit = Fact<std::string>::unknown("not read");
  Fact<std::string> user_unit = Fact<std::string>::unknown("not read");
  Fact<std::string> container = Fact<std::string>::unknown("not read");
  Fact<std::string> container_runtime = Fact<std::string>::unknown("not read");
  PidfdSource pidfd_source = PidfdSource::none;
};

}  // namespace chitty::identity
