#include "process.hpp"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <stdexcept>
#include <string_view>
#include <thread>

extern char** environ;

namespace chitty::testing {
namespace {

int decode(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}

pid_t spawn(const std::vector<std::string>& argv, const std::string& out_path, const std::string& err_path,
            const std::vector<std::string>& extra_env = {}) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  posix_spawn_file_actions_addopen(&fa, 2, err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::vector<char*> args;
  for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_storage(extra_env);
  std::vector<char*> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string_view entry(*e);
    bool overridden = false;
    for (const auto& x : extra_env) {
      auto eq = x.find('=');
      if (entry.substr(0, entry.find('=')) == std::string_view(x).substr(0, eq)) overridden = true;
    }
    if (!overridden) env.push_back(*e);
  }
  for (auto& x : env_storage) env.push_back(x.data());
  env.push_back(nullptr);
  pid_t pid = -1;
  int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), env.data());
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) throw std::runtime_error("cannot start " + argv[0]);
  return pid;
}

std::optional<int> wait_for(pid_t pid, std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    int status = 0;
    pid_t r = waitpid(pid, &status, WNOHANG);
    if (r == pid) return decode(status);
    if (r < 0) return std::nullopt;
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
}

}  // namespace

CommandResult run(const std::vector<std::string>& argv, std::chrono::milliseconds timeout) {
  TempDir io;
  CommandResult r;
  pid_t pid = spawn(argv, io / "out", io / "err");
  auto code = wait_for(pid, timeout);
  if (!code) {
    kill(pid, SIGKILL);
    int status = 0;
    waitpid(pid, &status, 0);
    r.exit_code = -1;
  } else {
    r.exit_code = *code;
  }
  r.out = read_file(io / "out");
  r.err = read_file(io / "err");
  return r;
}

std::string agent_binary() {
  const char* p = std::getenv("CHITTY_AGENT_BIN");
  if (p == nullptr || *p == '\0') throw std::runtime_error("CHITTY_AGENT_BIN is not set (run the tests with meson test)");
  return p;
}

CommandResult curl(const std::string& socket, const std::string& path, std::vector<std::string> args) {
  std::vector<std::string> argv{"curl", "--silent", "--show-error", "--include", "--max-time", "10",
                                "--unix-socket", socket};
  argv.insert(argv.end(), args.begin(), args.end());
  argv.push_back("http://localhost" + path);
  return run(argv);
}

AgentProcess::AgentProcess(const TempDir& dir, const std::string& agent_settings, const std::string& rest,
                           const std::string& socket_name)
    : AgentProcess(dir, AgentSpec{agent_settings, rest, socket_name, {}, {}, {}, true}) {}

AgentProcess::AgentProcess(const TempDir& dir, const AgentSpec& spec)
    : socket_(dir / spec.socket_name), config_(dir / "agent.toml"), log_path_(dir / "agent.log") {
  std::string toml = "[agent]\nsocket = \"" + socket_ + "\"\nstate_dir = \"" + (dir / "state") +
                     "\"\nlog_level = \"debug\"\n" + spec.settings + "\n" + spec.rest + "\n";
  dir.write("agent.toml", toml, spec.config_mode);
  std::vector<std::string> argv = spec.wrapper;
  argv.push_back(agent_binary());
  if (spec.use_config) {
    argv.push_back("--config");
    argv.push_back(config_);
  }
  argv.insert(argv.end(), spec.extra_args.begin(), spec.extra_args.end());
  pid_ = spawn(argv, dir / "agent.stdout", log_path_, spec.env);
}

AgentProcess::~AgentProcess() {
  if (running()) {
    kill(pid_, SIGKILL);
    wait_exit(std::chrono::seconds(5));
  }
}

bool AgentProcess::running() {
  if (exit_code_) return false;
  int status = 0;
  pid_t r = waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    exit_code_ = decode(status);
    return false;
  }
  return r == 0;
}

bool AgentProcess::wait_ready(std::chrono::milliseconds timeout) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (log().find("\"msg\":\"ready\"") != std::string::npos) return true;
    if (!running()) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

std::optional<int> AgentProcess::wait_exit(std::chrono::milliseconds timeout) {
  if (exit_code_) return exit_code_;
  auto code = wait_for(pid_, timeout);
  if (code) exit_code_ = code;
  return code;
}

std::optional<int> AgentProcess::stop(int sig, std::chrono::milliseconds timeout) {
  if (running()) kill(pid_, sig);
  return wait_exit(timeout);
}

std::string AgentProcess::log() const { return read_file(log_path_); }

}  // namespace chitty::testing
