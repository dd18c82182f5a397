#include "audit_sink.hpp"

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

extern char** environ;

namespace chitty::testing {
namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kStartTimeout = std::chrono::seconds(15);
constexpr auto kAdminTimeout = std::chrono::seconds(10);
constexpr auto kBusyPortRetry = std::chrono::seconds(3);
constexpr int kListenFailed = 3;  // sink.js's exit code when it cannot listen

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

// waitpid with a deadline; the exit code, or -2 if still running at the deadline.
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

}  // namespace

std::string AuditSink::script() {
  const char* root = std::getenv("CHITTY_SOURCE_ROOT");
  if (root == nullptr || *root == '\0') {
    throw std::runtime_error("CHITTY_SOURCE_ROOT is not set (run the tests with meson test)");
  }
  return std::string(root) + "/tests/fakes/audit-sink/sink.js";
}

AuditSink::AuditSink(std::string token, int port)
    : token_(std::move(token)),
      store_path_(dir_ / "store.ndjson"),
      port_file_(dir_ / "port"),
      log_path_(dir_ / "sink.log") {
  start(port);
}

AuditSink::~AuditSink() {
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

void AuditSink::close_lifeline() noexcept {
  if (lifeline_ >= 0) {
    ::close(lifeline_);
    lifeline_ = -1;
  }
}

void AuditSink::start(int requested_port) {
  const std::string js = script();
  if (::access(js.c_str(), R_OK) != 0) throw std::runtime_error("cannot read " + js);
  const char* node_env = std::getenv("CHITTY_NODE");
  const std::string node = node_env != nullptr && *node_env != '\0' ? node_env : "node";
  std::vector<std::string> argv{
      node,          js,         "--host",  "127.0.0.1", "--port",           std::to_string(requested_port),
      "--port-file", port_file_, "--store", store_path_, "--exit-with-stdin"};
  if (!token_.empty()) {
    argv.emplace_back("--token");
    argv.push_back(token_);
  }

  // A busy port right after kill() is unlikely (SO_REUSEADDR) but possible if
  // another process grabbed it: retry for a while on a fixed port.
  const auto retry_until = Clock::now() + kBusyPortRetry;
  while (true) {
    const auto deadline = Clock::now() + kStartTimeout;
    ::unlink(port_file_.c_str());
    std::size_t log_offset = file_size(log_path_);

    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error(std::string("pipe2: ") + std::strerror(errno));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[0], 0);
    const std::string stdout_path = dir_ / "sink.stdout";
    posix_spawn_file_actions_addopen(&fa, 1, stdout_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
    posix_spawn_file_actions_addopen(&fa, 2, log_path_.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
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
    ::close(fds[0]);
    if (rc != 0) {
      ::close(fds[1]);
      throw std::runtime_error("cannot start " + node + ": " + std::strerror(rc));
    }
    pid_ = child;
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
        throw std::runtime_error("audit sink exited with status " + std::to_string(code) + " before listening:\n" +
                                 out);
      }
      if (Clock::now() >= deadline) {
        ::kill(pid_, SIGKILL);
        wait_child(pid_, std::chrono::seconds(5));
        pid_ = -1;
        close_lifeline();
        throw std::runtime_error("audit sink did not start in time:\n" + file_text_from(log_path_, log_offset));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
}

std::string AuditSink::url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/ingest"; }

bool AuditSink::running() {
  if (pid_ <= 0) return false;
  if (wait_child(pid_, std::chrono::milliseconds(0)) == -2) return true;
  pid_ = -1;
  close_lifeline();
  return false;
}

void AuditSink::kill() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    wait_child(pid_, std::chrono::seconds(10));
    pid_ = -1;
  }
  close_lifeline();
}

bool AuditSink::stop(std::chrono::milliseconds timeout) {
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

void AuditSink::restart() {
  kill();
  start(port_);
}

std::string AuditSink::admin_get(const std::string& target) {
  HttpReply r = http_request(port_, "GET", target, "", {}, kAdminTimeout);
  if (r.status != 200)
    throw std::runtime_error("sink admin GET " + target + ": HTTP " + std::to_string(r.status) + " " + r.body);
  return r.body;
}

std::string AuditSink::admin_post(const std::string& target, const std::string& json_body) {
  HttpReply r = http_request(port_, "POST", target, json_body, {}, kAdminTimeout);
  if (r.status < 200 || r.status > 299) {
    throw std::runtime_error("sink admin POST " + target + ": HTTP " + std::to_string(r.status) + " " + r.body);
  }
  return r.body;
}

void AuditSink::mode(const std::string& mode, int count, int delay_ms, int status) {
  std::string body = "{\"mode\":" + json_quote(mode);
  if (count > 0) body += ",\"count\":" + std::to_string(count);
  if (delay_ms > 0) body += ",\"delay_ms\":" + std::to_string(delay_ms);
  if (status > 0) body += ",\"status\":" + std::to_string(status);
  admin_post("/__sink/mode", body + "}");
}

std::string AuditSink::events_json() { return admin_get("/__sink/events"); }

std::string AuditSink::requests_json() { return admin_get("/__sink/requests"); }

void AuditSink::reset() { admin_post("/__sink/reset", "{}"); }

std::vector<std::string> AuditSink::event_ids() {
  // GET /__sink/ids: one id a line, with \\, \r and \n escaped.
  const std::string text = admin_get("/__sink/ids");
  std::vector<std::string> ids;
  std::string id;
  for (std::size_t i = 0; i < text.size(); ++i) {
    char c = text[i];
    if (c == '\n') {
      ids.push_back(std::move(id));
      id.clear();
    } else if (c == '\\' && i + 1 < text.size()) {
      char e = text[++i];
      id += e == 'n' ? '\n' : e == 'r' ? '\r' : e;
    } else {
      id += c;
    }
  }
  return ids;
}

bool AuditSink::wait_for_events(std::size_t n, std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (true) {
    if (event_ids().size() >= n) return true;
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

HttpReply AuditSink::post(const std::string& ndjson) { return post(ndjson, token_); }

HttpReply AuditSink::post(const std::string& ndjson, const std::string& token) {
  std::vector<std::string> headers;
  if (!token.empty()) headers.push_back("Authorization: Bearer " + token);
  return http_request(port_, "POST", "/ingest", ndjson, headers, kAdminTimeout);
}

std::string AuditSink::store_text() const { return read_file(store_path_); }

std::string AuditSink::log() const { return read_file(log_path_); }

}  // namespace chitty::testing
