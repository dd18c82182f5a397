#include "chitty/app/state_dir.hpp"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "chitty/base/fd.hpp"
#include "chitty/base/text.hpp"

namespace chitty::app {
namespace {

std::string errno_text(int e) { return std::strerror(e); }

[[nodiscard]] Result<void> ensure_directory(const std::string& path) {
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) {
    if (errno != ENOENT) return fail("cannot inspect state directory " + path + ": " + errno_text(errno));
    auto slash = path.rfind('/');
    if (slash != std::string::npos && slash > 0) {
      std::string parent = path.substr(0, slash);
      if (auto r = ensure_directory(parent); !r) return r;
    }
    if (mkdir(path.c_str(), 0700) != 0 && errno != EEXIST) {
      return fail("cannot create state directory " + path + ": " + errno_text(errno));
    }
    return {};
  }
  if (!S_ISDIR(st.st_mode)) return fail("state directory " + path + " exists and is not a directory");
  return {};
}

}  // namespace

Result<StateDir> StateDir::open(const std::string& path) {
  if (auto r = ensure_directory(path); !r) return tl::unexpected(r.error());
  struct stat st {};
  if (stat(path.c_str(), &st) != 0) return fail("cannot inspect state directory " + path + ": " + errno_text(errno));
  if (st.st_uid != geteuid()) {
    return fail("state directory " + path + " belongs to uid " + std::to_string(st.st_uid) +
                ", not to the agent's uid " + std::to_string(geteuid()));
  }
  if ((st.st_mode & 0022) != 0) {
    return fail("state directory " + path + " is writable by group or others (mode " + format_mode(st.st_mode) +
                "); chmod 0700 it");
  }
  std::string lock_path = path + "/agent.lock";
  UniqueFd fd(::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) return fail("cannot open " + lock_path + ": " + errno_text(errno));
  if (flock(fd.get(), LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    std::string holder;
    char buf[32] = {};
    ssize_t n = pread(fd.get(), buf, sizeof buf - 1, 0);
    if (n > 0) {
      holder = std::string(buf, static_cast<std::size_t>(n));
      while (!holder.empty() && (holder.back() == '\n' || holder.back() == ' ')) holder.pop_back();
    }
    if (e == EWOULDBLOCK) {
      return fail("state directory " + path + " is in use by another chitty-agent" +
                  (holder.empty() ? std::string() : " (pid " + holder + ")"));
    }
    return fail("cannot lock " + lock_path + ": " + errno_text(e));
  }
  std::string pid = std::to_string(getpid()) + "\n";
  if (ftruncate(fd.get(), 0) != 0 || pwrite(fd.get(), pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
    return fail("cannot write " + lock_path + ": " + errno_text(errno));
  }
  return StateDir(path, std::move(fd));
}

}  // namespace chitty::app
