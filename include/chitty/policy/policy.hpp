// Who may read what (docs/policy.md). Pure: values in, decisions out.
//
// A [[service]] is recognised by selectors on the caller's attested identity
// — uid, gid, systemd unit, container id, executable; every selector given
// must match an *established* fact (an unknown never matches) — and may read
// the credentials its `allow` rules name: "type:NAME" for a catalog type, or
// an op:// reference or glob (SPEC §3). The first service that matches wins;
// a service with `default = true` and no selectors catches every caller not
// matched before it. Without one, a caller that no service matches gets
// nothing.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "chitty/base/result.hpp"
#include "chitty/base/units.hpp"
#include "chitty/catalog/catalog.hpp"
#include "chitty/catalog/reference.hpp"
#include "chitty/config/config.hpp"
#include "chitty/identity/identity.hpp"

namespace chitty::policy {

struct ServiceSpec {
  std::string name;
  std::optional<std::int64_t> uid;
  std::optional<std::int64_t> gid;
  std::string unit;
  std::string container;
  std::string exe;
  bool is_default = false;
  std::vector<std::string> allow;
  std::vector<std::string> purposes;
  Rate rate_limit{100, std::chrono::hours(1)};
  bool admin = false;
  bool mcp_release = false;
};

struct TypeRule {
  std::string type;
};
using Rule = std::variant<TypeRule, catalog::Glob>;

struct Service {
  std::string name;
  std::optional<uid_t> uid;
  std::optional<gid_t> gid;
  std::string unit;       // "" = no selector
  std::string container;  // "" = no selector
  std::string exe;        // "" = no selector
  bool is_default = false;
  std::vector<Rule> rules;
  std::vector<std::string> purposes;  // empty: no purpose required
  Rate rate_limit;
  bool admin = false;
  bool mcp_release = false;  // values may be released to the MCP channel

  // "uid=1001 unit=x.service", or "default", for messages.
  std::string selectors() const;
};

class Policy {
 public:
  Policy() = default;
  // Fails on a rule or selector that does not parse (the config's validation
  // has reported it with file:line already; this is the last guard).
  [[nodiscard]] static Result<Policy> build(const std::vector<ServiceSpec>& specs, Rate unknown_callers = {30, std::chrono::hours(1)});

  // The first service whose every selector matches an established fact of
  // `caller`; null when none does.
  const Service* service_for(const identity::Identity& caller) const;
  const Service* service_named(std::string_view name) const;
  // Whether `service` may read `ref`; `entry` is the catalog entry the
  // request resolved to (by type or by reference), if any. "type:X" rules
  // match only through the catalog.
  static bool allows(const Service& service, const catalog::Entry* entry, const catalog::Reference& ref);
  // Whether `purpose` may be stated by `service` ("" passes only when the
  // service lists no purposes).
  static bool purpose_allowed(const Service& service, std::string_view purpose);

  const std::vector<Service>& services() const noexcept { return services_; }
  // The bucket callers matching no service share.
  const Rate& unknown_callers() const noexcept { return unknown_callers_; }

 private:
  std::vector<Service> services_;
  Rate unknown_callers_{30, std::chrono::hours(1)};
};

// The policy a configuration describes: its [[service]] sections and the
// unknown callers' rate. The configuration's validation has accepted it
// already, so an error here is a bug; it is reported, not ignored.
[[nodiscard]] Result<std::shared_ptr<const Policy>> policy_from(const config::Config& c);

}  // namespace chitty::policy
