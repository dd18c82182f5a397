// Load and start-up measurements for an HTTP server on a Unix socket.
//
//   uds_bench load SOCKET [--connections N] [--seconds S] [--pipeline P] [--path /health]
//       N keep-alive connections, each keeping P requests in flight, for S
//       seconds; prints requests/s and latency percentiles (one thread, epoll).
//   uds_bench miss SOCKET --path P --tcp-port N --tcp-path Q [--token T] [--requests R]
//       the agent's added latency on a miss: alternately GET Q from the HTTP
//       server on 127.0.0.1:N (the upstream itself, with the bearer token)
//       and GET P from the agent (a path that makes it fetch from that
//       server), each on its own keep-alive connection; prints p50/p99 of
//       both and of their difference.
//   uds_bench startup AGENT_BINARY [--runs N]
//       starts the agent N times on a fresh socket, measures exec -> READY=1
//       on a notification socket (as under systemd) and exec -> first accepted
//       connection, stops it with SIGTERM; prints min/median/p90 of both and
//       the agent's RSS once ready.
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

using Clock = std::chrono::steady_clock;

int connect_unix(const std::string& path, bool nonblock) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | (nonblock ? SOCK_NONBLOCK : 0), 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::snprintf(a.sun_path, sizeof a.sun_path, "%s", path.c_str());
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 && errno != EINPROGRESS) {
    close(fd);
    return -1;
  }
  return fd;
}

double percentile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::size_t i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(i), v.end());
  return v[i];
}

struct Conn {
  int fd = -1;
  std::string in;
  std::vector<Clock::time_point> sent;  // send times of requests in flight
};

// Number of complete responses at the front of `in`, removed from it.
int take_responses(std::string& in) {
  int n = 0;
  std::size_t pos = 0;
  while (true) {
    std::size_t head_end = in.find("\r\n\r\n", pos);
    if (head_end == std::string::npos) break;
    std::size_t cl = in.find("Content-Length: ", pos);
    std::size_t len = 0;
    if (cl != std::string::npos && cl < head_end) len = std::strtoul(in.c_str() + cl + 16, nullptr, 10);
    if (in.size() < head_end + 4 + len) break;
    pos = head_end + 4 + len;
    ++n;
  }
  in.erase(0, pos);
  return n;
}

int load(int argc, char** argv) {
  std::string sock = argv[0];
  int connections = 32, seconds = 5, pipeline = 1;
  std::string path = "/health";
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--connections") connections = std::atoi(argv[i + 1]);
    else if (k == "--seconds") seconds = std::atoi(argv[i + 1]);
    else if (k == "--pipeline") pipeline = std::atoi(argv[i + 1]);
    else if (k == "--path") path = argv[i + 1];
  }
  const std::string request = "GET " + path + " HTTP/1.1\r\nHost: localhost\r\n\r\n";
  int ep = epoll_create1(EPOLL_CLOEXEC);
  std::vector<Conn> conns(static_cast<std::size_t>(connections));
  for (std::size_t i = 0; i < conns.size(); ++i) {
    conns[i].fd = connect_unix(sock, true);
    if (conns[i].fd < 0) {
      std::fprintf(stderr, "connect %s failed: %s\n", sock.c_str(), std::strerror(errno));
      return 1;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = i;
    epoll_ctl(ep, EPOLL_CTL_ADD, conns[i].fd, &ev);
  }
  auto send_batch = [&](Conn& c, int n) {
    std::string out;
    for (int k = 0; k < n; ++k) out += request;
    auto now = Clock::now();
    if (::send(c.fd, out.data(), out.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(out.size())) return false;
    for (int k = 0; k < n; ++k) c.sent.push_back(now);
    return true;
  };
  std::uint64_t reconnects = 0;
  // The server ended a connection (its requests-per-connection cap, like
  // nginx's keepalive_requests): reconnect as a client would and re-send what
  // was in flight.
  auto reconnect = [&](Conn& c, std::uint64_t index) {
    epoll_ctl(ep, EPOLL_CTL_DEL, c.fd, nullptr);
    close(c.fd);
    ++reconnects;
    c.fd = connect_unix(sock, true);
    if (c.fd < 0) {
      std::fprintf(stderr, "reconnect failed: %s\n", std::strerror(errno));
      return false;
    }
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.u64 = index;
    epoll_ctl(ep, EPOLL_CTL_ADD, c.fd, &ev);
    c.in.clear();
    c.sent.clear();
    return send_batch(c, pipeline);
  };
  for (auto& c : conns) send_batch(c, pipeline);
  std::vector<double> latencies_us;
  latencies_us.reserve(1 << 20);
  std::uint64_t done = 0;
  auto start = Clock::now();
  auto end = start + std::chrono::seconds(seconds);
  std::vector<epoll_event> events(static_cast<std::size_t>(connections));
  char buf[65536];
  bool failed = false;
  while (Clock::now() < end && !failed) {
    int n = epoll_wait(ep, events.data(), connections, 100);
    for (int e = 0; e < n; ++e) {
      Conn& c = conns[events[static_cast<std::size_t>(e)].data.u64];
      ssize_t r = recv(c.fd, buf, sizeof buf, 0);
      if (r < 0 && errno == EAGAIN) continue;
      if (r <= 0) {
        if (!reconnect(c, events[static_cast<std::size_t>(e)].data.u64)) failed = true;
        continue;
      }
      c.in.append(buf, static_cast<std::size_t>(r));
      int got = take_responses(c.in);
      auto now = Clock::now();
      for (int k = 0; k < got; ++k) {
        latencies_us.push_back(std::chrono::duration<double, std::micro>(now - c.sent.front()).count());
        c.sent.erase(c.sent.begin());
      }
      done += static_cast<std::uint64_t>(got);
      // A send can fail when the server just ended the connection after its
      // last answer: that is a reconnect too.
      if (got > 0 && !send_batch(c, got) && !reconnect(c, events[static_cast<std::size_t>(e)].data.u64)) failed = true;
    }
  }
  double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
  std::printf(
      "connections=%d pipeline=%d seconds=%.1f requests=%llu reconnects=%llu rps=%.0f p50_us=%.1f p99_us=%.1f "
      "p999_us=%.1f\n",
      connections, pipeline, elapsed, static_cast<unsigned long long>(done), static_cast<unsigned long long>(reconnects),
      static_cast<double>(done) / elapsed, percentile(latencies_us, 0.50), percentile(latencies_us, 0.99),
      percentile(latencies_us, 0.999));
  return failed ? 1 : 0;
}

long rss_kib(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atol(line.c_str() + 6);
  }
  return -1;
}

int connect_tcp(int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// One request on a blocking keep-alive connection; the microseconds until
// the whole answer arrived, or -1. `status` gets the status code.
double timed_exchange(int fd, const std::string& request, int& status) {
  auto t0 = Clock::now();
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) return -1;
  std::string in;
  char buf[65536];
  while (true) {
    std::string copy = in;
    if (take_responses(copy) == 1) break;
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return -1;
    in.append(buf, static_cast<std::size_t>(n));
  }
  status = in.size() > 12 ? std::atoi(in.c_str() + 9) : 0;
  return std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
}

int miss(int argc, char** argv) {
  std::string sock = argv[0], path, tcp_path, token;
  int port = 0, requests = 2000;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    if (k == "--path") path = argv[i + 1];
    else if (k == "--tcp-port") port = std::atoi(argv[i + 1]);
    else if (k == "--tcp-path") tcp_path = argv[i + 1];
    else if (k == "--token") token = argv[i + 1];
    else if (k == "--requests") requests = std::atoi(argv[i + 1]);
  }
  int agent = connect_unix(sock, false);
  int upstream = connect_tcp(port);
  if (agent < 0 || upstream < 0) {
    std::fprintf(stderr, "cannot connect (agent %d, upstream %d)\n", agent, upstream);
    return 1;
  }
  std::string to_agent = "GET " + path + " HTTP/1.1\r\nHost: x\r\n\r\n";
  std::string to_upstream = "GET " + tcp_path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer " + token +
                            "\r\nAccept: application/json\r\n\r\n";
  std::vector<double> direct, via, added;
  for (int i = 0; i < requests + 50; ++i) {  // the first 50 warm up
    int s1 = 0, s2 = 0;
    double d = timed_exchange(upstream, to_upstream, s1);
    double a = timed_exchange(agent, to_agent, s2);
    if (d < 0 || a < 0 || s1 != 200 || s2 != 200) {
      std::fprintf(stderr, "request %d failed (upstream %d, agent %d)\n", i, s1, s2);
      return 1;
    }
    if (i < 50) continue;
    direct.push_back(d);
    via.push_back(a);
    added.push_back(a - d);
  }
  double d50 = percentile(direct, 0.5), d99 = percentile(direct, 0.99);
  double a50 = percentile(via, 0.5), a99 = percentile(via, 0.99);
  double x50 = percentile(added, 0.5), x99 = percentile(added, 0.99);
  std::printf("requests=%d upstream_direct_p50_us=%.0f upstream_direct_p99_us=%.0f agent_miss_p50_us=%.0f "
              "agent_miss_p99_us=%.0f added_p50_us=%.0f added_p99_us=%.0f\n",
              requests, d50, d99, a50, a99, x50, x99);
  close(agent);
  close(upstream);
  return 0;
}

int startup(int argc, char** argv) {
  std::string agent = argv[0];
  int runs = 20;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::string(argv[i]) == "--runs") runs = std::atoi(argv[i + 1]);
  }
  char tmpl[] = "/tmp/chitty-bench.XXXXXX";
  std::string dir = mkdtemp(tmpl);
  std::vector<double> ms, ready_ms;
  long rss = 0;
  // READY=1 arrives on a notification socket of our own, as systemd's would.
  std::string notify_path = dir + "/notify";
  int notify = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  sockaddr_un na{};
  na.sun_family = AF_UNIX;
  std::snprintf(na.sun_path, sizeof na.sun_path, "%s", notify_path.c_str());
  if (bind(notify, reinterpret_cast<sockaddr*>(&na), sizeof na) != 0) {
    std::perror("bind notify socket");
    return 1;
  }
  std::vector<std::string> env_store;
  for (char** e = environ; *e != nullptr; ++e) {
    if (std::strncmp(*e, "NOTIFY_SOCKET=", 14) != 0) env_store.emplace_back(*e);
  }
  env_store.push_back("NOTIFY_SOCKET=" + notify_path);
  std::vector<char*> envp;
  for (auto& e : env_store) envp.push_back(e.data());
  envp.push_back(nullptr);
  for (int r = 0; r < runs; ++r) {
    std::string sock = dir + "/a.sock", state = dir + "/state";
    std::vector<std::string> args{agent, "--socket", sock, "--state-dir", state};
    std::vector<char*> cargs;
    for (auto& a : args) cargs.push_back(a.data());
    cargs.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    auto t0 = Clock::now();
    if (posix_spawn(&pid, agent.c_str(), &fa, nullptr, cargs.data(), envp.data()) != 0) return 1;
    posix_spawn_file_actions_destroy(&fa);
    bool ready = false;
    while (!ready && Clock::now() - t0 < std::chrono::seconds(10)) {
      pollfd pf{notify, POLLIN, 0};
      if (poll(&pf, 1, 100) <= 0) continue;
      char msg[4096];
      ssize_t n = recv(notify, msg, sizeof msg - 1, 0);
      if (n <= 0) continue;
      msg[n] = '\0';
      if (std::strstr(msg, "READY=1") != nullptr) {
        ready = true;
        ready_ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
      }
    }
    if (!ready) {
      std::fprintf(stderr, "agent sent no READY=1\n");
      kill(pid, SIGKILL);
      return 1;
    }
    while (true) {
      int fd = connect_unix(sock, false);
      if (fd >= 0) {
        close(fd);
        break;
      }
      if (Clock::now() - t0 > std::chrono::seconds(10)) {
        std::fprintf(stderr, "agent did not start\n");
        kill(pid, SIGKILL);
        return 1;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count());
    rss = std::max(rss, rss_kib(pid));
    kill(pid, SIGTERM);
    int status;
    waitpid(pid, &status, 0);
  }
  std::string cleanup = "rm -rf " + dir;
  if (std::system(cleanup.c_str()) != 0) std::fprintf(stderr, "could not remove %s\n", dir.c_str());
  close(notify);
  std::sort(ms.begin(), ms.end());
  std::sort(ready_ms.begin(), ready_ms.end());
  std::printf("runs=%d ready_ms_min=%.2f ready_ms_median=%.2f ready_ms_p90=%.2f startup_ms_min=%.2f startup_ms_median=%.2f "
              "startup_ms_p90=%.2f rss_kib=%ld\n",
              runs, ready_ms.front(), ready_ms[ready_ms.size() / 2], ready_ms[ready_ms.size() * 9 / 10], ms.front(),
              ms[ms.size() / 2], ms[ms.size() * 9 / 10], rss);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc >= 3 && std::string(argv[1]) == "load") return load(argc - 2, argv + 2);
  if (argc >= 3 && std::string(argv[1]) == "startup") return startup(argc - 2, argv + 2);
  if (argc >= 3 && std::string(argv[1]) == "miss") return miss(argc - 2, argv + 2);
  std::fprintf(stderr,
               "usage: uds_bench load SOCKET [--connections N] [--seconds S] [--pipeline P] [--path P]\n"
               "       uds_bench miss SOCKET --path P --tcp-port N --tcp-path Q [--token T] [--requests R]\n"
               "       uds_bench startup AGENT_BINARY [--runs N]\n");
  return 2;
}
