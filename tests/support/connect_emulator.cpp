#include "connect_emulator.hpp"

#include <algorithm>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <thread>

namespace chitty::testing {
namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kAdminTimeout = std::chrono::seconds(10);

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
    : fixtures_path_(dir_ / "fixtures.json"), extra_args_(std::move(extra_args)),
      child_("connect emulator", "emulator", dir_.path()) {
  dir_.write("fixtures.json", fixtures_json);
  start(port);
}

ConnectEmulator::~ConnectEmulator() = default;

void ConnectEmulator::start(int requested_port) {
  std::vector<std::string> args{"--fixtures", fixtures_path_, "--host", "127.0.0.1"};
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  child_.start(directory() + "/emulator.js", args, requested_port);
}

std::string ConnectEmulator::url() const {
  bool tls = std::find(extra_args_.begin(), extra_args_.end(), "--tls-cert") != extra_args_.end();
  return std::string(tls ? "https" : "http") + "://127.0.0.1:" + std::to_string(child_.port());
}

void ConnectEmulator::restart() {
  int port = child_.port();
  child_.kill();
  start(port);
}

std::string ConnectEmulator::admin(const std::string& path, const std::string& json_body) {
  std::string target = !path.empty() && path[0] == '/' ? path : "/__emulator/" + path;
  HttpReply r = http_request(child_.port(), "POST", target, json_body, {}, kAdminTimeout);
  if (r.status < 200 || r.status > 299) {
    throw std::runtime_error("emulator admin " + target + ": HTTP " + std::to_string(r.status) + " " + r.body);
  }
  return r.body;
}

std::string ConnectEmulator::requests_json() {
  HttpReply r = http_request(child_.port(), "GET", "/__emulator/requests", "", {}, kAdminTimeout);
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
  return http_request(child_.port(), method, target, body, headers, kAdminTimeout);
}


}  // namespace chitty::testing
