#include "node_child.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <thread>
#include <utility>

#include "temp_dir.hpp"

extern char** environ;

namespace chitty::testing {
namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kStartTimeout = std::chrono::seconds(15);
constexpr auto kBusyPortRetry = std::chrono::seconds(3);
constexpr int kListenFailed = 3;  // the fakes' exit code when they cannot listen

std::string file_text_from(const std::string& path, std::size_t offset) {
  std::string all = read_file(path);
  return offset < all.size() ? all.substr(offset) : std::string();
}

std::size_t file_size(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return static_cast<std::size_t>(st.st_size);
}

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

// posix_spawnp with stdin from `stdin_fd`, stdout/stderr appended to files,
// and a clean signal state (the test runner may block or ignore some).
pid_t spawn(const std::vector<std::string>& argv, int stdin_fd, const std::string& out, const std::string& err) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, stdin_fd, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawn_file_actions_addopen(&fa, 2, err.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  sigset_t defaults;
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGTERM);
  sigaddset(&defaults, SIGINT);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_t child = -1;
  int rc = posix_spawnp(&child, args[0], &fa, &attr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) throw std::runtime_error("cannot start " + argv[0] + ": " + std::strerror(rc));
  return child;
}

}  // namespace

int wait_child(pid_t child, std::chrono::milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (true) {
    int status = 0;
    pid_t r = ::waitpid(child, &status, WNOHANG);
    if (r == child) return decode_status(status);
    if (r < 0 && errno != EINTR) return -1;  // not our child any more
    if (Clock::now() >= deadline) return -2;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

NodeChild::NodeChild(std::string what, std::string name, const std::string& dir)
    : what_(std::move(what)),
      stdout_path_(dir + "/" + name + ".stdout"),
      log_path_(dir + "/" + name + ".log"),
      port_file_(dir + "/port") {}

NodeChild::~NodeChild() {
  if (pid_ > 0) {
    ::kill(pid_, SIGTERM);
    if (wait_child(pid_, std::chrono::seconds(3)) == -2) {
      ::kill(pid_, SIGKILL);
      wait_child(pid_, std::chrono::seconds(5));
    }
    pid_ = -1;
  }
  close_lifeline();
}

void NodeChild::close_lifeline() noexcept {
  if (lifeline_ >= 0) {
    ::close(lifeline_);
    lifeline_ = -1;
  }
}

void NodeChild::start(const std::string& script, const std::vector<std::string>& args, int requested_port) {
  if (::access(script.c_str(), R_OK) != 0) throw std::runtime_error("cannot read " + script);
  const char* node_env = std::getenv("CHITTY_NODE");
  std::vector<std::string> argv{node_env != nullptr && *node_env != '\0' ? node_env : "node", script};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.insert(argv.end(), {"--port", std::to_string(requested_port), "--port-file", port_file_, "--exit-with-stdin"});

  // A busy port right after kill() is unlikely (SO_REUSEADDR) but possible if
  // another process grabbed it: retry for a while on a fixed port.
  const auto retry_until = Clock::now() + kBusyPortRetry;
  while (true) {
    const auto deadline = Clock::now() + kStartTimeout;
    ::unlink(port_file_.c_str());
    std::size_t log_offset = file_size(log_path_);
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
    try {
      pid_ = spawn(argv, fds[0], stdout_path_, log_path_);
    } catch (...) {
      ::close(fds[0]);
      ::close(fds[1]);
      throw;
    }
    ::close(fds[0]);
    lifeline_ = fds[1];

    // Wait for the port file (written atomically: complete once it exists).
    while (true) {
      std::string text = read_file(port_file_);
      if (!text.empty() && text.back() == '\n') {
        port_ = std::atoi(text.c_str());
        if (port_ <= 0) throw std::runtime_error("bad port file: " + text);
        return;
      }
      int code = wait_child(pid_, std::chrono::milliseconds(0));
      if (code != -2) {
        pid_ = -1;
        close_lifeline();
        std::string out = file_text_from(log_path_, log_offset);
        if (code == kListenFailed && requested_port != 0 && Clock::now() < retry_until &&
            out.find("EADDRINUSE") != std::string::npos) {
          std::this_thread::sleep_for(std::chrono::milliseconds(100));
          break;  // retry
        }
        throw std::runtime_error(what_ + " exited with status " + std::to_string(code) + " before listening:\n" + out);
      }
      if (Clock::now() >= deadline) {
        kill();
        throw std::runtime_error(what_ + " did not start in time:\n" + file_text_from(log_path_, log_offset));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
}

bool NodeChild::running() {
  if (pid_ <= 0) return false;
  if (wait_child(pid_, std::chrono::milliseconds(0)) == -2) return true;
  pid_ = -1;
  close_lifeline();
  return false;
}

void NodeChild::kill() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    wait_child(pid_, std::chrono::seconds(10));
    pid_ = -1;
  }
  close_lifeline();
}

bool NodeChild::stop(std::chrono::milliseconds timeout) {
  if (pid_ <= 0) return false;
  ::kill(pid_, SIGTERM);
  int code = wait_child(pid_, timeout);
  if (code == -2) {
    ::kill(pid_, SIGKILL);
    wait_child(pid_, std::chrono::seconds(5));
  }
  pid_ = -1;
  close_lifeline();
  return code == 0;
}

std::string NodeChild::log() const { return read_file(log_path_); }

}  // namespace chitty::testing
