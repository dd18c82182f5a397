#include "chitty/app/revocation_store.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "chitty/base/time_format.hpp"
#include "chitty/json/reader.hpp"
#include "chitty/json/writer.hpp"

namespace chitty::app {
namespace {

Result<void> write_all(int fd, const std::string& s) {
  std::size_t done = 0;
  while (done < s.size()) {
    ssize_t n = ::write(fd, s.data() + done, s.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(std::strerror(errno));
    done += static_cast<std::size_t>(n);
  }
  return {};
}

}  // namespace

RevocationStore::RevocationStore(std::string state_dir)
    : dir_(std::move(state_dir)), path_(dir_ + "/revocations.json") {}

Result<void> RevocationStore::save(const policy::Revocations& r) const {
  std::string text;
  {
    json::Writer w(text);
    w.begin_object();
    w.key("version").integer(1);
    w.key("revocations").begin_array();
    for (const auto& rv : r.list()) {
      w.begin_object();
      w.key("kind").string(policy::revocation_kind_name(rv.kind));
      w.key("keys").begin_array();
      for (const auto& k : rv.keys) w.string(k);
      w.end_array();
      w.key("shown").string(rv.shown);
      w.key("reason").string(rv.reason);
      w.key("at").string(format_rfc3339_ms(rv.at));
      w.key("by").string(rv.by);
      w.end_object();
    }
    w.end_array();
    w.end_object();
  }
  text += '\n';
  std::string tmp = path_ + ".tmp";
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return fail("cannot write " + tmp + ": " + std::strerror(errno));
  auto written = write_all(fd, text);
  bool synced = written && ::fsync(fd) == 0;
  int sync_errno = errno;
  ::close(fd);
  if (!written) return fail("cannot write " + tmp + ": " + written.error().message);
  if (!synced) return fail("cannot fsync " + tmp + ": " + std::strerror(sync_errno));
  if (::rename(tmp.c_str(), path_.c_str()) != 0) return fail("cannot rename to " + path_ + ": " + std::strerror(errno));
  int dfd = ::open(dir_.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    int rc = ::fsync(dfd);
    int e = errno;
    ::close(dfd);
    if (rc != 0) return fail("cannot fsync " + dir_ + ": " + std::strerror(e));
  }
  return {};
}

Result<policy::Revocations> RevocationStore::load() const {
  policy::Revocations out;
  int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno == ENOENT) return out;
    return fail("cannot read " + path_ + ": " + std::strerror(errno));
  }
  std::string text;
  char buf[8192];
  while (true) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      return fail("cannot read " + path_ + ": " + std::strerror(e));
    }
    if (n == 0) break;
    text.append(buf, static_cast<std::size_t>(n));
    if (text.size() > 16 * 1024 * 1024) {
      ::close(fd);
      return fail(path_ + " is larger than 16 MiB");
    }
  }
  ::close(fd);
  auto damaged = [&](const std::string& why) {
    return fail(path_ + " is damaged (" + why + "); the revocations it holds cannot be honoured — repair it, or remove it "
                        "to lift them all");
  };
  auto doc = json::parse(text);
  if (!doc) return damaged(doc.error().message);
  const json::Value* list = doc->find("revocations");
  if (list == nullptr || list->type != json::Value::Type::array) return damaged("no \"revocations\" array");
  for (const auto& item : list->items) {
    if (item.type != json::Value::Type::object) return damaged("an entry is not an object");
    policy::Revocation r;
    const json::Value* kind = item.find("kind");
    if (kind == nullptr || kind->type != json::Value::Type::string) return damaged("an entry has no kind");
    auto k = policy::revocation_kind(kind->string);
    if (!k) return damaged("unknown kind \"" + kind->string + "\"");
    r.kind = *k;
    const json::Value* keys = item.find("keys");
    if (keys == nullptr || keys->type != json::Value::Type::array) return damaged("an entry has no keys");
    for (const auto& key : keys->items) {
      if (key.type != json::Value::Type::string) return damaged("a key is not a string");
      r.keys.push_back(key.string);
    }
    if (r.kind != policy::Revocation::Kind::all && r.keys.empty()) return damaged("an entry has no keys");
    for (auto [name, slot] : {std::pair{"shown", &r.shown}, {"reason", &r.reason}, {"by", &r.by}}) {
      const json::Value* v = item.find(name);
      if (v != nullptr && v->type == json::Value::Type::string) *slot = v->string;
    }
    const json::Value* at = item.find("at");
    if (at != nullptr && at->type == json::Value::Type::string) {
      if (auto t = parse_rfc3339(at->string)) r.at = *t;
    }
    out.add(std::move(r));
  }
  return out;
}

}  // namespace chitty::app
