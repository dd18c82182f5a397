// What is in force: the credential catalog and the policy, replaced on
// reload. The broker, the rate gate and the API handlers read them here;
// a request in flight keeps the ones it took (shared_ptr), so a reload never
// changes the rules under it.
//
// Thread: loop thread only.
#pragma once

#include <functional>
#include <memory>

#include "chitty/catalog/catalog.hpp"
#include "chitty/identity/identity.hpp"
#include "chitty/policy/policy.hpp"

namespace chitty::policy {

class Rules {
 public:
  Rules();  // an empty catalog and a policy without services
  Rules(const Rules&) = delete;
  Rules& operator=(const Rules&) = delete;

  // Replaces the catalog, then tells the listener (the broker checks the
  // revocations in force against the new catalog's types).
  void set_catalog(std::shared_ptr<const catalog::Catalog> c);
  void set_policy(std::shared_ptr<const Policy> p) { policy_ = std::move(p); }

  const catalog::Catalog& catalog() const noexcept { return *catalog_; }
  const Policy& policy() const noexcept { return *policy_; }
  std::shared_ptr<const Policy> policy_ptr() const noexcept { return policy_; }
  // The service `caller` is (null when none matches).
  const Service* service_of(const identity::Identity& caller) const { return policy_->service_for(caller); }

  // One listener (null to remove it); called after every set_catalog().
  void on_catalog_change(std::function<void()> f) { catalog_listener_ = std::move(f); }

 private:
  std::shared_ptr<const catalog::Catalog> catalog_;
  std::shared_ptr<const Policy> policy_;
  std::function<void()> catalog_listener_;
};

}  // namespace chitty::policy
