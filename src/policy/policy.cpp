#include "chitty/policy/policy.hpp"

namespace chitty::policy {

Result<Policy> Policy::build(const std::vector<ServiceSpec>& specs) {
  Policy p;
  for (const ServiceSpec& s : specs) {
    Service svc;
    svc.name = s.name;
    if (s.uid) {
      if (*s.uid < 0 || *s.uid > static_cast<std::int64_t>(static_cast<uid_t>(-2))) {
        return fail("service \"" + s.name + "\": uid " + std::to_string(*s.uid) + " is out of range");
      }
      svc.uid = static_cast<uid_t>(*s.uid);
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
    p.services_.push_back(std::move(svc));
  }
  return p;
}

const Service* Policy::service_for(const identity::Identity& caller) const {
  for (const Service& s : services_) {
    if (s.uid && caller.uid.matches(*s.uid)) return &s;
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

}  // namespace chitty::policy
