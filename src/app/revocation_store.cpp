#include "chitty/app/revocation_store.hpp"

#include <algorithm>
#include <cerrno>

#include "chitty/base/file.hpp"
#include "chitty/base/time_format.hpp"
#include "chitty/json/reader.hpp"
#include "chitty/json/writer.hpp"
#include "chitty/log/log.hpp"

namespace chitty::app {
namespace {

// The MAC covers this prefix and the file's text without its "mac" member,
// so that an audit line (MAC'd under the same key) can never pass for a
// revocations file, nor the other way round.
constexpr std::string_view kDomain = "chitty-agent revocations v2\n";
constexpr std::string_view kMacMember = ",\"mac\":\"";
constexpr int kVersion = 2;

constexpr std::size_t kMaxFile = std::size_t{16} * 1024 * 1024;

}  // namespace

RevocationStore::RevocationStore(std::string state_dir, const secure::MacKey& key)
    : dir_(std::move(state_dir)), path_(dir_ + "/revocations.json"), key_(key) {}

Result<std::uint64_t> RevocationStore::save(const policy::Revocations& r) {
  const std::uint64_t generation = generation_ + 1;
  std::string text;
  {
    json::Writer w(text);
    w.begin_object();
    w.key("version").integer(kVersion);
    w.key("generation").uinteger(generation);
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
      w.key("checked_types").begin_array();
      for (const auto& t : rv.checked_types) w.string(t);
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
  std::string hex = secure::to_hex(key_.mac(kDomain, text));
  text.pop_back();  // the closing brace: the MAC goes last
  text += kMacMember;
  text += hex;
  text += "\"}\n";
  bool replaced = false;
  auto written = write_file_atomically(path_, text, &replaced);
  if (replaced) generation_ = generation;  // on disk now, whatever the directory's fsync says
  if (!written) return tl::unexpected(written.error());
  return generation;
}

Result<RevocationStore::Loaded> RevocationStore::load(std::optional<std::uint64_t> recorded, bool accept) {
  Loaded out;
  out.accepted = accept;
  // A re-seal by the operator starts past what the audit trail recorded.
  auto reseal = [&]() -> Result<void> {
    generation_ = std::max(generation_, recorded.value_or(0));
    auto saved = save(out.revocations);
    if (!saved) return tl::unexpected(saved.error());
    out.generation = *saved;
    return {};
  };
  const std::string way_out =
      "; if the revocations it holds are the ones you mean, run chitty-agent once with --accept-revocations "
      "(docs/operations.md)";
  auto file = read_file(path_, FileRules{.max_bytes = kMaxFile});
  if (!file) {
    const FileFailure& f = file.error();
    if (f.kind != FileFailure::Kind::open || f.error != ENOENT) return fail("cannot read " + path_ + ": " + f.reason());
    if (recorded && !accept) {
      return fail(path_ + " is missing, but the audit trail records revocations generation " +
                  std::to_string(*recorded) +
                  " of it: deleting it would lift every emergency revocation, so the agent does not start" + way_out +
                  " (an empty set is then sealed)");
    }
    if (accept) {
      if (auto ok = reseal(); !ok) return tl::unexpected(ok.error());
    }
    return out;
  }
  out.existed = true;
  std::string& text = *file;
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
    if (!has_mac) {
      return damaged("it carries no MAC: it was not written by this agent (an earlier version, or by hand), or was "
                     "edited");
    }
    if (key_.mac(kDomain, body) != mac) {
      return damaged("its MAC does not match: it was edited, or written without the audit chain key");
    }
  }
  std::uint64_t generation = 0;
  auto parsed = parse(body, generation);
  if (!parsed) return damaged(parsed.error().message);
  out.revocations = std::move(*parsed);
  out.generation = generation;
  generation_ = generation;
  if (!accept && recorded && generation < *recorded) {
    return fail(path_ + " is an older copy (generation " + std::to_string(generation) +
                ") than the audit trail records (generation " + std::to_string(*recorded) +
                "): putting an old copy back would lift the revocations made since, so the agent does not start" +
                way_out);
  }
  if (accept) {
    if (auto ok = reseal(); !ok) return tl::unexpected(ok.error());
  }
  return out;
}

Result<policy::Revocations> RevocationStore::parse(const std::string& text, std::uint64_t& generation) const {
  policy::Revocations out;
  auto doc = json::parse(text);
  if (!doc) return fail(doc.error().message);
  const json::Value* version = doc->find("version");
  if (version == nullptr || version->type != json::Value::Type::number ||
      (version->number != kVersion && version->number != 1)) {
    return fail("not a version " + std::to_string(kVersion) + " revocations file");
  }
  const bool v1 = version->number == 1;  // an earlier agent's (no MAC: only with --accept-revocations)
  if (const json::Value* g = doc->find("generation"); g != nullptr && g->integer && *g->integer >= 0) {
    generation = static_cast<std::uint64_t>(*g->integer);
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
    if (auto ok = strings("checked_types", r.checked_types); !ok) return tl::unexpected(ok.error());
    for (auto [name, slot] : {std::pair{"target", &r.target}, {"key", &r.key}, {"reason", &r.reason}, {"by", &r.by}}) {
      const json::Value* v = item.find(name);
      if (v != nullptr && v->type == json::Value::Type::string) *slot = v->string;
    }
    if (v1) {
      // Version 1: "keys" (canonical forms or resolved IDs) and "shown" (the
      // target as given). Taken over once; the agent resolves it again.
      std::vector<std::string> keys;
      if (auto ok = strings("keys", keys); !ok) return tl::unexpected(ok.error());
      const json::Value* shown = item.find("shown");
      if (shown != nullptr && shown->type == json::Value::Type::string) r.target = shown->string;
      if (r.kind == policy::Revocation::Kind::ref) {
        for (const auto& key : keys) r.add_form(catalog::match_form(key));
        // The one time a reference is read back from text: a version 1 file
        // kept no parts (and a client's reference never holds a '/').
        if (auto parsed = catalog::parse_reference(r.target)) r.ref = std::move(*parsed);
      } else if (r.kind != policy::Revocation::Kind::all && r.target.empty() && !keys.empty()) {
        r.target = keys.front();
      }
      if (r.kind == policy::Revocation::Kind::all) r.target = "all";
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

[[nodiscard]] Result<std::unique_ptr<RevocationStore>> open_revocations(const std::string& state_dir, audit::Trail& trail,
                                                          broker::Broker& broker, bool accept) {
  auto store = std::make_unique<RevocationStore>(state_dir, trail.chain_key());
  // The audit trail records the file's generation at every start and
  // revocation: a missing file, or an older copy, is refused then.
  std::optional<std::uint64_t> recorded;
  if (trail.spool() != nullptr) recorded = audit::SpoolRecorder::recorded_revocations_generation(*trail.spool());
  auto loaded = store->load(recorded, accept);
  if (!loaded) return tl::unexpected(loaded.error());
  if (!loaded->existed && !accept) {
    // Written now (and recorded by the start event), so that from here on
    // its absence means it was removed.
    if (auto ok = store->save(loaded->revocations); !ok) return tl::unexpected(ok.error());
  }
  if (loaded->accepted) {
    trail.alert("the operator accepted " + store->path() + " as it is (--accept-revocations): " +
                std::to_string(loaded->revocations.list().size()) + " emergency revocation(s) in force, " +
                (loaded->existed ? "its MAC was not checked and it is sealed again" : "it was missing: none"));
  }
  if (!loaded->revocations.empty()) {
    log::warn("app", "emergency revocations in force from before the restart",
              {{"count", loaded->revocations.list().size()}, {"file", store->path()}});
  }
  broker.set_revocations(std::move(loaded->revocations));
  broker.on_revocations_changed([&trail, &broker, s = store.get()] {
    auto ok = s->save(broker.revocations());
    if (!ok) {
      log::error("app", "revocations learnt more spellings but could not be saved; they are in force until a restart",
                 {{"reason", ok.error().message}});
      return;
    }
    audit::Event e;
    e.kind = audit::Kind::revoke;
    e.action = "revoke-resolved";
    e.decision = audit::Decision::none;
    e.reason = "emergency revocations learnt more spellings from the upstream";
    e.revocations_generation = *ok;
    trail.state(std::move(e));
  });
  return store;
}

}  // namespace chitty::app
