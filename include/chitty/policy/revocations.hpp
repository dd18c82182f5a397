// Emergency revocations (SPEC §4, §6): a reference, a credential type, a
// service's access, or everything, blocked from every source until cleared.
// Pure: the set and its matching; the broker fills in what a revoked secret
// is known by, and the app persists the set in the state directory before a
// revocation is acknowledged.
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
  // What was revoked: the reference as given (ref), the credential type
  // (type), the service's name (service); "" for all.
  std::string target;
  // ref and type: every spelling the revoked secret is known by, in
  // catalog::match_form — the one given, its resolved IDs, its all-names
  // form, the spellings clients have used — grown as more are learnt. A
  // request any of whose spellings is here is refused.
  std::vector<std::string> forms;
  // ref and type: the catalog types that name the secret (a request by type,
  // or an environment or credential fallback for it, is refused even while
  // no upstream can say which spellings are one secret).
  std::vector<std::string> types;
  // ref and type: the catalog types whose relation to the secret has been
  // established through the upstream (those that name it are in `types`
  // too). While a catalog type is not here, the environment and credential
  // fallbacks for it are withheld: it may be this secret by another
  // spelling.
  std::vector<std::string> checked_types;
  // ref: the reference as given, as parts (never parsed again from text).
  std::optional<catalog::Reference> ref;
  std::string key;        // the resolved key (id_key) once an upstream resolved it; "" before
  bool resolved = false;  // an upstream resolved it (or there is none): `forms` has the IDs
  std::string reason;
  WallTime at{};
  std::string by;  // who asked (uid, pid, exe), for the audit trail
  // Not persisted: when the broker may next try to resolve it, and whether
  // an attempt is running.
  MonoTime retry_at{};
  bool in_flight = false;

  bool checked(const std::string& type) const;
  bool add_checked(const std::string& type);

  // Whether `forms` holds `form` (a match_form text).
  bool known_as(std::string_view form) const;
  // Adds a spelling (match form) / a catalog type; false if known already.
  bool add_form(std::string form);
  bool add_type(const std::string& type);
};
std::string_view revocation_kind_name(Revocation::Kind k) noexcept;  // "ref", "type", "service", "all"
std::optional<Revocation::Kind> revocation_kind(std::string_view name) noexcept;

// Whether `r` blocks a request of `service` ("" when none matched) for a
// secret spelt `forms` (match forms) with catalog `entry` (may be null).
bool blocks(const Revocation& r, std::string_view service, const catalog::Entry* entry,
            const std::vector<std::string>& forms);
class Revocations {
 public:
  // Adds `r`, or merges it into one in force for the same secret, type or
  // service (its spellings and types are added; reason and time are kept).
  // Returns false when it was merged.
  bool add(Revocation r);
  // Lifts the revocations `r` describes: of its kind, and for the same
  // secret (a spelling in common), type or service; `all` lifts every
  // revocation. Returns how many were lifted.
  std::size_t clear(const Revocation& r);
  void clear_all() noexcept { list_.clear(); }

  // The revocation that blocks a request of `service` (its name; "" when
  // none matched) for a secret spelt `forms` (match forms) and resolved to
  // catalog `entry` (may be null); null when none does.
  const Revocation* blocking(std::string_view service, const catalog::Entry* entry,
                             const std::vector<std::string>& forms) const;
  // The revocation that blocks every secret for `service`: one of kind all,
  // or of kind service for it.
  const Revocation* blocking_service(std::string_view service) const;

  const std::vector<Revocation>& list() const noexcept { return list_; }
  std::vector<Revocation>& list() noexcept { return list_; }
  bool empty() const noexcept { return list_.empty(); }
  // Whether any ref or type revocation is in force.
  bool any_secret() const noexcept;
  // Whether any ref or type revocation is not resolved yet.
  bool any_unresolved() const noexcept;

 private:
  // Whether `a` and `b` revoke the same thing.
  static bool same(const Revocation& a, const Revocation& b);
  std::vector<Revocation> list_;
};

}  // namespace chitty::policy
