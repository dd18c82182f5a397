// chittyctl inject: a template rendered with its references' values, to
// standard output or — at the user's explicit request — to a file written
// atomically with mode 0600.
#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>

#include "chitty/base/fd.hpp"
#include "chitty/base/file.hpp"
#include "chitty/base/random.hpp"
#include "chitty/client/commands.hpp"
#include "chitty/client/template.hpp"

namespace chitty::client {

namespace {

constexpr std::size_t kMaxTemplate = 4u << 20;

Outcome<std::string> read_template(const std::string& path) {
  if (path.empty() || path == "-") {
    std::string text;
    char chunk[16384];
    for (;;) {
      ssize_t n = ::read(0, chunk, sizeof chunk);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) return failed(Exit::failure, std::string("cannot read the template from standard input: ") + std::strerror(errno));
      if (n == 0) break;
      if (text.size() + static_cast<std::size_t>(n) > kMaxTemplate) {
        return failed(Exit::usage, "the template is larger than 4MiB");
      }
      text.append(chunk, static_cast<std::size_t>(n));
    }
    return text;
  }
  FileRules rules;
  rules.max_bytes = kMaxTemplate;
  auto text = read_file(path, rules);
  if (!text) return failed(Exit::usage, text.error().message("template " + path));
  return std::move(*text);
}

// Writes the pieces to `fd`; false on a write error.
bool write_pieces(int fd, const std::vector<Piece>& pieces, const std::vector<const secure::SecureBuffer*>& values) {
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    if (pieces[i].kind == Piece::Kind::text) {
      if (!write_all(fd, pieces[i].text)) return false;
    } else if (!write_all(fd, std::string_view(values[i]->data(), values[i]->size()))) {
      return false;
    }
  }
  return true;
}

// The file written atomically: the content goes to a file with no name in
// FILE's directory (O_TMPFILE; where the filesystem has none, a private
// temporary name), is synced, gets a temporary name and is renamed over
// FILE, and the directory is synced. A process killed while writing leaves
// nothing behind; the usual termination signals wait until the file is in
// place or cleaned up.
Outcome<void> write_file(const std::string& path, unsigned mode, const std::vector<Piece>& pieces,
                         const std::vector<const secure::SecureBuffer*>& values) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) == 0) {
    if (S_ISDIR(st.st_mode)) return failed(Exit::usage, path + " is a directory");
    if (S_ISLNK(st.st_mode)) {
      return failed(Exit::usage, path + " is a symbolic link: give the file it points to (it would be replaced by a "
                                        "file, not written through)");
    }
  }
  std::string dir = ".";
  std::string base = path;
  if (auto slash = path.rfind('/'); slash != std::string::npos) {
    dir = slash == 0 ? "/" : path.substr(0, slash);
    base = path.substr(slash + 1);
  }
  if (base.empty()) return failed(Exit::usage, "-o " + path + ": give a file name");
  sigset_t block, old;
  sigemptyset(&block);
  for (int sig : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) sigaddset(&block, sig);
  ::sigprocmask(SIG_BLOCK, &block, &old);
  auto unblock = [&] { ::sigprocmask(SIG_SETMASK, &old, nullptr); };
  char suffix[17];
  std::snprintf(suffix, sizeof suffix, "%016llx", static_cast<unsigned long long>(random_u64()));
  const std::string tmp = dir + "/." + base + ".chittyctl-" + suffix;
  bool named = false;  // the temporary has a name (to remove on failure)
  UniqueFd fd(::open(dir.c_str(), O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600));
  if (!fd) {
    fd = UniqueFd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
    named = static_cast<bool>(fd);
  }
  if (!fd) {
    int e = errno;
    unblock();
    return failed(Exit::failure, "cannot create a file in " + dir + ": " + std::strerror(e));
  }
  auto abandon = [&](const std::string& what) {
    int e = errno;
    fd.reset();
    if (named) ::unlink(tmp.c_str());
    unblock();
    return failed(Exit::failure, what + ": " + std::strerror(e));
  };
  // The mode is set explicitly: the umask may not take bits away from it.
  if (::fchmod(fd.get(), mode) != 0) return abandon("cannot set the mode of the new " + path);
  if (!write_pieces(fd.get(), pieces, values)) return abandon("cannot write the new " + path);
  if (::fsync(fd.get()) != 0) return abandon("cannot fsync the new " + path);
  if (!named) {
    std::string self = "/proc/self/fd/" + std::to_string(fd.get());
    if (::linkat(AT_FDCWD, self.c_str(), AT_FDCWD, tmp.c_str(), AT_SYMLINK_FOLLOW) != 0) {
      return abandon("cannot give the new " + path + " a name in " + dir);
    }
    named = true;
  }
  fd.reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) return abandon("cannot rename " + tmp + " to " + path);
  auto synced = fsync_directory(dir);
  unblock();
  if (!synced) {
    return failed(Exit::failure, path + " is written and in place, but its directory could not be synced (it may not "
                                        "survive a power loss): " + synced.error().message);
  }
  return {};
}

}  // namespace

int inject(Session& s, const InjectOptions& o) {
  if (o.file_mode > 0777 || (o.file_mode & 0007) != 0) {
    return report(Failure{Exit::usage, "--file-mode: give no permission to others (e.g. 0600, 0640)", {}, {}, {}});
  }
  auto text = read_template(o.input);
  if (!text) return report(text.error());
  auto pieces = parse_template(*text, [](std::string_view name) -> std::optional<std::string> {
    const char* v = std::getenv(std::string(name).c_str());
    if (v == nullptr) return std::nullopt;
    return std::string(v);
  });
  std::string where = o.input.empty() || o.input == "-" ? "<stdin>" : o.input;
  if (!pieces) return report(Failure{Exit::usage, where + ":" + pieces.error().message, {}, {}, {}});
  // Every value first: nothing is written unless all of them came.
  std::map<std::string, secure::SecureBuffer, std::less<>> resolved;
  std::vector<const secure::SecureBuffer*> values(pieces->size(), nullptr);
  for (std::size_t i = 0; i < pieces->size(); ++i) {
    const Piece& p = (*pieces)[i];
    if (p.kind != Piece::Kind::reference) continue;
    auto it = resolved.find(p.text);
    if (it == resolved.end()) {
      Wanted w;
      w.ref = p.text;
      auto value = fetch_value(s.agent, s.arena, w, s.context);
      if (!value) {
        Failure f = value.error();
        f.message = where + ":" + std::to_string(p.line) + ":" + std::to_string(p.column) + ": " + p.text + ": " +
                    f.message;
        return report(f);
      }
      it = resolved.emplace(p.text, std::move(*value)).first;
    }
    values[i] = &it->second;
  }
  if (o.output.empty()) {
    if (!write_pieces(1, *pieces, values)) {
      return report(Failure{Exit::failure, "cannot write to standard output", {}, {}, {}});
    }
    return 0;
  }
  if (auto written = write_file(o.output, o.file_mode, *pieces, values); !written) return report(written.error());
  return 0;
}

}  // namespace chitty::client
