#include "chitty/server/unix_socket.hpp"

#include <fcntl.h>
#include <grp.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <optional>
#include <utility>
#include <vector>

#include "chitty/base/fd.hpp"
#include "chitty/base/random.hpp"
#include "chitty/base/text.hpp"

namespace chitty::server {
namespace {

std::string errno_text(int e) { return std::strerror(e); }

std::string parent_of(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

bool fill_address(const std::string& path, sockaddr_un& addr) {
  if (path.size() >= sizeof addr.sun_path) return false;
  std::memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  return true;
}

// mkdir -p with `mode` for the directories it creates.
[[nodiscard]] Result<void> make_directories(const std::string& dir, mode_t mode) {
  struct stat st {};
  if (stat(dir.c_str(), &st) == 0) {
    if (!S_ISDIR(st.st_mode)) return fail(dir + " exists and is not a directory");
    return {};
  }
  if (errno != ENOENT) return fail("cannot inspect " + dir + ": " + errno_text(errno));
  if (auto r = make_directories(parent_of(dir), mode); !r) return r;
  if (mkdir(dir.c_str(), mode) != 0 && errno != EEXIST) {
    return fail("cannot create directory " + dir + ": " + errno_text(errno));
  }
  return {};
}

// Clients trust whatever answers at the socket path, so nobody but root and
// the agent may be able to replace it: the directory must not be writable by
// group or others unless it is sticky (like /tmp), and must belong to root or
// to the agent's user.
[[nodiscard]] Result<void> check_directory(const std::string& dir) {
  struct stat st {};
  if (stat(dir.c_str(), &st) != 0) return fail("cannot inspect " + dir + ": " + errno_text(errno));
  if (st.st_uid != 0 && st.st_uid != geteuid()) {
    return fail("socket directory " + dir + " belongs to uid " + std::to_string(st.st_uid) +
                ", which could replace the socket; use a directory owned by root or by the agent's user");
  }
  if ((st.st_mode & 0022) != 0 && (st.st_mode & S_ISVTX) == 0) {
    return fail("socket directory " + dir + " is writable by group or others (mode " + format_mode(st.st_mode) +
                ", not sticky), who could replace the socket; chmod go-w it");
  }
  return {};
}

[[nodiscard]] Result<gid_t> resolve_group(const std::string& group) {
  std::uint64_t numeric = 0;
  if (parse_u64(group, numeric)) return static_cast<gid_t>(numeric);
  std::vector<char> buf(16384);
  struct group gr {};
  struct group* found = nullptr;
  int rc = getgrnam_r(group.c_str(), &gr, buf.data(), buf.size(), &found);
  if (rc != 0) return fail("cannot look up group \"" + group + "\": " + errno_text(rc));
  if (found == nullptr) return fail("group \"" + group + "\" does not exist (agent.socket_group)");
  return found->gr_gid;
}

}  // namespace

PathState probe_socket_path(const std::string& path, std::string* detail) {
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return PathState::absent;
    if (detail) *detail = errno_text(errno);
    return PathState::unknown;
  }
  if (!S_ISSOCK(st.st_mode)) return PathState::not_a_socket;
  sockaddr_un addr{};
  if (!fill_address(path, addr)) {
    if (detail) *detail = "path too long";
    return PathState::unknown;
  }
  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) {
    if (detail) *detail = errno_text(errno);
    return PathState::unknown;
  }
  int rc = connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  int err = rc == 0 ? 0 : errno;
  fd.reset();
  // A listener with a full backlog answers EAGAIN: it is alive, only busy.
  if (rc == 0 || err == EAGAIN || err == EINPROGRESS) return PathState::live_socket;
  if (err == ECONNREFUSED) return PathState::stale_socket;
  if (err == ENOENT) return PathState::absent;
  if (detail) *detail = errno_text(err);
  return PathState::unknown;
}

[[nodiscard]] Result<SocketFile> create_listening_socket(const SocketSpec& spec) {
  const std::string& path = spec.path;
  sockaddr_un addr{};
  if (path.empty() || path.front() != '/') return fail("socket path must be absolute: " + path);
  if (!fill_address(path, addr)) {
    return fail("socket path is " + std::to_string(path.size()) + " bytes; Unix sockets allow at most " +
                std::to_string(sizeof addr.sun_path - 1) + ": " + path);
  }
  std::string dir = parent_of(path);
  if (auto r = make_directories(dir, 0755); !r) return tl::unexpected(r.error());
  if (auto r = check_directory(dir); !r) return tl::unexpected(r.error());

  // Agents starting at the same time serialise here, so the probe below and
  // the rename cannot interleave with another agent's.
  std::string lock_path = path + ".lock";
  // Declared before the socket: on every way out the lock is released last.
  UniqueFd lock_fd(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!lock_fd) return fail("cannot open " + lock_path + ": " + errno_text(errno));
  if (flock(lock_fd.get(), LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    if (e == EWOULDBLOCK) {
      return fail("another chitty-agent is already serving on " + path + " (it holds " + lock_path +
                  "); refusing to displace it");
    }
    return fail("cannot lock " + lock_path + ": " + errno_text(e));
  }

  std::string detail;
  PathState state = probe_socket_path(path, &detail);
  switch (state) {
    case PathState::absent:
    case PathState::stale_socket:  // replaced atomically by the rename below
      break;
    case PathState::live_socket:
      return fail("another process is already serving on " + path + "; refusing to displace it");
    case PathState::not_a_socket:
      return fail(path + " exists and is not a socket; refusing to replace it");
    case PathState::unknown:
      return fail("cannot check " + path + ": " + detail);
  }

  std::optional<gid_t> gid;
  if (!spec.group.empty()) {
    auto g = resolve_group(spec.group);
    if (!g) return fail(g.error().message);
    gid = *g;
  }

  // Temporary name in the same directory (rename needs the same file
  // system), unguessable, and within sun_path.
  char suffix[32];
  std::snprintf(suffix, sizeof suffix, "/.chitty-%016llx", static_cast<unsigned long long>(random_u64()));
  std::string tmp = dir == "/" ? std::string(suffix) : dir + suffix;
  sockaddr_un tmp_addr{};
  if (!fill_address(tmp, tmp_addr)) {
    return fail("the socket's directory path is too long to create the socket safely (a temporary name in it needs " +
                std::to_string(tmp.size()) + " bytes, Unix sockets allow " +
                std::to_string(sizeof tmp_addr.sun_path - 1) + "): " + dir);
  }

  UniqueFd fd(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
  if (!fd) return fail("socket(): " + errno_text(errno));
  bool bound = false;
  auto cleanup = [&](const std::string& message) {
    fd.reset();
    if (bound) unlink(tmp.c_str());
    return fail(message);
  };

  // Owner-only from the moment the inode exists; umask is process-wide, but
  // this runs at start-up before any other thread exists.
  mode_t old_umask = umask(0177);
  int rc = bind(fd.get(), reinterpret_cast<sockaddr*>(&tmp_addr), sizeof tmp_addr);
  int bind_errno = errno;
  umask(old_umask);
  if (rc != 0) return cleanup("cannot bind a socket in " + dir + ": " + errno_text(bind_errno));
  bound = true;
  // Only change the group if it is not already right: the usual set-up runs
  // the agent with that group as its own (Group=chitty), and the systemd unit
  // filters chown out (@privileged).
  struct stat created {};
  if (gid && (lstat(tmp.c_str(), &created) != 0 || created.st_gid != *gid) &&
      lchown(tmp.c_str(), static_cast<uid_t>(-1), *gid) != 0) {
    int e = errno;
    return cleanup("cannot give the socket to group \"" + spec.group + "\": " + errno_text(e) +
                   (e == EPERM ? " (run the agent with that group as its primary group, e.g. Group= in the unit, or "
                                 "as a member of it where chown is allowed)"
                               : ""));
  }
  if (chmod(tmp.c_str(), static_cast<mode_t>(spec.mode)) != 0) {
    return cleanup("cannot set the socket's mode to " + format_mode(spec.mode) + ": " + errno_text(errno));
  }
  if (listen(fd.get(), spec.backlog) != 0) return cleanup("listen(): " + errno_text(errno));
  // Into place: over the stale socket we found, or onto an absent path only if
  // it is still absent.
  rc = state == PathState::absent ? renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, path.c_str(), RENAME_NOREPLACE)
                                  : rename(tmp.c_str(), path.c_str());
  if (rc != 0) {
    int e = errno;
    if (e == EEXIST) return cleanup(path + " appeared while the agent was starting; refusing to replace it");
    return cleanup("cannot move the socket into place at " + path + ": " + errno_text(e));
  }
  struct stat st {};
  if (lstat(path.c_str(), &st) != 0) return fail("socket vanished from " + path + ": " + errno_text(errno));
  return SocketFile(std::move(fd), std::move(lock_fd), path, st.st_dev, st.st_ino);
}

void SocketFile::remove() noexcept {
  if (removed_ || path_.empty()) return;
  removed_ = true;
  struct stat st {};
  if (lstat(path_.c_str(), &st) == 0 && st.st_dev == dev_ && st.st_ino == ino_) unlink(path_.c_str());
}

}  // namespace chitty::server
