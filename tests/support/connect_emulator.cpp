#include "connect_emulator.hpp"

#include <algorithm>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <thread>

extern char** environ;

namespace chitty::testing {
namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kStartTimeout = std::chrono::seconds(15);
constexpr auto kAdminTimeout = std::chrono::seconds(10);
constexpr auto kBusyPortRetry = std::chrono::seconds(3);
constexpr int kListenFailed = 3;  // emulator.js's exit code when it cannot listen

std::string errno_text(const std::string& what) { return what + ": " + std::strerror(errno); }

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const noexcept { return fd_; }

 private:
  int fd_;
};

// Waits until `fd` is ready for `events`; throws when the deadline passes.
void wait_ready(int fd, short events, Clock::time_point deadline, const std::string& what) {
  while (true) {
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) throw std::runtime_error(what + ": timed out");
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, static_cast<int>(left));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(errno_text(what + ": poll"));
    }
    if (n > 0) return;
  }
}

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

std::string json_quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    auto u = static_cast<unsigned char>(c);
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      default:
        if (u < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof buf, "\\u%04x", u);
          out += buf;
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

HttpReply http_request(int port, const std::string& method, const std::string& target, const std::string& body,
                       const std::vector<std::string>& headers, std::chrono::milliseconds timeout) {
  const std::string what = method + " http://127.0.0.1:" + std::to_string(port) + target;
  const auto deadline = Clock::now() + timeout;
  Fd sock(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (sock.get() < 0) throw std::runtime_error(errno_text(what + ": socket"));

  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(sock.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
    if (errno != EINPROGRESS) throw std::runtime_error(errno_text(what + ": connect"));
    wait_ready(sock.get(), POLLOUT, deadline, what + ": connect");
    int err = 0;
    socklen_t len = sizeof err;
    if (::getsockopt(sock.get(), SOL_SOCKET, SO_ERROR, &err, &len) != 0) {
      throw std::runtime_error(errno_text(what + ": getsockopt"));
    }
    if (err != 0) throw std::runtime_error(what + ": connect: " + std::strerror(err));
  }

  std::string req = method + " " + target + " HTTP/1.1\r\nHost: 127.0.0.1:" + std::to_string(port) +
                    "\r\nConnection: close\r\nContent-Length: " + std::to_string(body.size()) + "\r\n";
  if (!body.empty()) req += "Content-Type: application/json\r\n";
  for (const auto& h : headers) req += h + "\r\n";
  req += "\r\n" + body;

  std::size_t off = 0;
  while (off < req.size()) {
    ssize_t n = ::send(sock.get(), req.data() + off, req.size() - off, MSG_NOSIGNAL);
    if (n > 0) {
      off += static_cast<std::size_t>(n);
    } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      wait_ready(sock.get(), POLLOUT, deadline, what + ": send");
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else {
      throw std::runtime_error(errno_text(what + ": send"));
    }
  }

  std::string raw;
  char buf[16384];
  while (true) {
    ssize_t n = ::recv(sock.get(), buf, sizeof buf, 0);
    if (n > 0) {
      raw.append(buf, static_cast<std::size_t>(n));
    } else if (n == 0) {
      break;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      wait_ready(sock.get(), POLLIN, deadline, what + ": recv");
    } else if (errno == EINTR) {
      continue;
    } else {
      throw std::runtime_error(errno_text(what + ": recv") + " after " + std::to_string(raw.size()) + " bytes");
    }
  }

  auto head_end = raw.find("\r\n\r\n");
  if (raw.compare(0, 5, "HTTP/") != 0 || head_end == std::string::npos) {
    throw std::runtime_error(what + ": not an HTTP response (" + std::to_string(raw.size()) + " bytes)");
  }
  auto line_end = raw.find("\r\n");
  auto sp = raw.find(' ');
  HttpReply reply;
  if (sp == std::string::npos || sp + 4 > line_end) throw std::runtime_error(what + ": bad status line");
  for (std::size_t i = sp + 1; i < sp + 4; ++i) {
    if (raw[i] < '0' || raw[i] > '9') throw std::runtime_error(what + ": bad status line");
    reply.status = reply.status * 10 + (raw[i] - '0');
  }
  reply.headers = raw.substr(line_end + 2, head_end > line_end ? head_end - line_end - 2 : 0);
  reply.body = raw.substr(head_end + 4);
  return reply;
}

std::string ConnectEmulator::directory() {
  const char* root = std::getenv("CHITTY_SOURCE_ROOT");
  if (root == nullptr || *root == '\0') {
    throw std::runtime_error("CHITTY_SOURCE_ROOT is not set (run the tests with meson test)");
  }
  return std::string(root) + "/tests/fakes/connect-emulator";
}

std::string ConnectEmulator::chittyos_fixtures() {
  std::string path = directory() + "/fixtures/chittyos.json";
  std::string text = read_file(path);
  if (text.empty()) throw std::runtime_error("cannot read " + path);
  return text;
}

ConnectEmulator::ConnectEmulator(const std::string& fixtures_json, int port, std::vector<std::string> extra_args)
    : fixtures_path_(dir_ / "fixtures.json"), port_file_(dir_ / "port"), log_path_(dir_ / "emulator.log"),
      extra_args_(std::move(extra_args)) {
  dir_.write("fixtures.json", fixtures_json);
  start(port);
}

ConnectEmulator::~ConnectEmulator() {
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

void ConnectEmulator::close_lifeline() noexcept {
  if (lifeline_ >= 0) {
    ::close(lifeline_);
    lifeline_ = -1;
  }
}

void ConnectEmulator::start(int requested_port) {
  const std::string script = directory() + "/emulator.js";
  if (::access(script.c_str(), R_OK) != 0) throw std::runtime_error("cannot read " + script);
  const char* node_env = std::getenv("CHITTY_NODE");
  const std::string node = node_env != nullptr && *node_env != '\0' ? node_env : "node";
  std::vector<std::string> argv{node,        script,      "--fixtures", fixtures_path_,
                                "--host",    "127.0.0.1", "--port",     std::to_string(requested_port),
                                "--port-file", port_file_, "--exit-with-stdin"};
  argv.insert(argv.end(), extra_args_.begin(), extra_args_.end());

  // A busy port right after kill() is unlikely (SO_REUSEADDR) but possible if
  // another process grabbed it: retry for a while on a fixed port.
  const auto retry_until = Clock::now() + kBusyPortRetry;
  while (true) {
    const auto deadline = Clock::now() + kStartTimeout;
    ::unlink(port_file_.c_str());
    std::size_t log_offset = file_size(log_path_);

    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) throw std::runtime_error(errno_text("pipe2"));
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[0], 0);
    posix_spawn_file_actions_addopen(&fa, 1, (dir_ / "emulator.stdout").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
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
        throw std::runtime_error("connect emulator exited with status " + std::to_string(code) +
                                 " before listening:\n" + out);
      }
      if (Clock::now() >= deadline) {
        ::kill(pid_, SIGKILL);
        wait_child(pid_, std::chrono::seconds(5));
        pid_ = -1;
        close_lifeline();
        throw std::runtime_error("connect emulator did not start in time:\n" + file_text_from(log_path_, log_offset));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }
}

std::string ConnectEmulator::url() const {
  bool tls = std::find(extra_args_.begin(), extra_args_.end(), "--tls-cert") != extra_args_.end();
  return std::string(tls ? "https" : "http") + "://127.0.0.1:" + std::to_string(port_);
}

bool ConnectEmulator::running() {
  if (pid_ <= 0) return false;
  if (wait_child(pid_, std::chrono::milliseconds(0)) == -2) return true;
  pid_ = -1;
  close_lifeline();
  return false;
}

void ConnectEmulator::kill() {
  if (pid_ > 0) {
    ::kill(pid_, SIGKILL);
    wait_child(pid_, std::chrono::seconds(10));
    pid_ = -1;
  }
  close_lifeline();
}

bool ConnectEmulator::stop(std::chrono::milliseconds timeout) {
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

void ConnectEmulator::restart() {
  kill();
  start(port_);
}

std::string ConnectEmulator::admin(const std::string& path, const std::string& json_body) {
  std::string target = !path.empty() && path[0] == '/' ? path : "/__emulator/" + path;
  HttpReply r = http_request(port_, "POST", target, json_body, {}, kAdminTimeout);
  if (r.status < 200 || r.status > 299) {
    throw std::runtime_error("emulator admin " + target + ": HTTP " + std::to_string(r.status) + " " + r.body);
  }
  return r.body;
}

std::string ConnectEmulator::requests_json() {
  HttpReply r = http_request(port_, "GET", "/__emulator/requests", "", {}, kAdminTimeout);
  if (r.status != 200) throw std::runtime_error("emulator requests: HTTP " + std::to_string(r.status) + " " + r.body);
  return r.body;
}

void ConnectEmulator::reset() { admin("reset", "{}"); }

void ConnectEmulator::fault(const std::string& mode, int count, const std::string& path_prefix, int delay_ms) {
  std::string body = "{\"mode\":" + json_quote(mode);
  if (count > 0) body += ",\"count\":" + std::to_string(count);
  if (!path_prefix.empty()) body += ",\"path_prefix\":" + json_quote(path_prefix);
  if (delay_ms >= 0) body += ",\"delay_ms\":" + std::to_string(delay_ms);
  admin("faults", body + "}");
}

HttpReply ConnectEmulator::request(const std::string& method, const std::string& target, const std::string& token,
                                   const std::string& body) {
  std::vector<std::string> headers;
  if (!token.empty()) headers.push_back("Authorization: Bearer " + token);
  return http_request(port_, method, target, body, headers, kAdminTimeout);
}

std::string ConnectEmulator::log() const { return read_file(log_path_); }

}  // namespace chitty::testing
