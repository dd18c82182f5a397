// A Node.js fake (the Connect emulator, the audit sink) as a child process of
// a test: started with `--port P --port-file F --exit-with-stdin`, waited for
// until it has written its port, its stdin held open as a lifeline (when the
// test dies, the fake exits). stderr goes to `<dir>/<name>.log`, stdout to
// `<dir>/<name>.stdout`, both appended across restarts.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <string>
#include <vector>

namespace chitty::testing {

class NodeChild {
 public:
  // `what` names the fake in errors ("connect emulator").
  NodeChild(std::string what, std::string name, const std::string& dir);
  ~NodeChild();  // SIGTERM, then SIGKILL after 3 s; reaps
  NodeChild(const NodeChild&) = delete;
  NodeChild& operator=(const NodeChild&) = delete;

  // Runs `$CHITTY_NODE` (default `node`) `script args…` on `port` (0: a free
  // one) and waits for its port file. If a fixed port is still busy (exit
  // code 3 with EADDRINUSE) it retries for 3 s. Throws std::runtime_error
  // with the fake's log on failure or after 15 s.
  void start(const std::string& script, const std::vector<std::string>& args, int port);
  bool running();
  void kill();  // SIGKILL now; reaps
  // SIGTERM and wait; true when it exited with status 0.
  bool stop(std::chrono::milliseconds timeout);

  int port() const noexcept { return port_; }
  pid_t pid() const noexcept { return pid_; }
  std::string log() const;  // stderr, all runs

 private:
  void close_lifeline() noexcept;

  std::string what_;
  std::string stdout_path_;
  std::string log_path_;
  std::string port_file_;
  int port_ = 0;
  pid_t pid_ = -1;
  int lifeline_ = -1;  // write end of the child's stdin
};

// The exit code of `child` once it exits within `timeout`, or -2 if it is
// still running then (-1 if it is not our child).
int wait_child(pid_t child, std::chrono::milliseconds timeout);

}  // namespace chitty::testing
