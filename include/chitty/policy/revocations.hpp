// Emergency revocations (SPEC §4, §6): a reference, a credential type, a
// service's access, or everything, blocked from every source until cleared.
// Pure: the set and its matching; the app persists it in the state
// directory before the revocation is acknowledged.
//
// Thread: loop thread only.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "chitty/base/clock.hpp"
#include "chitty/catalog/catalog.hpp"

namespace chitty::policy {

struct Revocation {
  enum class Kind { ref, type, service, all };
  Kind kind = Kind::all;
  // ref: the keys of the secret (its canonical reference and, once known,
  // its resolved IDs); type: the credential type; service: its name; all: "".
  std::vector<std::string> keys;
  std::string shown;   // as the operator wrote it: "op://Vault/Item/field", "openai_api_key"
  std::string reason;
  WallTime at{};
  std::string by;      // who asked (uid, pid, exe), for the audit trail

  bool operator==(const Revocation& o) const { return kind == o.kind && keys == o.keys; }
};
std::string_view revocation_kind_name(Revocation::Kind k) noexcept;  // "ref", "type", "service", "all"
std::optional<Revocation::Kind> revocation_kind(std::string_view name) noexcept;

class Revocations {
 public:
  // Adds `r`; false if an equal revocation is in force already (its reason
  // and time are kept).
  bool add(Revocation r);
  // Lifts the revocations equal to `r` (kind and keys); `all` of kind all
  // lifts every revocation. Returns how many were lifted.
  std::size_t clear(const Revocation& r);
  void clear_all() noexcept { list_.clear(); }

  // The revocation that blocks a request of `service` for a secret known by
  // `keys` (its canonical reference, resolved IDs) and catalog `entry`, if
  // any.
  const Revocation* blocking(std::string_view service, const catalog::Entry* entry,
                             const std::vector<std::string>& keys) const;
  bool blocks_key(const std::string& key) const;

  const std::vector<Revocation>& list() const noexcept { return list_; }
  bool empty() const noexcept { return list_.empty(); }

 private:
  std::vector<Revocation> list_;
};

}  // namespace chitty::policy
