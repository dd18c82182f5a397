#include "chitty/base/enum_names.hpp"
#include "chitty/identity/peer.hpp"

#include <fcntl.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <utility>

#include "chitty/base/file.hpp"
#include "chitty/identity/cgroup.hpp"
#include "proc.hpp"

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77  // Linux 6.5; glibc 2.36 headers lack it
#endif

namespace chitty::identity {
namespace {

std::string errno_text(int e) { return std::strerror(e); }

// /proc/PID/{stat,status,cgroup} and fdinfo are a few KiB at most (fstat
// says 0: the cap is on what is read).
constexpr std::size_t kMaxProcFile = std::size_t{64} * 1024;

[[nodiscard]] tl::expected<std::string, FileFailure> read_small(const std::string& path) {
  return read_file(path, FileRules{.max_bytes = kMaxProcFile});
}

int pidfd_open_syscall(pid_t pid) { return static_cast<int>(::syscall(SYS_pidfd_open, pid, 0)); }

// A pidfd becomes readable when its process exits. No permission needed,
// unlike pidfd_send_signal(…, 0).
bool pidfd_exited(int pidfd) {
  pollfd p{pidfd, POLLIN, 0};
  int r = ::poll(&p, 1, 0);
  if (r < 0) return true;  // cannot tell: treat as gone (fail closed)
  return r > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR | POLLNVAL)) != 0;
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

constexpr std::array<std::string_view, 3> kPidfdSourceNames{"SO_PEERPIDFD", "pidfd_open", "none"};
static_assert(names_every(kPidfdSourceNames, PidfdSource::none));

std::string_view pidfd_source_name(PidfdSource s) noexcept { return name_of(kPidfdSourceNames, s); }

[[nodiscard]] Result<Credentials> peer_credentials(int fd) {
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

bool can_read_other_users_exe() {
  constexpr int kCapSysPtrace = 19;
  auto status = read_small("/proc/self/status");
  if (!status) return false;
  std::string_view text(*status);
  auto at = text.find("\nCapEff:");
  if (at == std::string_view::npos) return false;
  text.remove_prefix(at + 8);
  while (!text.empty() && (text.front() == '\t' || text.front() == ' ')) text.remove_prefix(1);
  std::uint64_t caps = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), caps, 16);
  if (ec != std::errc()) return false;
  return (caps >> kCapSysPtrace) & 1U;
}

void forget_process(Identity& id, const std::string& reason) {
  id.pid = Fact<pid_t>::unknown(reason);
  id.start_time = 0;
  id.namespace_pid = Fact<pid_t>::unknown(reason);
  id.nested_pid_namespace = Fact<bool>::unknown(reason);
  id.exe = Fact<std::string>::unknown(reason);
  id.exe_withheld = false;
  id.cgroup = Fact<std::string>::unknown(reason);
  id.unit = Fact<std::string>::unknown(reason);
  id.user_unit = Fact<std::string>::unknown(reason);
  id.container = Fact<std::string>::unknown(reason);
  id.container_runtime = Fact<std::string>::unknown(reason);
}

PeerPidfdFailure classify_peerpidfd_error(int error) noexcept {
  switch (error) {
    case ENOPROTOOPT:  // the kernel predates SO_PEERPIDFD (< 6.5)
    case ENODATA:      // no pid recorded for the peer
      return PeerPidfdFailure::fallback;
    case EINVAL:  // 6.5-6.15: the peer has already been reaped
    case ESRCH:
      return PeerPidfdFailure::exited;
    default:
      return PeerPidfdFailure::error;
  }
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
  // SO_PEERCRED pids are in the agent's PID namespace; /proc must be too.
  char self[32] = {};
  ssize_t self_len = ::readlink((options.proc + "/self").c_str(), self, sizeof self - 1);
  if (self_len <= 0 || std::string(self, static_cast<std::size_t>(self_len)) != std::to_string(getpid())) {
    forget_process(id, options.proc + " does not belong to the agent's PID namespace (mount a /proc for it)");
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
    } else {
      int e = errno;
      // Only a kernel without SO_PEERPIDFD falls back to finding the process
      // by pid: anything else means the connecting process is gone, and the
      // pid may already name another one.
      switch (classify_peerpidfd_error(e)) {
        case PeerPidfdFailure::fallback: break;
        case PeerPidfdFailure::exited: forget_process(id, kExited); return peer;
        case PeerPidfdFailure::error: forget_process(id, "SO_PEERPIDFD failed: " + errno_text(e)); return peer;
      }
    }
  }
  if (peer.pidfd_ < 0) {
    int pidfd = pidfd_open_syscall(creds.pid);
    if (pidfd >= 0) {
      peer.pidfd_ = pidfd;
      id.pidfd_source = PidfdSource::pidfd_open;
    } else if (errno == ESRCH) {
      forget_process(id, kExited);
      return peer;
    } else if (errno != ENOSYS) {  // ENOSYS (< 5.3): the start time alone pins the process
      forget_process(id, "pidfd_open failed: " + errno_text(errno));
      return peer;
    }
  }
  if (peer.pidfd_ >= 0) {
    // The pidfd must name this very pid in our namespace (-1: it exited).
    auto info = read_small(options.proc + "/self/fdinfo/" + std::to_string(peer.pidfd_));
    auto pinned = info ? fdinfo_pid(*info) : std::nullopt;
    if (!pinned) {
      forget_process(id, "cannot read the pidfd's fdinfo");
      return peer;
    }
    if (*pinned == -1 || pidfd_exited(peer.pidfd_)) {
      forget_process(id, kExited);
      return peer;
    }
    if (*pinned != creds.pid) {
      forget_process(id, "the pinned process is pid " + std::to_string(*pinned) + ", not " +
                             std::to_string(creds.pid) + " (PID namespace mismatch)");
      return peer;
    }
  }

  auto stat = read_small(dir + "/stat");
  if (!stat) {
    const FileFailure& f = stat.error();
    forget_process(id, f.kind == FileFailure::Kind::open && f.error == ENOENT
                           ? "cannot see /proc/" + std::to_string(creds.pid) +
                                 " (the process exited, or /proc is mounted with hidepid / ProtectProc=)"
                           : "cannot read " + dir + "/stat: " + f.reason());
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
  if (id.pidfd_source != PidfdSource::so_peerpidfd) {
    if (!status) {
      forget_process(id, "cannot read " + dir + "/status to check the process is the one that connected: " +
                             status.error().reason());
      return peer;
    }
    auto euid = status_effective_id(*status, "Uid:");
    auto egid = status_effective_id(*status, "Gid:");
    if (!euid || !egid || *euid != creds.uid || *egid != creds.gid) {
      forget_process(id, "the process now at pid " + std::to_string(creds.pid) +
                             " does not have the credentials of the one that connected (pid reused?)");
      return peer;
    }
  }

  id.pid = Fact<pid_t>::known(creds.pid);
  id.start_time = *start;
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
    std::string why = "cannot read " + dir + "/status: " + status.error().reason();
    id.namespace_pid = Fact<pid_t>::unknown(why);
    id.nested_pid_namespace = Fact<bool>::unknown(why);
  }

  id.exe = peer.read_exe(dir);

  auto cg = read_small(dir + "/cgroup");
  if (cg) {
    if (auto info = parse_proc_cgroup(*cg)) {
      id.cgroup = Fact<std::string>::known(info->path);
      if (info->path.rfind("/..", 0) == 0) {
        // Relative to the agent's cgroup namespace root: what lies above it
        // (a delegating unit, the real unit) cannot be seen.
        std::string why = "the caller's cgroup is outside the agent's cgroup namespace (" + info->path +
                          "); run the agent in the host's cgroup namespace (--cgroupns=host)";
        id.unit = Fact<std::string>::unknown(why);
        id.user_unit = Fact<std::string>::unknown(why);
        id.container = Fact<std::string>::unknown(why);
        id.container_runtime = Fact<std::string>::unknown(why);
      } else {
        if (info->systemd_hierarchy) {
          id.unit = Fact<std::string>::known(info->unit);
          id.user_unit = Fact<std::string>::known(info->user_unit);
        } else {
          std::string why = "no systemd cgroup hierarchy (neither name=systemd nor cgroup v2) on this host";
          id.unit = Fact<std::string>::unknown(why);
          id.user_unit = Fact<std::string>::unknown(why);
        }
        if (info->container_unknown.empty()) {
          id.container = Fact<std::string>::known(info->container);
          id.container_runtime = Fact<std::string>::known(info->runtime);
        } else {
          id.container = Fact<std::string>::unknown(info->container_unknown);
          id.container_runtime = Fact<std::string>::unknown(info->container_unknown);
        }
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
    std::string why = "cannot read " + dir + "/cgroup: " + cg.error().reason();
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

Fact<std::string> Peer::read_exe(const std::string& dir) {
  char exe[4096];
  ssize_t n = ::readlink((dir + "/exe").c_str(), exe, sizeof exe);
  if (n < 0) {
    if (errno == EACCES || errno == EPERM) {
      identity_.exe_withheld = true;
      return Fact<std::string>::unknown("permission denied reading " + dir +
                                        "/exe (another user's process; the agent would need CAP_SYS_PTRACE)");
    }
    if (errno == ENOENT) return Fact<std::string>::unknown("the process has no executable (kernel thread or exited)");
    return Fact<std::string>::unknown("cannot read " + dir + "/exe: " + errno_text(errno));
  }
  if (static_cast<std::size_t>(n) >= sizeof exe) return Fact<std::string>::unknown("the executable's path is too long");
  std::string path(exe, static_cast<std::size_t>(n));
  // The path is the program's name in the caller's mount namespace. It is an
  // established fact only if that path, as the agent sees it, is the very
  // file the caller runs: a private mount (unshare -m, a container) can put
  // any program behind a trusted-looking path.
  struct stat running {}, named {};
  if (::stat((dir + "/exe").c_str(), &running) != 0) {
    return Fact<std::string>::unknown("cannot stat " + dir + "/exe: " + errno_text(errno));
  }
  if (::stat(path.c_str(), &named) != 0 || running.st_dev != named.st_dev || running.st_ino != named.st_ino) {
    return Fact<std::string>::unknown(
        "the caller runs " + path +
        " as seen in its own mount namespace, which is not the file at that path here (a container, a private "
        "mount, or a replaced or deleted file)");
  }
  exe_dev_ = running.st_dev;
  exe_ino_ = running.st_ino;
  // Re-checks look the executable up relative to this, not by pid.
  proc_dir_ = ::open(dir.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
  return Fact<std::string>::known(std::move(path));
}

Peer Peer::fixed(Identity id) {
  Peer peer;
  peer.identity_ = std::move(id);
  peer.fixed_ = true;
  return peer;
}

Peer Peer::attested(Identity id) {
  Peer peer;
  peer.identity_ = std::move(id);
  peer.fixed_ = true;
  return peer;
}

bool Peer::alive() const {
  if (fixed_) return identity_.pid.is_known();  // as given
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
  if (fixed_ || !id.pid.is_known()) return id;
  // A process may exec another program after connecting: its executable is
  // looked at again through the /proc/PID directory opened while the pidfd
  // proved the process alive. That directory answers only for that very
  // process — once it has exited (a zombie has no exe) or been reaped, and
  // whoever has its pid now, the lookup fails — so an answer here also
  // proves it alive, and the pidfd need not be asked (one system call less
  // on every answer; docs/identity.md).
  if (id.exe.is_known() && proc_dir_ >= 0) {
    struct stat now {};
    if (::fstatat(proc_dir_, "exe", &now, 0) == 0) {
      if (now.st_dev != exe_dev_ || now.st_ino != exe_ino_) {
        id.exe = Fact<std::string>::unknown("the process has executed another program since it connected");
      }
      return id;
    }
  }
  if (!alive()) {
    forget_process(id, kExited);
    return id;
  }
  if (id.exe.is_known()) {
    id.exe = Fact<std::string>::unknown("the process has executed another program since it connected");
  }
  return id;
}

Peer::~Peer() {
  if (pidfd_ >= 0) ::close(pidfd_);
  if (proc_dir_ >= 0) ::close(proc_dir_);
}

Peer::Peer(Peer&& o) noexcept
    : identity_(std::move(o.identity_)), pidfd_(std::exchange(o.pidfd_, -1)),
      proc_dir_(std::exchange(o.proc_dir_, -1)), start_time_(o.start_time_),
      exe_dev_(o.exe_dev_), exe_ino_(o.exe_ino_), proc_(std::move(o.proc_)), fixed_(o.fixed_) {}

Peer& Peer::operator=(Peer&& o) noexcept {
  if (this != &o) {
    if (pidfd_ >= 0) ::close(pidfd_);
    if (proc_dir_ >= 0) ::close(proc_dir_);
    identity_ = std::move(o.identity_);
    pidfd_ = std::exchange(o.pidfd_, -1);
    proc_dir_ = std::exchange(o.proc_dir_, -1);
    start_time_ = o.start_time_;
    exe_dev_ = o.exe_dev_;
    exe_ino_ = o.exe_ino_;
    proc_ = std::move(o.proc_);
    fixed_ = o.fixed_;
  }
  return *this;
}

}  // namespace chitty::identity
