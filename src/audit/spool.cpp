#include "chitty/audit/spool.hpp"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "chitty/base/fd.hpp"
#include "chitty/base/file.hpp"

namespace chitty::audit {
namespace {

std::string errno_text() { return std::strerror(errno); }

std::string segment_name(std::uint64_t first_seq) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "segment-%020llu.ndjson", static_cast<unsigned long long>(first_seq));
  return buf;
}

bool parse_segment_name(const char* name, std::uint64_t& first) {
  std::string_view n(name);
  if (!n.starts_with("segment-") || !n.ends_with(".ndjson") || n.size() != 8 + 20 + 7) return false;
  first = 0;
  for (char c : n.substr(8, 20)) {
    if (c < '0' || c > '9') return false;
    first = first * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return true;
}

// Segments hold at most segment_bytes (1 GiB at most) and one more line: a
// file past this cap is no segment of ours.
constexpr std::size_t kMaxSegmentFile = std::size_t{2} << 30;
// "shipped" holds one decimal number and a newline.
constexpr std::size_t kMaxShippedFile = 4096;

[[nodiscard]] Result<std::string> read_whole(const std::string& path, std::size_t max_bytes = kMaxSegmentFile) {
  auto text = read_file(path, FileRules{.max_bytes = max_bytes});
  if (!text) return fail("cannot read " + path + ": " + text.error().reason());
  return std::move(*text);
}

// The complete lines of `t` (each ended by '\n', which is not included).
std::vector<std::string_view> complete_lines(std::string_view t) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  for (std::size_t nl = t.find('\n'); nl != std::string_view::npos; nl = t.find('\n', start)) {
    out.push_back(t.substr(start, nl - start));
    start = nl + 1;
  }
  return out;
}

}  // namespace

std::optional<std::uint64_t> line_seq(std::string_view line) noexcept {
  // As the recorder writes it: {"v":1,"id":"<id>","seq":<digits>, with no
  // leading zero and at most 19 digits (no overflow).
  static constexpr std::string_view kHead = "{\"v\":1,\"id\":\"";
  static constexpr std::string_view kSeq = "\",\"seq\":";
  if (!line.starts_with(kHead)) return std::nullopt;
  std::size_t p = line.find('"', kHead.size());
  if (p == std::string_view::npos || line.substr(p, kSeq.size()) != kSeq) return std::nullopt;
  p += kSeq.size();
  std::uint64_t v = 0;
  std::size_t digits = 0;
  while (p < line.size() && line[p] >= '0' && line[p] <= '9') {
    if (++digits > 19 || (digits == 2 && v == 0)) return std::nullopt;
    v = v * 10 + static_cast<std::uint64_t>(line[p] - '0');
    ++p;
  }
  if (digits == 0 || p >= line.size() || line[p] != ',') return std::nullopt;
  return v;
}

std::string_view line_mac(std::string_view line) noexcept {
  static constexpr std::string_view kKey = ",\"mac\":\"";
  std::size_t p = line.rfind(kKey);
  if (p == std::string_view::npos || p + kKey.size() + 64 + 2 != line.size() || !line.ends_with("\"}")) return {};
  std::string_view mac = line.substr(p + kKey.size(), 64);
  for (char c : mac) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return {};
  }
  return mac;
}

Spool::~Spool() {
  if (fd_ && dirty_) ::fdatasync(fd_.get());
}

Result<void> Spool::recover_segment(Segment& s, bool newest, Recovery& r) {
  auto text = read_whole(s.path);
  if (!text) return tl::unexpected(text.error());
  std::string& t = *text;
  s.bytes = t.size();
  if (!t.empty() && t.back() != '\n') {
    // A torn last line: the process (or the machine) died while writing it.
    // Its answer was never sent. Keep the bytes for forensics; cut it off.
    std::size_t keep = t.rfind('\n');
    keep = keep == std::string::npos ? 0 : keep + 1;
    std::string torn = t.substr(keep);
    char stamp[32];
    std::snprintf(stamp, sizeof stamp, "%lld", static_cast<long long>(std::time(nullptr)));
    std::string side = s.path + ".torn-" + stamp;
    UniqueFd fd(::open(side.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600));
    if (!fd || !write_all(fd.get(), torn) || ::fsync(fd.get()) != 0) {
      return fail("cannot keep the torn tail of " + s.path + ": " + errno_text());
    }
    if (::truncate(s.path.c_str(), static_cast<off_t>(keep)) != 0) {
      return fail("cannot cut the torn tail of " + s.path + ": " + errno_text());
    }
    r.torn_bytes += torn.size();
    r.torn_file = side;
    t.resize(keep);
    s.bytes = keep;
  }
  // The last complete line that is an event: its seq (and, for the newest
  // segment, its MAC, which the next event chains to).
  auto lines = complete_lines(t);
  for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
    auto seq = line_seq(*it);
    std::string_view mac = line_mac(*it);
    if (seq && !mac.empty()) {
      s.last_seq = *seq;
      if (newest) {
        r.last_seq = *seq;
        r.last_mac = std::string(mac);
      }
      break;
    }
    ++r.damaged_lines;
  }
  return {};
}

Result<std::unique_ptr<Spool>> Spool::open(const SpoolOptions& options, Recovery& r) {
  std::unique_ptr<Spool> s(new Spool());
  s->options_ = options;
  if (::mkdir(options.dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return fail("cannot create the audit spool " + options.dir + ": " + errno_text());
  }
  // The acknowledged position.
  if (auto shipped = read_whole(options.dir + "/shipped", kMaxShippedFile)) {
    std::uint64_t v = 0;
    for (char c : *shipped) {
      if (c >= '0' && c <= '9') v = v * 10 + static_cast<std::uint64_t>(c - '0');
    }
    s->acknowledged_ = v;
  }
  DIR* d = ::opendir(options.dir.c_str());
  if (d == nullptr) return fail("cannot list " + options.dir + ": " + errno_text());
  while (dirent* e = ::readdir(d)) {
    std::uint64_t first = 0;
    if (parse_segment_name(e->d_name, first)) {
      s->segments_.push_back(Segment{options.dir + "/" + e->d_name, first, 0, 0});
    }
  }
  ::closedir(d);
  std::sort(s->segments_.begin(), s->segments_.end(),
            [](const Segment& a, const Segment& b) { return a.first_seq < b.first_seq; });
  for (std::size_t i = 0; i < s->segments_.size(); ++i) {
    if (auto ok = s->recover_segment(s->segments_[i], i + 1 == s->segments_.size(), r); !ok) return tl::unexpected(ok.error());
    s->bytes_ += s->segments_[i].bytes;
  }
  // An empty newest segment (created, then the process died): its events
  // are the previous segment's.
  if (r.last_seq == 0) {
    for (auto it = s->segments_.rbegin(); it != s->segments_.rend(); ++it) {
      if (it->last_seq != 0) {
        Recovery older;
        Segment copy = *it;
        if (auto ok = s->recover_segment(copy, true, older); ok) {
          r.last_seq = older.last_seq;
          r.last_mac = older.last_mac;
        }
        break;
      }
    }
  }
  s->last_seq_ = r.last_seq;
  if (s->acknowledged_ > s->last_seq_) s->acknowledged_ = s->last_seq_;
  if (!s->segments_.empty()) {
    s->fd_.reset(::open(s->segments_.back().path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC | O_NOFOLLOW));
    if (!s->fd_) return fail("cannot open " + s->segments_.back().path + ": " + errno_text());
  }
  r.acknowledged = s->acknowledged_;
  r.segments = s->segments_.size();
  r.bytes = s->bytes_;
  return s;
}

Spool::Room Spool::room(std::size_t bytes) const noexcept {
  std::uint64_t after = bytes_ + bytes + 1;
  if (after > options_.max_bytes) return Room::full;
  if (after > options_.max_bytes - std::min(options_.reserve_bytes, options_.max_bytes)) return Room::reserve;
  return Room::normal;
}

Result<void> Spool::start_segment(std::uint64_t first_seq) {
  std::string path = options_.dir + "/" + segment_name(first_seq);
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (!fd) return fail("cannot create " + path + ": " + errno_text());
  if (auto ok = fsync_directory(options_.dir); !ok) {
    fd.reset();
    ::unlink(path.c_str());
    return ok;
  }
  if (fd_ && dirty_) ::fdatasync(fd_.get());
  fd_ = std::move(fd);
  dirty_ = false;
  segments_.push_back(Segment{path, first_seq, 0, 0});
  return {};
}

Result<void> Spool::append(std::uint64_t seq, std::string_view line) {
  if (!fd_ || segments_.back().bytes >= options_.segment_bytes) {
    if (auto ok = start_segment(seq); !ok) return ok;
  }
  Segment& active = segments_.back();
  iovec iov[2];
  iov[0].iov_base = const_cast<char*>(line.data());
  iov[0].iov_len = line.size();
  iov[1].iov_base = const_cast<char*>("\n");
  iov[1].iov_len = 1;
  std::size_t want = line.size() + 1, done = 0;
  while (done < want) {
    ssize_t n;
    if (done < line.size()) {
      iovec part[2] = {{const_cast<char*>(line.data()) + done, line.size() - done}, iov[1]};
      n = ::writev(fd_.get(), part, 2);
    } else {
      n = ::write(fd_.get(), "\n", 1);
    }
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      std::string e = n < 0 ? errno_text() : "no progress";
      // Never leave half an event behind: cut back to where this one began.
      if (done > 0 && ::ftruncate(fd_.get(), static_cast<off_t>(active.bytes)) != 0) {
        return fail("cannot write the audit spool (" + e + ") nor cut the partial event back: " + errno_text());
      }
      return fail("cannot write the audit spool " + active.path + ": " + e);
    }
    done += static_cast<std::size_t>(n);
  }
  active.bytes += want;
  active.last_seq = seq;
  bytes_ += want;
  last_seq_ = seq;
  dirty_ = true;
  return {};
}

Result<void> Spool::sync() {
  if (!dirty_ || !fd_) return {};
  if (::fdatasync(fd_.get()) != 0) return fail("cannot fsync the audit spool: " + errno_text());
  dirty_ = false;
  return {};
}

Result<int> Spool::take_sync_fd() {
  if (!dirty_ || !fd_) return -1;
  int fd = ::fcntl(fd_.get(), F_DUPFD_CLOEXEC, 0);
  if (fd < 0) return fail("cannot duplicate the audit spool's descriptor: " + errno_text());
  dirty_ = false;
  return fd;
}

Result<Spool::Batch> Spool::read_after(std::uint64_t after, std::size_t max_lines, std::size_t max_bytes) {
  Batch b;
  if (after >= last_seq_) return b;
  // Start from the hint when it is where we are asked to start.
  std::size_t si = 0;
  std::uint64_t offset = 0;
  if (cursor_seq_ == after && cursor_segment_ < segments_.size()) {
    si = cursor_segment_;
    offset = cursor_offset_;
  } else {
    while (si + 1 < segments_.size() && segments_[si + 1].first_seq <= after + 1) ++si;
  }
  std::size_t bytes = 0;
  for (; si < segments_.size(); ++si, offset = 0) {
    const Segment& seg = segments_[si];
    UniqueFd fd(::open(seg.path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW));
    if (!fd) return fail("cannot read " + seg.path + ": " + errno_text());
    std::string buf;
    char chunk[65536];
    std::uint64_t pos = offset;
    bool stop = false;
    while (!stop) {
      ssize_t n = ::pread(fd.get(), chunk, sizeof chunk, static_cast<off_t>(pos));
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      buf.append(chunk, static_cast<std::size_t>(n));
      pos += static_cast<std::uint64_t>(n);
      std::size_t start = 0;
      for (std::size_t nl = buf.find('\n'); nl != std::string::npos; nl = buf.find('\n', start)) {
        std::string_view line(buf.data() + start, nl - start);
        std::uint64_t line_end = pos - buf.size() + nl + 1;
        start = nl + 1;
        // Only what recovery would count as an event is shipped: a damaged
        // line (reported at recovery) stays in the spool for the verifier.
        auto seq = line_seq(line);
        if (!seq || *seq <= after || line_mac(line).empty()) continue;
        if (!b.lines.empty() && (b.lines.size() >= max_lines || bytes + line.size() + 1 > max_bytes)) {
          stop = true;
          break;
        }
        b.lines.emplace_back(line);
        bytes += line.size() + 1;
        b.last_seq = *seq;
        cursor_segment_ = si;
        cursor_offset_ = line_end;
        cursor_seq_ = *seq;
      }
      buf.erase(0, start);
    }
    if (stop || b.lines.size() >= max_lines) break;
  }
  return b;
}

Result<void> Spool::write_shipped(std::uint64_t seq) {
  return write_file_atomically(options_.dir + "/shipped", std::to_string(seq) + "\n");
}

Result<void> Spool::acknowledge(std::uint64_t seq) {
  if (seq <= acknowledged_) return {};
  seq = std::min(seq, last_seq_);
  if (auto ok = write_shipped(seq); !ok) return ok;
  acknowledged_ = seq;
  // Delete whole segments the sink has, never the active (last) one.
  std::size_t removed = 0;
  while (segments_.size() > 1 && segments_.front().last_seq != 0 && segments_.front().last_seq <= seq) {
    if (::unlink(segments_.front().path.c_str()) != 0 && errno != ENOENT) break;
    bytes_ -= std::min(bytes_, segments_.front().bytes);
    segments_.erase(segments_.begin());
    ++removed;
  }
  if (removed > 0) {
    cursor_segment_ = cursor_segment_ >= removed ? cursor_segment_ - removed : 0;
    if (cursor_seq_ <= seq && cursor_segment_ == 0) cursor_seq_ = 0;  // the hint may point into a deleted file
  }
  return {};
}

void Spool::for_each_newest_first(const std::function<bool(std::string_view line)>& visit) const {
  for_each_newest_first(segment_paths(), visit);
}

std::vector<std::string> Spool::segment_paths() const {
  std::vector<std::string> out;
  out.reserve(segments_.size());
  for (const auto& s : segments_) out.push_back(s.path);
  return out;
}

void Spool::for_each_newest_first(const std::vector<std::string>& paths,
                                  const std::function<bool(std::string_view line)>& visit) {
  for (auto it = paths.rbegin(); it != paths.rend(); ++it) {
    auto text = read_whole(*it);
    if (!text) continue;
    auto lines = complete_lines(*text);
    for (auto l = lines.rbegin(); l != lines.rend(); ++l) {
      if (!l->empty() && !visit(*l)) return;
    }
  }
}

}  // namespace chitty::audit
