#include "chitty/policy/policy.hpp"

#include <algorithm>

namespace chitty::policy {

std::string Service::selectors() const {
  if (is_default) return "default";
  std::string out;
  auto add = [&](std::string s) { out += (out.empty() ? "" : " ") + std::move(s); };
  if (uid) add("uid=" + std::to_string(*uid));
  if (gid) add("gid=" + std::to_string(*gid));
  if (!unit.empty()) add("unit=" + unit);
  if (!container.empty()) add("container=" + container);
  if (!exe.empty()) add("exe=" + exe);
  return out;
}

Result<Policy> Policy::build(const std::vector<ServiceSpec>& specs, Rate unknown_callers) {
  Policy p;
  p.unknown_callers_ = unknown_callers;
  constexpr auto kMaxId = static_cast<std::int64_t>(static_cast<uid_t>(-2));
  for (const ServiceSpec& s : specs) {
    Service svc;
    svc.name = s.name;
    if (s.uid) {
      if (*s.uid < 0 || *s.uid > kMaxId) return fail("service \"" + s.name + "\": uid " + std::to_string(*s.uid) + " is out of range");
      svc.uid = static_cast<uid_t>(*s.uid);
    }
    if (s.gid) {
      if (*s.gid < 0 || *s.gid > kMaxId) return fail("service \"" + s.name + "\": gid " + std::to_string(*s.gid) + " is out of range");
      svc.gid = static_cast<gid_t>(*s.gid);
    }
    svc.unit = s.unit;
    svc.container = s.container;
    svc.exe = s.exe;
    svc.is_default = s.is_default;
    bool has_selector = svc.uid || svc.gid || !svc.unit.empty() || !svc.container.empty() || !svc.exe.empty();
    if (has_selector == svc.is_default) {
      return fail("service \"" + s.name + "\": " +
                  (svc.is_default ? std::string("a default service has no selectors")
                                  : std::string("no selector (set one, or default = true)")));
    }
    if (!svc.container.empty() && svc.container.size() < 12) {
      return fail("service \"" + s.name + "\": a container id prefix needs at least 12 characters");
    }
    for (const std::string& rule : s.allow) {
      if (rule.rfind("type:", 0) == 0) {
        svc.rules.emplace_back(TypeRule{rule.substr(5)});
        continue;
      }
      auto glob = catalog::Glob::parse(rule);
      if (!glob) return fail("service \"" + s.name + "\": \"" + rule + "\": " + glob.error().message);
      svc.rules.emplace_back(std::move(*glob));
    }
    svc.purposes = s.purposes;
    svc.rate_limit = s.rate_limit;
    svc.admin = s.admin;
    svc.mcp_release = s.mcp_release;
    p.services_.push_back(std::move(svc));
  }
  return p;
}

namespace {

bool matches(const Service& s, const identity::Identity& c) {
  if (s.is_default) return true;
  if (s.uid && !c.uid.matches(*s.uid)) return false;
  if (s.gid && !c.gid.matches(*s.gid)) return false;
  if (!s.unit.empty() && !c.unit.matches(s.unit)) return false;
  if (!s.exe.empty() && !c.exe.matches(s.exe)) return false;
  if (!s.container.empty()) {
    // "" is the established fact "in no container": it never matches.
    if (!c.container.is_known() || c.container.value().empty()) return false;
    const std::string& id = c.container.value();
    if (id != s.container && !(s.container.size() >= 12 && id.starts_with(s.container))) return false;
  }
  return true;
}

}  // namespace

const Service* Policy::service_for(const identity::Identity& caller) const {
  for (const Service& s : services_) {
    if (matches(s, caller)) return &s;
  }
  return nullptr;
}

const Service* Policy::service_named(std::string_view name) const {
  for (const Service& s : services_) {
    if (s.name == name) return &s;
  }
  return nullptr;
}

bool Policy::allows(const Service& service, const catalog::Entry* entry, const catalog::Reference& ref) {
  for (const Rule& rule : service.rules) {
    if (const auto* t = std::get_if<TypeRule>(&rule)) {
      if (entry != nullptr && entry->type == t->type) return true;
    } else if (std::get<catalog::Glob>(rule).matches(ref)) {
      return true;
    }
  }
  return false;
}

bool Policy::purpose_allowed(const Service& service, std::string_view purpose) {
  if (service.purposes.empty()) return true;
  return std::find(service.purposes.begin(), service.purposes.end(), purpose) != service.purposes.end();
}

[[nodiscard]] Result<std::shared_ptr<const Policy>> policy_from(const config::Config& c) {
  std::vector<ServiceSpec> specs;
  for (const auto& svc : c.services) {
    ServiceSpec spec;
    spec.name = svc.name;
    spec.uid = svc.uid;
    spec.gid = svc.gid;
    spec.unit = svc.unit;
    spec.container = svc.container;
    spec.exe = svc.exe;
    spec.is_default = svc.is_default;
    spec.allow = svc.allow;
    spec.purposes = svc.purposes;
    auto rate = parse_rate(svc.rate_limit);
    if (!rate) return fail("service \"" + svc.name + "\": " + rate.error().message);
    spec.rate_limit = *rate;
    spec.admin = svc.admin;
    spec.mcp_release = svc.mcp_release;
    specs.push_back(std::move(spec));
  }
  auto unknown = parse_rate(c.agent.unknown_caller_rate_limit);
  if (!unknown) return fail("agent.unknown_caller_rate_limit: " + unknown.error().message);
  auto built = Policy::build(specs, *unknown);
  if (!built) return tl::unexpected(built.error());
  return std::make_shared<const Policy>(std::move(*built));
}

}  // namespace chitty::policy
