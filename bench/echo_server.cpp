// The physical limit of this machine for the benchmark's load: a bare epoll
// server on a Unix socket that answers every request head it receives with
// the same canned HTTP/1.1 response (a 200-byte JSON body), parsing nothing
// but the end of each head. One thread, level-triggered, no allocation per
// request. Not a web server: the floor every real one is measured against.
//
//   echo_server SOCKET
#include <fcntl.h>
#include <signal.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

namespace {

volatile sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }

std::string canned_response() {
  std::string body = R"({"success":true,"credential":{"value":")";
  body.append(200 - body.size() - 4, 'x');
  body += R"("}})";
  return "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: " + std::to_string(body.size()) +
         "\r\n\r\n" + body;
}

struct Conn {
  int fd = -1;
  int matched = 0;  // bytes of "\r\n\r\n" seen at the end of what was read
  std::string out;  // answers not yet written
};

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: echo_server SOCKET\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  signal(SIGTERM, on_signal);
  signal(SIGINT, on_signal);
  const std::string response = canned_response();
  int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::snprintf(a.sun_path, sizeof a.sun_path, "%s", argv[1]);
  unlink(argv[1]);
  if (bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(listener, 4096) != 0) {
    std::perror("bind/listen");
    return 1;
  }
  int ep = epoll_create1(EPOLL_CLOEXEC);
  epoll_event lev{};
  lev.events = EPOLLIN;
  lev.data.u64 = ~0ull;
  epoll_ctl(ep, EPOLL_CTL_ADD, listener, &lev);
  std::vector<Conn> conns(65536);
  std::vector<epoll_event> events(1024);
  char buf[65536];
  static const char kEnd[] = "\r\n\r\n";
  while (!g_stop) {
    int n = epoll_wait(ep, events.data(), static_cast<int>(events.size()), 200);
    for (int e = 0; e < n; ++e) {
      if (events[static_cast<std::size_t>(e)].data.u64 == ~0ull) {
        for (int fd; (fd = accept4(listener, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0;) {
          if (static_cast<std::size_t>(fd) >= conns.size()) {
            close(fd);
            continue;
          }
          conns[static_cast<std::size_t>(fd)] = Conn{fd, 0, {}};
          epoll_event ev{};
          ev.events = EPOLLIN;
          ev.data.u64 = static_cast<std::uint64_t>(fd);
          epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
        }
        continue;
      }
      Conn& c = conns[events[static_cast<std::size_t>(e)].data.u64];
      ssize_t r = read(c.fd, buf, sizeof buf);
      if (r < 0 && errno == EAGAIN) continue;
      if (r <= 0) {
        close(c.fd);
        c.fd = -1;
        continue;
      }
      int answers = 0;
      for (ssize_t i = 0; i < r; ++i) {
        if (buf[i] == kEnd[c.matched]) {
          if (++c.matched == 4) {
            ++answers;
            c.matched = 0;
          }
        } else {
          c.matched = buf[i] == '\r' ? 1 : 0;
        }
      }
      for (int k = 0; k < answers; ++k) c.out += response;
      if (!c.out.empty()) {
        ssize_t w = write(c.fd, c.out.data(), c.out.size());
        if (w > 0) c.out.erase(0, static_cast<std::size_t>(w));
      }
    }
  }
  unlink(argv[1]);
  return 0;
}
