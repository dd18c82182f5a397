// Reading a file whole, with the checks a file the agent trusts needs, and
// replacing one atomically. The one place these rules are written: the chain
// key, the upstream token, systemd credentials, the revocations file, the
// audit spool and /proc all go through here.
//
// Thread: any (no shared state).
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <string_view>

#include <tl/expected.hpp>

#include "chitty/base/result.hpp"

namespace chitty {

// What a file must be to be read. It is always opened with O_NOFOLLOW (a
// symlink at the path is refused), O_NONBLOCK (a FIFO planted there cannot
// block the open) and O_CLOEXEC, and it must be a regular file.
struct FileRules {
  // More bytes than this are refused, whether fstat says so or the file
  // grows while it is read. Required: there is no default cap.
  std::size_t max_bytes = 0;
  // Fewer bytes than this are refused (1: the file must not be empty).
  std::size_t min_bytes = 0;
  // Private: no permission bit for group or others (mode & 0077 == 0).
  bool owner_only = false;
  // Owned by the agent's effective uid or by root.
  bool owned_by_agent = false;
};

inline constexpr std::size_t kNoSizeLimit = std::numeric_limits<std::size_t>::max();

// Why a file could not be read.
struct FileFailure {
  enum class Kind {
    open,           // open(2) failed: `error`
    stat,           // fstat(2) failed: `error`
    read,           // read(2) failed: `error`
    not_regular,    // a directory, a FIFO, a device, a socket
    not_private,    // group or others have a permission bit: `mode`
    foreign_owner,  // owned by `uid`, neither the agent nor root
    too_small,      // `size` bytes, fewer than `limit`
    too_large,      // more than `limit` bytes
    changed,        // the file grew past what fstat said while it was read
    no_room,        // the destination had no memory for it
  };
  Kind kind = Kind::open;
  int error = 0;            // errno, for open, stat and read
  unsigned mode = 0;        // the permission bits, for not_private
  unsigned uid = 0;         // the owner, for foreign_owner
  std::uint64_t size = 0;   // the size found, for too_small
  std::uint64_t limit = 0;  // the bound crossed, for too_small and too_large

  // True for a failed system call (`error` then holds its errno).
  bool system_error() const noexcept { return kind == Kind::open || kind == Kind::stat || kind == Kind::read; }
  // The reason alone, to follow "<the file>: ": "No such file or directory",
  // "not a regular file", "readable or writable by group or others (mode
  // 0644)", "larger than 16KiB", "changed while it was read", …
  std::string reason() const;
  // A sentence about `what` (e.g. "token file /etc/chitty/token"): "<what>:
  // <strerror>" for a failed system call, else "<what> is not a regular
  // file", "<what> is readable or writable by group or others (mode 0644);
  // chmod 0600 it", "<what> belongs to uid 1000, not to the agent's uid 0 or
  // root", "<what> is empty", "<what> is larger than 16KiB", …
  std::string message(std::string_view what) const;
};

// Where read_file() puts a file's bytes: one contiguous region, filled from
// its start. Secret files are read straight into locked memory through a
// sink of the secure module (secure/secret_file.hpp); nothing is copied
// through any other buffer on the way.
class ReadSink {
 public:
  // The region to read into: at least `size` bytes if the sink can give
  // that many, with the bytes already read kept at its start. Asked first
  // for fstat's size + 1 (the extra byte shows a file that grew), and for
  // more each time the region is full. A sink of fixed size answers with
  // the region it has (the reader then reports `changed`); an empty region
  // means no memory (`no_room`).
  virtual std::span<char> room(std::size_t size) = 0;

 protected:
  ~ReadSink() = default;
};

// Reads the whole file at `path` into `sink` under `rules`; the number of
// bytes read (the sink's region may be longer). Retries after EINTR.
[[nodiscard]] tl::expected<std::size_t, FileFailure> read_file(const std::string& path, const FileRules& rules, ReadSink& sink);
// The same into a string (for files that hold no secret).
[[nodiscard]] tl::expected<std::string, FileFailure> read_file(const std::string& path, const FileRules& rules);

// Replaces `path` with `bytes` so that a crash leaves either the old file or
// the new one: written to `<path>.tmp` (mode 0600, O_NOFOLLOW), fsync'ed,
// renamed over `path`, and the directory fsync'ed. Errors name the file and
// the step ("cannot write …", "cannot fsync …", "cannot rename …"). If
// `replaced` is given it is set once the rename happened: the new content
// is then in place even when the directory's fsync failed after it.
[[nodiscard]] Result<void> write_file_atomically(const std::string& path, std::string_view bytes, bool* replaced = nullptr);

// fsync of a directory, so that names created in or renamed into it last.
[[nodiscard]] Result<void> fsync_directory(const std::string& dir);

}  // namespace chitty
