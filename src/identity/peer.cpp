#include "chitty/identity/peer.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <utility>

#include "chitty/identity/cgroup.hpp"
#include "proc.hpp"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77  // Linux 6.5; glibc 2.36 headers lack it
#endif

namespace chitty::identity {
namespace {

std::string errno_text(int e) { return std::strerror(e); }

// Reads a small /proc file; nullopt with errno set on failure.
std::optional<std::string> read_small(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return std::nullopt;
  std::string out;
  char buf[4096];
  while (out.size() < 64 * 1024) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      ::close(fd);
      errno = e;
      return std::nullopt;
    }
    if (n == 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fd);
  return out;
}

int pidfd_open_syscall(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

// A pidfd becomes readable when its process exits. No permission needed,
// unlike pidfd_send_signal(…, 0).
bool pidfd_exited(int pidfd) {
  pollfd p{pidfd, POLLIN, 0};
  return ::poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP)) != 0;
}

std::uint64_t boot_ticks_now() {
  timespec ts{};
  clock_gettime(CLOCK_BOOTTIME, &ts);
  long hz = sysconf(_SC_CLK_TCK);
  return static_cast<std::uint64_t>(ts.tv_sec) * static_cast<std::uint64_t>(hz) +
         static_cast<std::uint64_t>(ts.tv_nsec) / (1'000'000'000ULL / static_cast<std::uint64_t>(hz));
}

const char* kExited = "the process that connected has exited; its pid may belong to another process now";

}  // namespace

std::string_view pidfd_source_name(PidfdSource s) noexcept {
  switch (s) {
    case PidfdSource::so_peerpidfd: return "SO_PEERPIDFD";
    case PidfdSource::pidfd_open: return "pidfd_open";
    case PidfdSource::none: return "none";
  }
  return "none";
}

Result<Credentials> peer_credentials(int fd) {
  struct ucred cred {};
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return fail("SO_PEERCRED: " + errno_text(errno));
  }
  return Credentials{cred.uid, cred.gid, cred.pid};
}

Options options_from_environment() {
  Options o;
  const char* v = std::getenv("CHITTY_TEST_NO_SO_PEERPIDFD");
  if (v != nullptr && std::string_view(v) == "1") o.use_so_peerpidfd = false;
  return o;
}

void forget_process(Identity& id, const std::string& reason) {
  id.pid = Fact<pid_t>::unknown(reason);
  id.namespace_pid = Fact<pid_t>::unknown(reason);
  id.nested_pid_namespace = Fact<bool>::unknown(reason);
  id.exe = Fact<std::string>::unknown(reason);
  id.cgroup = Fact<std::string>::unknown(reason);
  id.unit = Fact<std::string>::unknown(reason);
  id.user_unit = Fact<std::string>::unknown(reason);
  id.container = Fact<std::string>::unknown(reason);
  id.container_runtime = Fact<std::string>::unknown(reason);
}

Peer Peer::identify(int fd, const Credentials& creds, const Options& options) {
  Peer peer;
  peer.proc_ = options.proc;
  Identity& id = peer.identity_;
  id.raw_uid = creds.uid;
  id.raw_gid = creds.gid;
  id.raw_pid = creds.pid;
  id.uid = creds.uid == kOverflowUid
               ? Fact<uid_t>::unknown("65534 is the kernel's overflow uid: the caller's user namespace has no "
                                      "mapping for its uid here")
               : Fact<uid_t>::known(creds.uid);
  id.gid = creds.gid == kOverflowGid
               ? Fact<gid_t>::unknown("65534 is the kernel's overflow gid: the caller's user namespace has no "
                                      "mapping for its gid here")
               : Fact<gid_t>::known(creds.gid);

  if (creds.pid <= 0) {
    forget_process(id, "the caller is in a PID namespace the agent cannot see (SO_PEERCRED pid 0)");
    return peer;
  }
  const std::uint64_t accepted_at = boot_ticks_now();
  const std::string dir = options.proc + "/" + std::to_string(creds.pid);

  // Pin the process first; everything read from /proc below is believed only
  // if the pinned process is still there afterwards.
  if (options.use_so_peerpidfd) {
    int pidfd = -1;
    socklen_t len = sizeof pidfd;
    if (getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) == 0 && pidfd >= 0) {
      peer.pidfd_ = pidfd;
      id.pidfd_source = PidfdSource::so_peerpidfd;
    }
    // ENOPROTOOPT: a kernel before 6.5; fall back below.
  }
  if (peer.pidfd_ < 0) {
    int pidfd = pidfd_open_syscall(creds.pid);
    if (pidfd >= 0) {
      peer.pidfd_ = pidfd;
      id.pidfd_source = PidfdSource::pidfd_open;
    } else if (errno == ESRCH) {
      forget_process(id, kExited);
      return peer;
    }
  }
  if (peer.pidfd_ >= 0 && pidfd_exited(peer.pidfd_)) {
    forget_process(id, kExited);
    return peer;
  }

  auto stat = read_small(dir + "/stat");
  if (!stat) {
    int e = errno;
    forget_process(id, e == ENOENT ? "cannot see /proc/" + std::to_string(creds.pid) +
                                         " (the process exited, or /proc is mounted with hidepid / ProtectProc=)"
                                   : "cannot read " + dir + "/stat: " + errno_text(e));
    return peer;
  }
  auto start = stat_start_time(*stat);
  if (!start) {
    forget_process(id, "cannot parse " + dir + "/stat");
    return peer;
  }
  // Without SO_PEERPIDFD the pidfd was opened by pid: a process that started
  // after the connection was accepted cannot be the one that connected.
  if (id.pidfd_source != PidfdSource::so_peerpidfd && *start > accepted_at) {
    forget_process(id, "pid " + std::to_string(creds.pid) + " was reused by a process that started after the "
                       "connection was accepted");
    return peer;
  }
  peer.start_time_ = *start;

  auto status = read_small(dir + "/status");
  // Without SO_PEERPIDFD, the process found by pid must also have the
  // credentials the kernel recorded at connect(): a reused pid usually
  // belongs to someone else. (A reuse by the same uid between connect and
  // accept stays undetectable on such kernels: docs/identity.md.)
  if (id.pidfd_source != PidfdSource::so_peerpidfd && status) {
    auto euid = status_effective_id(*status, "Uid:");
    auto egid = status_effective_id(*status, "Gid:");
    if (!euid || !egid || *euid != creds.uid || *egid != creds.gid) {
      forget_process(id, "the process now at pid " + std::to_string(creds.pid) +
                             " does not have the credentials of the one that connected (pid reused?)");
      return peer;
    }
  }

  id.pid = Fact<pid_t>::known(creds.pid);
  if (status) {
    auto ns = status_nspids(*status);
    if (!ns.empty()) {
      id.namespace_pid = Fact<pid_t>::known(ns.back());
      id.nested_pid_namespace = Fact<bool>::known(ns.size() > 1);
    } else {
      id.namespace_pid = Fact<pid_t>::unknown("no NSpid line in " + dir + "/status");
      id.nested_pid_namespace = Fact<bool>::unknown("no NSpid line in " + dir + "/status");
    }
  } else {
    std::string why = "cannot read " + dir + "/status: " + errno_text(errno);
    id.namespace_pid = Fact<pid_t>::unknown(why);
    id.nested_pid_namespace = Fact<bool>::unknown(why);
  }

  char exe[4096];
  ssize_t n = ::readlink((dir + "/exe").c_str(), exe, sizeof exe - 1);
  if (n >= 0) {
    id.exe = Fact<std::string>::known(std::string(exe, static_cast<std::size_t>(n)));
  } else if (errno == EACCES || errno == EPERM) {
    id.exe = Fact<std::string>::unknown("permission denied reading " + dir +
                                        "/exe (another user's process; the agent would need CAP_SYS_PTRACE)");
  } else if (errno == ENOENT) {
    id.exe = Fact<std::string>::unknown("the process has no executable (kernel thread or exited)");
  } else {
    id.exe = Fact<std::string>::unknown("cannot read " + dir + "/exe: " + errno_text(errno));
  }

  if (auto cg = read_small(dir + "/cgroup")) {
    if (auto info = parse_proc_cgroup(*cg)) {
      id.cgroup = Fact<std::string>::known(info->path);
      id.unit = Fact<std::string>::known(info->unit);
      id.user_unit = Fact<std::string>::known(info->user_unit);
      if (info->delegated_to.empty()) {
        id.container = Fact<std::string>::known(info->container);
        id.container_runtime = Fact<std::string>::known(info->runtime);
      } else {
        std::string why = "the container-looking cgroup is inside " + info->delegated_to +
                          ", whose owner can name cgroups at will (a rootless container or a look-alike); match on "
                          "the uid instead";
        id.container = Fact<std::string>::unknown(why);
        id.container_runtime = Fact<std::string>::unknown(why);
      }
    } else {
      std::string why = dir + "/cgroup has no cgroup line";
      id.cgroup = Fact<std::string>::unknown(why);
      id.unit = Fact<std::string>::unknown(why);
      id.user_unit = Fact<std::string>::unknown(why);
      id.container = Fact<std::string>::unknown(why);
      id.container_runtime = Fact<std::string>::unknown(why);
    }
  } else {
    std::string why = "cannot read " + dir + "/cgroup: " + errno_text(errno);
    id.cgroup = Fact<std::string>::unknown(why);
    id.unit = Fact<std::string>::unknown(why);
    id.user_unit = Fact<std::string>::unknown(why);
    id.container = Fact<std::string>::unknown(why);
    id.container_runtime = Fact<std::string>::unknown(why);
  }

  // The pid could have been reused while we read: only facts read while the
  // pinned process was alive are its facts.
  if (!peer.alive()) forget_process(id, kExited);
  return peer;
}

bool Peer::alive() const {
  if (!identity_.pid.is_known()) return false;
  if (pidfd_ >= 0) return !pidfd_exited(pidfd_);
  // No pidfd (pidfd_open unavailable): the same pid with the same start time.
  auto stat = read_small(proc_ + "/" + std::to_string(identity_.raw_pid) + "/stat");
  if (!stat) return false;
  auto start = stat_start_time(*stat);
  return start && *start == start_time_;
}

Identity Peer::current() const {
  Identity id = identity_;
  if (id.pid.is_known() && !alive()) forget_process(id, kExited);
  return id;
}

Peer::~Peer() {
  if (pidfd_ >= 0) ::close(pidfd_);
}

Peer::Peer(Peer&& o) noexcept
    : identity_(std::move(o.identity_)), pidfd_(std::exchange(o.pidfd_, -1)), start_time_(o.start_time_),
      proc_(std::move(o.proc_)) {}

Peer& Peer::operator=(Peer&& o) noexcept {
  if (this != &o) {
    if (pidfd_ >= 0) ::close(pidfd_);
    identity_ = std::move(o.identity_);
    pidfd_ = std::exchange(o.pidfd_, -1);
    start_time_ = o.start_time_;
    proc_ = std::move(o.proc_);
  }
  return *this;
}

}  // namespace chitty::identity
