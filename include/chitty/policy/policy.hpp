// Access control, minimal for now (the policy issue extends it with the same
// keys): a [[service]] is recognised by the caller's attested uid, and may read
// the credentials its `allow` rules name — "type:NAME" for a catalog type, or
// an op:// reference or glob (SPEC §3).
//
// A caller that no service matches is refused everything: there is no
// default grant.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "chitty/base/result.hpp"
#include "chitty/catalog/catalog.hpp"
#include "chitty/catalog/reference.hpp"
#include "chitty/identity/identity.hpp"

namespace chitty::policy {

struct ServiceSpec {
  std::string name;
  std::optional<std::int64_t> uid;
  std::vector<std::string> allow;
};

struct TypeRule {
  std::string type;
};
using Rule = std::variant<TypeRule, catalog::Glob>;

struct Service {
  std::string name;
  std::optional<uid_t> uid;
  std::vector<Rule> rules;
};

class Policy {
 public:
  Policy() = default;
  // Fails on a rule that does not parse (the config's validation has already
  // reported it with file:line; this is the last guard).
  static Result<Policy> build(const std::vector<ServiceSpec>& specs);

  // The service the caller is, from established facts only: an unknown uid
  // matches no service.
  const Service* service_for(const identity::Identity& caller) const;
  // Whether `service` may read `ref`; `entry` is the catalog entry the
  // request resolved to (by type or by reference), if any. "type:X" rules
  // match only through the catalog.
  static bool allows(const Service& service, const catalog::Entry* entry, const catalog::Reference& ref);

  const std::vector<Service>& services() const noexcept { return services_; }

 private:
  std::vector<Service> services_;
};

}  // namespace chitty::policy
