// identity::Peer against real processes: this one, children that exit, and
// processes that take over a pid (made with /proc/sys/kernel/ns_last_pid).
#include <catch2/catch.hpp>

#include <fstream>
#include <iterator>

#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <thread>

#include "chitty/identity/peer.hpp"
#include "connecting_child.hpp"
#include "pid_squatter.hpp"
#include "temp_dir.hpp"

using chitty::identity::Credentials;
using chitty::identity::Options;
using chitty::identity::Peer;
using chitty::identity::PidfdSource;
using chitty::testing::ConnectingChild;
using chitty::testing::PidSquatter;
using chitty::testing::TempDir;

namespace {

struct Listener {
  TempDir dir;
  std::string path = dir / "s.sock";
  int fd = -1;

  Listener() {
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_un a = address();
    REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(listen(fd, 16) == 0);
  }
  ~Listener() { close(fd); }

  sockaddr_un address() const {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
    return a;
  }

  // A client socket, not yet connected.
  int client() const { return socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0); }

  int accept_one() const {
    int c = accept4(fd, nullptr, nullptr, SOCK_CLOEXEC);
    REQUIRE(c >= 0);
    return c;
  }
};

struct Accepted {
  int fd;
  Credentials creds;
  explicit Accepted(int f) : fd(f) {
    auto c = chitty::identity::peer_credentials(fd);
    REQUIRE(c.has_value());
    creds = *c;
  }
  ~Accepted() { close(fd); }
};

bool kernel_has_so_peerpidfd() {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0) return false;
  int pidfd = -1;
  socklen_t len = sizeof pidfd;
  bool ok = getsockopt(sv[0], SOL_SOCKET, 77 /* SO_PEERPIDFD */, &pidfd, &len) == 0;
  if (ok) close(pidfd);
  close(sv[0]);
  close(sv[1]);
  return ok;
}

std::string self_exe() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  REQUIRE(n > 0);
  return std::string(buf, static_cast<std::size_t>(n));
}

Options with_pidfd(bool so_peerpidfd) {
  Options o;
  o.use_so_peerpidfd = so_peerpidfd;
  return o;
}

// Forks a child that connects `client_fd` (so SO_PEERCRED names the child)
// and exits at once. The parent keeps the connection. Returns the child pid,
// reaped.
pid_t connect_from_short_lived_child(const Listener& l, int client_fd) {
  ConnectingChild child(client_fd, l.path);
  REQUIRE(child.connected());
  child.release();
  REQUIRE(child.reap());
  return child.pid();
}

}  // namespace

TEST_CASE("this process is identified from the kernel", "[identity][peer]") {
  for (bool so : {true, false}) {
    INFO("SO_PEERPIDFD allowed: " << so);
    Listener l;
    int c = l.client();
    sockaddr_un a = l.address();
    REQUIRE(connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    Accepted acc(l.accept_one());
    Peer peer = Peer::identify(acc.fd, acc.creds, with_pidfd(so));
    const auto& id = peer.at_accept();
    REQUIRE(id.pid.is_known());
    CHECK(id.pid.value() == getpid());
    CHECK(id.uid.matches(geteuid()));
    CHECK(id.gid.matches(getegid()));
    REQUIRE(id.exe.is_known());
    CHECK(id.exe.value() == self_exe());
    CHECK(id.namespace_pid.matches(getpid()));
    CHECK(id.nested_pid_namespace.matches(false));
    CHECK(id.cgroup.is_known());
    CHECK(id.unit.is_known());
    CHECK(id.container.is_known());
    if (so && kernel_has_so_peerpidfd()) {
      CHECK(id.pidfd_source == PidfdSource::so_peerpidfd);
    } else {
      CHECK(id.pidfd_source == PidfdSource::pidfd_open);
    }
    CHECK(peer.alive());
    CHECK(peer.current().exe.is_known());
    close(c);
  }
}

TEST_CASE("a peer that exited before it was identified has no process facts", "[identity][peer]") {
  for (bool so : {true, false}) {
    INFO("SO_PEERPIDFD allowed: " << so);
    Listener l;
    int c = l.client();
    pid_t child = connect_from_short_lived_child(l, c);
    Accepted acc(l.accept_one());
    CHECK(acc.creds.pid == child);
    Peer peer = Peer::identify(acc.fd, acc.creds, with_pidfd(so));
    const auto& id = peer.at_accept();
    CHECK_FALSE(id.pid.is_known());
    CHECK(id.pid.reason().find("exited") != std::string::npos);
    CHECK_FALSE(id.exe.is_known());
    CHECK_FALSE(id.unit.is_known());
    CHECK_FALSE(id.container.is_known());
    CHECK(id.uid.matches(geteuid()));  // the kernel's record of the connection stays true
    CHECK_FALSE(peer.alive());
    close(c);
  }
}

TEST_CASE("a peer that exits after it was identified loses its process facts", "[identity][peer]") {
  for (bool so : {true, false}) {
    INFO("SO_PEERPIDFD allowed: " << so);
    Listener l;
    int c = l.client();
    ConnectingChild child(c, l.path);
    REQUIRE(child.connected());
    Accepted acc(l.accept_one());
    Peer peer = Peer::identify(acc.fd, acc.creds, with_pidfd(so));
    REQUIRE(peer.at_accept().pid.matches(child.pid()));
    CHECK(peer.alive());
    child.release();
    REQUIRE(child.reap());
    CHECK_FALSE(peer.alive());
    auto now = peer.current();
    CHECK_FALSE(now.pid.is_known());
    CHECK_FALSE(now.exe.is_known());
    CHECK(now.pid.reason().find("exited") != std::string::npos);
    CHECK(peer.at_accept().pid.matches(child.pid()));  // what was known at accept is kept for the record
    close(c);
  }
}

TEST_CASE("a peer that exited but is not yet reaped (a zombie) loses its process facts", "[identity][peer]") {
  for (bool so : {true, false}) {
    INFO("SO_PEERPIDFD allowed: " << so);
    Listener l;
    int c = l.client();
    ConnectingChild child(c, l.path);
    REQUIRE(child.connected());
    Accepted acc(l.accept_one());
    Peer peer = Peer::identify(acc.fd, acc.creds, with_pidfd(so));
    REQUIRE(peer.current().exe.is_known());
    child.release();
    // Wait until it is a zombie: exited, its /proc entry still there.
    bool zombie = false;
    for (int i = 0; i < 500 && !zombie; ++i) {
      std::ifstream stat("/proc/" + std::to_string(child.pid()) + "/stat");
      std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
      auto paren = text.rfind(')');
      zombie = paren != std::string::npos && paren + 2 < text.size() && text[paren + 2] == 'Z';
      if (!zombie) usleep(2000);
    }
    REQUIRE(zombie);
    auto now = peer.current();
    CHECK_FALSE(now.pid.is_known());
    CHECK_FALSE(now.exe.is_known());
    REQUIRE(child.reap());
    close(c);
  }
}

TEST_CASE("a pid taken over after the connection is never attributed to the new process", "[identity][peer][reuse]") {
  for (bool so : {true, false}) {
    INFO("SO_PEERPIDFD allowed: " << so);
    Listener l;
    int c = l.client();
    ConnectingChild child(c, l.path);
    REQUIRE(child.connected());
    Accepted acc(l.accept_one());
    Peer peer = Peer::identify(acc.fd, acc.creds, with_pidfd(so));
    REQUIRE(peer.at_accept().pid.matches(child.pid()));
    child.release();
    REQUIRE(child.reap());
    auto impostor = PidSquatter::take(child.pid());
    if (!impostor) {
      WARN("skipped: cannot make a process with a chosen pid (needs root for clone3 set_tid)");
      close(c);
      return;
    }
    auto now = peer.current();  // the pid is alive again, but it is someone else
    CHECK_FALSE(now.pid.is_known());
    CHECK_FALSE(now.exe.is_known());
    close(c);
  }
}

TEST_CASE("a pid reused before accept: caught by SO_PEERPIDFD, and without it when the uid differs",
          "[identity][peer][reuse]") {
  for (bool so : {true, false}) {
    INFO("SO_PEERPIDFD allowed: " << so);
    if (so && !kernel_has_so_peerpidfd()) continue;
    Listener l;
    int c = l.client();
    pid_t child = connect_from_short_lived_child(l, c);
    // SO_PEERPIDFD pins the exact process, whoever owns the pid now; without
    // it, a new owner with other credentials gives itself away.
    auto impostor = PidSquatter::take(child, so ? static_cast<uid_t>(-1) : 4242);
    if (!impostor) {
      WARN("skipped: cannot make a process with a chosen pid (needs root for clone3 set_tid)");
      close(c);
      return;
    }
    Accepted acc(l.accept_one());
    REQUIRE(acc.creds.pid == child);
    Peer peer = Peer::identify(acc.fd, acc.creds, with_pidfd(so));
    const auto& id = peer.at_accept();
    CHECK_FALSE(id.pid.is_known());
    CHECK_FALSE(id.exe.is_known());
    INFO(id.pid.reason());
    if (so) {
      CHECK(id.pid.reason().find("exited") != std::string::npos);
    } else {
      CHECK(id.pid.reason().find("credentials") != std::string::npos);
    }
    close(c);
  }
}

TEST_CASE("the overflow uid and gid are never established", "[identity][peer]") {
  Listener l;
  int c = l.client();
  sockaddr_un a = l.address();
  REQUIRE(connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  Accepted acc(l.accept_one());
  // What SO_PEERCRED reports for a caller from an unmapped user namespace.
  Credentials overflow{65534, 65534, acc.creds.pid};
  Peer peer = Peer::identify(acc.fd, overflow, Options{});
  const auto& id = peer.at_accept();
  CHECK_FALSE(id.uid.is_known());
  CHECK_FALSE(id.gid.is_known());
  CHECK_FALSE(id.uid.matches(65534));
  CHECK(id.uid.reason().find("overflow uid") != std::string::npos);
  CHECK(id.raw_uid == 65534);
  close(c);
}

TEST_CASE("pid 0 (a caller in a PID namespace we cannot see) leaves every process fact unknown", "[identity][peer]") {
  Listener l;
  int c = l.client();
  sockaddr_un a = l.address();
  REQUIRE(connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  Accepted acc(l.accept_one());
  Peer peer = Peer::identify(acc.fd, Credentials{acc.creds.uid, acc.creds.gid, 0}, Options{});
  const auto& id = peer.at_accept();
  CHECK_FALSE(id.pid.is_known());
  CHECK(id.pid.reason().find("PID namespace") != std::string::npos);
  CHECK_FALSE(id.exe.is_known());
  CHECK_FALSE(id.unit.is_known());
  CHECK(id.uid.matches(geteuid()));
  CHECK(id.pidfd_source == PidfdSource::none);
  CHECK_FALSE(peer.alive());
  close(c);
}

TEST_CASE("a hidden /proc makes process facts unknown, not wrong", "[identity][peer]") {
  Listener l;
  int c = l.client();
  ConnectingChild child(c, l.path);
  REQUIRE(child.connected());
  Accepted acc(l.accept_one());
  // A /proc like one mounted with hidepid=2: this process is visible, the
  // caller is not.
  std::string fake = l.dir / "hidden-proc";
  REQUIRE(mkdir(fake.c_str(), 0755) == 0);
  std::string me = std::to_string(getpid());
  REQUIRE(symlink(me.c_str(), (fake + "/self").c_str()) == 0);
  REQUIRE(symlink(("/proc/" + me).c_str(), (fake + "/" + me).c_str()) == 0);
  Options o;
  o.proc = fake;
  Peer peer = Peer::identify(acc.fd, acc.creds, o);
  const auto& id = peer.at_accept();
  CHECK_FALSE(id.pid.is_known());
  CHECK(id.pid.reason().find("hidepid") != std::string::npos);
  CHECK_FALSE(id.exe.is_known());
  close(c);
}

TEST_CASE("a /proc of another PID namespace is not trusted", "[identity][peer]") {
  Listener l;
  int c = l.client();
  sockaddr_un a = l.address();
  REQUIRE(connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  Accepted acc(l.accept_one());
  std::string fake = l.dir / "foreign-proc";
  REQUIRE(mkdir(fake.c_str(), 0755) == 0);
  REQUIRE(symlink("1", (fake + "/self").c_str()) == 0);  // as if /proc/self were pid 1 there
  Options o;
  o.proc = fake;
  Peer peer = Peer::identify(acc.fd, acc.creds, o);
  CHECK_FALSE(peer.at_accept().pid.is_known());
  CHECK(peer.at_accept().pid.reason().find("does not belong to the agent's PID namespace") != std::string::npos);
  close(c);
}

TEST_CASE("only a kernel without SO_PEERPIDFD falls back to finding the process by pid", "[identity][peer]") {
  using chitty::identity::classify_peerpidfd_error;
  using chitty::identity::PeerPidfdFailure;
  CHECK(classify_peerpidfd_error(ENOPROTOOPT) == PeerPidfdFailure::fallback);
  CHECK(classify_peerpidfd_error(ENODATA) == PeerPidfdFailure::fallback);
  CHECK(classify_peerpidfd_error(EINVAL) == PeerPidfdFailure::exited);  // 6.5-6.15: peer reaped
  CHECK(classify_peerpidfd_error(ESRCH) == PeerPidfdFailure::exited);
  CHECK(classify_peerpidfd_error(EMFILE) == PeerPidfdFailure::error);
}

TEST_CASE("options from the environment force the pidfd_open path", "[identity][peer]") {
  setenv("CHITTY_TEST_NO_SO_PEERPIDFD", "1", 1);
  CHECK_FALSE(chitty::identity::options_from_environment().use_so_peerpidfd);
  unsetenv("CHITTY_TEST_NO_SO_PEERPIDFD");
  CHECK(chitty::identity::options_from_environment().use_so_peerpidfd);
}

TEST_CASE("pidfd sources have the names /health and the audit line use", "[identity]") {
  using chitty::identity::PidfdSource;
  CHECK(chitty::identity::pidfd_source_name(PidfdSource::so_peerpidfd) == "SO_PEERPIDFD");
  CHECK(chitty::identity::pidfd_source_name(PidfdSource::pidfd_open) == "pidfd_open");
  CHECK(chitty::identity::pidfd_source_name(PidfdSource::none) == "none");
}
