#include "chitty/base/file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "chitty/base/fd.hpp"
#include "chitty/base/text.hpp"
#include "chitty/base/units.hpp"

namespace chitty {
namespace {

using Kind = FileFailure::Kind;

tl::unexpected<FileFailure> failed(Kind kind, int error = 0) {
  FileFailure f;
  f.kind = kind;
  f.error = error;
  return tl::unexpected(f);
}

// A string that grows as the file does; never less than a page, so a /proc
// file (fstat says 0) is read in one call.
class StringSink final : public ReadSink {
 public:
  explicit StringSink(std::string& out) : out_(out) {}
  std::span<char> room(std::size_t size) override {
    if (out_.size() < size) out_.resize(std::max<std::size_t>(size, 4096));
    return {out_.data(), out_.size()};
  }

 private:
  std::string& out_;
};

std::string parent_of(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

}  // namespace

std::string FileFailure::reason() const {
  switch (kind) {
    case Kind::open:
    case Kind::stat:
    case Kind::read: return std::strerror(error);
    case Kind::not_regular: return "not a regular file";
    case Kind::not_private: return "readable or writable by group or others (mode " + format_mode(mode) + ")";
    case Kind::foreign_owner:
      return "owned by uid " + std::to_string(uid) + ", not by the agent's uid " + std::to_string(::geteuid()) +
             " or root";
    case Kind::too_small:
      if (size == 0) return "empty";
      return std::to_string(size) + " bytes, fewer than " + std::to_string(limit);
    case Kind::too_large: return "larger than " + format_size(limit);
    case Kind::changed: return "changed while it was read";
    case Kind::no_room: return "no memory to read it into";
  }
  return "unreadable";
}

std::string FileFailure::message(std::string_view what) const {
  std::string out(what);
  switch (kind) {
    case Kind::open:
    case Kind::stat:
    case Kind::read:
    case Kind::no_room: return out + ": " + reason();
    case Kind::not_private: return out + " is " + reason() + "; chmod 0600 it";
    case Kind::foreign_owner:
      return out + " belongs to uid " + std::to_string(uid) + ", not to the agent's uid " +
             std::to_string(::geteuid()) + " or root";
    case Kind::too_small:
      if (size == 0) return out + " is empty";
      return out + " holds " + reason();
    case Kind::changed: return out + " " + reason();
    case Kind::not_regular:
    case Kind::too_large: return out + " is " + reason();
  }
  return out + ": " + reason();
}

[[nodiscard]] tl::expected<std::size_t, FileFailure> read_file(const std::string& path, const FileRules& rules, ReadSink& sink) {
  UniqueFd fd(::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK));
  if (!fd) return failed(Kind::open, errno);
  struct stat st {};
  if (::fstat(fd.get(), &st) != 0) return failed(Kind::stat, errno);
  if (!S_ISREG(st.st_mode)) return failed(Kind::not_regular);
  if (rules.owner_only && (st.st_mode & 0077) != 0) {
    auto f = failed(Kind::not_private);
    f.value().mode = static_cast<unsigned>(st.st_mode & 07777);
    return f;
  }
  if (rules.owned_by_agent && st.st_uid != ::geteuid() && st.st_uid != 0) {
    auto f = failed(Kind::foreign_owner);
    f.value().uid = static_cast<unsigned>(st.st_uid);
    return f;
  }
  // /proc files say 0 and hold more: fstat's size is where reading starts,
  // the bytes read are what counts.
  const auto claimed = static_cast<std::uint64_t>(std::max<off_t>(st.st_size, 0));
  auto too_small = [&](std::uint64_t size) {
    auto f = failed(Kind::too_small);
    f.value().size = size;
    f.value().limit = rules.min_bytes;
    return f;
  };
  auto too_large = [&] {
    auto f = failed(Kind::too_large);
    f.value().limit = rules.max_bytes;
    return f;
  };
  if (claimed < rules.min_bytes) return too_small(claimed);
  if (claimed > rules.max_bytes) return too_large();
  // One byte past the cap: a file that reaches it is too large.
  const std::size_t cap = rules.max_bytes == kNoSizeLimit ? kNoSizeLimit : rules.max_bytes + 1;
  std::size_t want = static_cast<std::size_t>(std::min<std::uint64_t>(claimed + 1, cap));
  // A sink may give more than asked; never read past the cap.
  std::span<char> region = sink.room(want);
  if (region.size() < want) return failed(Kind::no_room);
  region = region.first(std::min(region.size(), cap));
  std::size_t got = 0;
  while (true) {
    if (got == region.size()) {
      if (got >= cap) return too_large();
      std::size_t step = std::max<std::size_t>(got, 4096);
      std::size_t next = cap - got > step ? got + step : cap;
      region = sink.room(next);
      if (region.size() <= got) return failed(Kind::changed);
      region = region.first(std::min(region.size(), cap));
    }
    ssize_t n = ::read(fd.get(), region.data() + got, region.size() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return failed(Kind::read, errno);
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  if (got < rules.min_bytes) return too_small(got);
  return got;
}

[[nodiscard]] tl::expected<std::string, FileFailure> read_file(const std::string& path, const FileRules& rules) {
  std::string out;
  StringSink sink(out);
  auto got = read_file(path, rules, sink);
  if (!got) return tl::unexpected(got.error());
  out.resize(*got);
  return out;
}

[[nodiscard]] Result<void> write_file_atomically(const std::string& path, std::string_view bytes, bool* replaced) {
  if (replaced != nullptr) *replaced = false;
  const std::string tmp = path + ".tmp";
  UniqueFd fd(::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) return fail("cannot write " + tmp + ": " + std::strerror(errno));
  if (!write_all(fd.get(), bytes)) return fail("cannot write " + tmp + ": " + std::strerror(errno));
  if (::fsync(fd.get()) != 0) return fail("cannot fsync " + tmp + ": " + std::strerror(errno));
  fd.reset();
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    return fail("cannot rename " + tmp + " to " + path + ": " + std::strerror(errno));
  }
  if (replaced != nullptr) *replaced = true;
  return fsync_directory(parent_of(path));
}

[[nodiscard]] Result<void> fsync_directory(const std::string& dir) {
  UniqueFd fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!fd) return fail("cannot open " + dir + ": " + std::strerror(errno));
  if (::fsync(fd.get()) != 0) return fail("cannot fsync " + dir + ": " + std::strerror(errno));
  return {};
}

}  // namespace chitty
