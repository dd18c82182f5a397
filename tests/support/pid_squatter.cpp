#include "pid_squatter.hpp"

#include <linux/sched.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <utility>

namespace chitty::testing {

std::optional<PidSquatter> PidSquatter::take(pid_t pid, uid_t uid) {
  if (geteuid() != 0) return std::nullopt;
  int ready[2];
  if (pipe(ready) != 0) return std::nullopt;
  pid_t parent = getpid();
  pid_t wanted = pid;
  clone_args args;
  std::memset(&args, 0, sizeof args);
  args.exit_signal = SIGCHLD;
  args.set_tid = reinterpret_cast<std::uint64_t>(&wanted);
  args.set_tid_size = 1;
  long r = syscall(SYS_clone3, &args, sizeof args);
  if (r == 0) {
    // The child: raw system calls only (this is not a glibc fork).
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(2);
    if (uid != static_cast<uid_t>(-1)) {
      if (setresgid(uid, uid, uid) != 0 || setresuid(uid, uid, uid) != 0) _exit(3);
    }
    close(ready[0]);
    (void)!write(ready[1], "r", 1);
    for (;;) pause();
  }
  close(ready[1]);
  if (r < 0) {
    close(ready[0]);
    return std::nullopt;  // EEXIST: the pid is taken; EPERM: not allowed here
  }
  char c;
  bool up = read(ready[0], &c, 1) == 1;
  close(ready[0]);
  PidSquatter squatter(static_cast<pid_t>(r));
  if (!up || squatter.pid_ != pid) return std::nullopt;  // the destructor reaps it
  return squatter;
}

PidSquatter::PidSquatter(PidSquatter&& o) noexcept : pid_(std::exchange(o.pid_, -1)) {}

PidSquatter::~PidSquatter() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
}

}  // namespace chitty::testing
