// Child processes for integration tests: commands (curl, setpriv, the agent
// with --check-config) and a running chitty-agent with its own config,
// socket and state directory.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include "temp_dir.hpp"

namespace chitty::testing {

struct CommandResult {
  int exit_code = -1;  // 128+N when killed by signal N; -1 on timeout
  std::string out;
  std::string err;
};

// Runs argv[0] (looked up in PATH) with stdin from /dev/null and collects its
// output. Kills it after `timeout`.
CommandResult run(const std::vector<std::string>& argv,
                  std::chrono::milliseconds timeout = std::chrono::seconds(30));

// The chitty-agent binary under test ($CHITTY_AGENT_BIN, set by meson).
std::string agent_binary();

// `curl --silent --show-error --unix-socket SOCKET ARGS... http://localhost<path>`
// with the response headers included in `out` (-i).
CommandResult curl(const std::string& socket, const std::string& path, std::vector<std::string> args = {});

// How to start an agent for a test.
struct AgentSpec {
  std::string settings;                  // more `key = value` lines for [agent]
  std::string rest;                      // further tables
  std::string socket_name = "agent.sock";
  std::vector<std::string> env;          // extra KEY=VALUE for the agent's environment
  std::vector<std::string> wrapper;      // a command the agent runs under (unshare, systemd-socket-activate)
  std::vector<std::string> extra_args;   // after --config FILE
  bool use_config = true;                // false: no --config (the built-in defaults)
  int config_mode = 0600;                // 0644 for an agent run as another uid
};

class AgentProcess {
 public:
  // Writes DIR/agent.toml with socket = DIR/agent.sock, state_dir = DIR/state
  // and `agent_settings` (more `key = value` lines for [agent]) plus `rest`
  // (further tables), then starts the agent with --config. stderr goes to
  // DIR/agent.log.
  AgentProcess(const TempDir& dir, const std::string& agent_settings = "", const std::string& rest = "",
               const std::string& socket_name = "agent.sock");
  AgentProcess(const TempDir& dir, const AgentSpec& spec);
  ~AgentProcess();  // SIGKILL if still running
  AgentProcess(const AgentProcess&) = delete;
  AgentProcess& operator=(const AgentProcess&) = delete;

  // Waits for the "ready" log line (false if the agent exited or timed out).
  bool wait_ready(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Sends `sig` and waits for the exit code.
  std::optional<int> stop(int sig, std::chrono::milliseconds timeout = std::chrono::seconds(20));
  std::optional<int> wait_exit(std::chrono::milliseconds timeout);
  bool running();

  pid_t pid() const noexcept { return pid_; }
  const std::string& socket() const noexcept { return socket_; }
  const std::string& config_path() const noexcept { return config_; }
  std::string log() const;

 private:
  pid_t pid_ = -1;
  std::optional<int> exit_code_;
  std::string socket_;
  std::string config_;
  std::string log_path_;
};

}  // namespace chitty::testing
