#include "chitty/policy/rules.hpp"

namespace chitty::policy {

Rules::Rules() : catalog_(std::make_shared<catalog::Catalog>()), policy_(std::make_shared<Policy>()) {}

void Rules::set_catalog(std::shared_ptr<const catalog::Catalog> c) {
  catalog_ = std::move(c);
  if (catalog_listener_) catalog_listener_();
}

}  // namespace chitty::policy
