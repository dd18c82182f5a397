#include "connecting_child.hpp"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

namespace chitty::testing {

ConnectingChild::ConnectingChild(int fd, const std::string& path, std::vector<std::string> exec_after_release) {
  int go[2], done[2];
  if (pipe(go) != 0) return;
  if (pipe(done) != 0) {
    close(go[0]);
    close(go[1]);
    return;
  }
  pid_t parent = getpid();
  pid_ = fork();
  if (pid_ == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) _exit(2);
    close(go[1]);
    close(done[0]);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
    char result = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 ? 'c' : 'x';
    (void)!write(done[1], &result, 1);
    char b;
    (void)!read(go[0], &b, 1);  // EOF too: the test is gone
    if (!exec_after_release.empty()) {
      std::vector<char*> argv;
      for (auto& a : exec_after_release) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    _exit(result == 'c' ? 0 : 1);
  }
  close(go[0]);
  close(done[1]);
  go_ = go[1];
  char result = 0;
  connected_ = pid_ > 0 && read(done[0], &result, 1) == 1 && result == 'c';
  close(done[0]);
}

void ConnectingChild::release() {
  if (go_ < 0) return;
  (void)!write(go_, "g", 1);
  close(go_);
  go_ = -1;
}

bool ConnectingChild::reap() {
  if (pid_ <= 0 || reaped_) return false;
  int status = 0;
  reaped_ = waitpid(pid_, &status, 0) == pid_;
  return reaped_ && WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

ConnectingChild::~ConnectingChild() {
  if (go_ >= 0) close(go_);
  if (pid_ > 0 && !reaped_) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

}  // namespace chitty::testing
