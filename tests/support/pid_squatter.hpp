// A process that takes a chosen pid: the way to test that a connection whose
// process exited is never attributed to the next owner of its pid.
//
// Uses clone3() with set_tid (needs CAP_SYS_ADMIN over the PID namespace,
// i.e. root): no global ns_last_pid write, no race with other forks (a busy
// pid gives EEXIST). The squatter dies with its parent (PR_SET_PDEATHSIG)
// and with this object.
#pragma once

#include <sys/types.h>

#include <optional>

namespace chitty::testing {

class PidSquatter {
 public:
  // A sleeping process with pid `pid`, running as `uid` (and gid = uid) if
  // given; nullopt if that cannot be done here (not root, pid busy).
  static std::optional<PidSquatter> take(pid_t pid, uid_t uid = static_cast<uid_t>(-1));

  ~PidSquatter();
  PidSquatter(PidSquatter&& o) noexcept;
  PidSquatter& operator=(PidSquatter&&) = delete;
  PidSquatter(const PidSquatter&) = delete;
  PidSquatter& operator=(const PidSquatter&) = delete;

  pid_t pid() const noexcept { return pid_; }

 private:
  explicit PidSquatter(pid_t pid) : pid_(pid) {}
  pid_t pid_;
};

}  // namespace chitty::testing
