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

// The MAC covers this prefix and the file's text without its "mac" member,
// so that an audit line (MAC'd under the same key) can never pass for a
// revocations file, nor the other way round.
constexpr std::string_view kDomain = "chitty-agent revocations v2\n";
constexpr std::string_view kMacMember = ",\"mac\":\"";
constexpr int kVersion = 2;

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

secure::MacKey::Mac seal(const secure::MacKey& key, std::string_view text) {
  std::string data(kDomain);
  data += text;
  return key.mac(data);
}

}  // namespace

RevocationStore::RevocationStore(std::string state_dir, const secure::MacKey& key)
    : dir_(std::move(state_dir)), path_(dir_ + "/revocations.json"), key_(key) {}

Result<void> RevocationStore::save(const policy::Revocations& r) const {
  std::string text;
  {
    json::Writer w(text);
    w.begin_object();
    w.key("version").integer(kVersion);
    w.key("revocations").begin_array();
    for (const auto& rv : r.list()) {
      w.begin_object();
      w.key("kind").string(policy::revocation_kind_name(rv.kind));
      w.key("target").string(rv.target);
      if (rv.ref) {
        // The reference as parts: a part may hold '/' (never parsed again from text).
        w.key("ref").begin_array();
        w.string(rv.ref->vault).string(rv.ref->item);
        if (rv.ref->section) {
          w.string(*rv.ref->section);
        } else {
          w.null();
        }
        w.string(rv.ref->field);
        w.end_array();
      }
      w.key("forms").begin_array();
      for (const auto& f : rv.forms) w.string(f);
      w.end_array();
      w.key("types").begin_array();
      for (const auto& t : rv.types) w.string(t);
      w.end_array();
      w.key("key").string(rv.key);
      w.key("resolved").boolean(rv.resolved);
      w.key("reason").string(rv.reason);
      w.key("at").string(format_rfc3339_ms(rv.at));
      w.key("by").string(rv.by);
      w.end_object();
    }
    w.end_array();
    w.end_object();
  }
  std::string hex = secure::to_hex(seal(key_, text));
  text.pop_back();  // the closing brace: the MAC goes last
  text += kMacMember;
  text += hex;
  text += "\"}\n";
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

Result<RevocationStore::Loaded> RevocationStore::load(bool expected, bool accept) const {
  Loaded out;
  out.accepted = accept;
  const std::string way_out =
      "; if the revocations it holds are the ones you mean, run chitty-agent once with --accept-revocations "
      "(docs/operations.md)";
  int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) {
    if (errno != ENOENT) return fail("cannot read " + path_ + ": " + std::strerror(errno));
    if (expected && !accept) {
      return fail(path_ +
                  " is missing, but this state directory has been used before (its audit spool holds events): deleting "
                  "it would lift every emergency revocation, so the agent does not start" +
                  way_out + " (an empty set is then sealed)");
    }
    if (accept) {
      if (auto ok = save(out.revocations); !ok) return tl::unexpected(ok.error());
    }
    return out;
  }
  out.existed = true;
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
    return fail(path_ + " is damaged (" + why + "); the revocations it holds cannot be honoured" + way_out +
                ", or restore it from a backup");
  };
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  // {...,"mac":"<64 hex>"}: the MAC is over the text without that member.
  std::size_t at = text.rfind(kMacMember);
  std::string body = text;
  secure::MacKey::Mac mac{};
  bool has_mac = at != std::string::npos && text.size() == at + kMacMember.size() + 64 + 2 &&
                 text.compare(text.size() - 2, 2, "\"}") == 0 &&
                 secure::from_hex(std::string_view(text).substr(at + kMacMember.size(), 64), mac);
  if (has_mac) body = text.substr(0, at) + "}";
  if (!accept) {
    if (!has_mac) return damaged("it carries no MAC: it was not written by the agent, or was edited");
    if (seal(key_, body) != mac) {
      return damaged("its MAC does not match: it was edited, or written without the audit chain key");
    }
  }
  auto parsed = parse(body);
  if (!parsed) return damaged(parsed.error().message);
  out.revocations = std::move(*parsed);
  if (accept) {
    if (auto ok = save(out.revocations); !ok) return tl::unexpected(ok.error());
  }
  return out;
}

Result<policy::Revocations> RevocationStore::parse(const std::string& text) const {
  policy::Revocations out;
  auto doc = json::parse(text);
  if (!doc) return fail(doc.error().message);
  const json::Value* version = doc->find("version");
  if (version == nullptr || version->type != json::Value::Type::number || version->number != kVersion) {
    return fail("not a version " + std::to_string(kVersion) + " revocations file");
  }
  const json::Value* list = doc->find("revocations");
  if (list == nullptr || list->type != json::Value::Type::array) return fail("no \"revocations\" array");
  for (const auto& item : list->items) {
    if (item.type != json::Value::Type::object) return fail("an entry is not an object");
    policy::Revocation r;
    const json::Value* kind = item.find("kind");
    if (kind == nullptr || kind->type != json::Value::Type::string) return fail("an entry has no kind");
    auto k = policy::revocation_kind(kind->string);
    if (!k) return fail("unknown kind \"" + kind->string + "\"");
    r.kind = *k;
    auto strings = [&](const char* name, std::vector<std::string>& into) -> Result<void> {
      const json::Value* v = item.find(name);
      if (v == nullptr) return {};
      if (v->type != json::Value::Type::array) return fail(std::string("\"") + name + "\" is not an array");
      for (const auto& s : v->items) {
        if (s.type != json::Value::Type::string) return fail(std::string("an entry of \"") + name + "\" is not a string");
        into.push_back(s.string);
      }
      return {};
    };
    if (auto ok = strings("forms", r.forms); !ok) return tl::unexpected(ok.error());
    if (auto ok = strings("types", r.types); !ok) return tl::unexpected(ok.error());
    for (auto [name, slot] : {std::pair{"target", &r.target}, {"key", &r.key}, {"reason", &r.reason}, {"by", &r.by}}) {
      const json::Value* v = item.find(name);
      if (v != nullptr && v->type == json::Value::Type::string) *slot = v->string;
    }
    if (const json::Value* v = item.find("resolved"); v != nullptr && v->type == json::Value::Type::boolean) {
      r.resolved = v->boolean;
    }
    if (const json::Value* ref = item.find("ref"); ref != nullptr) {
      if (ref->type != json::Value::Type::array || ref->items.size() != 4) return fail("\"ref\" is not four parts");
      const auto& p = ref->items;
      if (p[0].type != json::Value::Type::string || p[1].type != json::Value::Type::string ||
          p[3].type != json::Value::Type::string ||
          (p[2].type != json::Value::Type::string && p[2].type != json::Value::Type::null)) {
        return fail("\"ref\" has a part that is not a string");
      }
      catalog::Reference parts;
      parts.vault = p[0].string;
      parts.item = p[1].string;
      if (p[2].type == json::Value::Type::string) parts.section = p[2].string;
      parts.field = p[3].string;
      r.ref = std::move(parts);
    }
    switch (r.kind) {
      case policy::Revocation::Kind::ref:
        if (!r.ref || r.forms.empty()) return fail("a ref revocation without its reference and spellings");
        break;
      case policy::Revocation::Kind::type:
      case policy::Revocation::Kind::service:
        if (r.target.empty()) return fail("an entry has no target");
        break;
      case policy::Revocation::Kind::all: break;
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
