// A child process that connects a socket the test keeps, so that SO_PEERCRED
// names the child while the test talks over the connection; then it waits
// until released, and exits (or executes another program). Killed and reaped
// with this object, and dies with the test process (PR_SET_PDEATHSIG).
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace chitty::testing {

class ConnectingChild {
 public:
  // Forks; the child connects `fd` to the Unix socket at `path`. Returns once
  // the connection is made (connected() says whether it worked).
  ConnectingChild(int fd, const std::string& path, std::vector<std::string> exec_after_release = {});
  ~ConnectingChild();
  ConnectingChild(const ConnectingChild&) = delete;
  ConnectingChild& operator=(const ConnectingChild&) = delete;

  pid_t pid() const noexcept { return pid_; }
  bool connected() const noexcept { return connected_; }

  // Lets the child go on: it exits, or executes `exec_after_release`.
  void release();
  // Waits for the child to exit (after release()); true if it exited 0.
  bool reap();

 private:
  pid_t pid_ = -1;
  int go_ = -1;
  bool connected_ = false;
  bool reaped_ = false;
};

}  // namespace chitty::testing
