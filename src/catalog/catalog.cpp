#include "chitty/catalog/catalog.hpp"

namespace chitty::catalog {

Result<Catalog> Catalog::build(const std::vector<EntrySpec>& specs) {
  Catalog c;
  for (const EntrySpec& s : specs) {
    auto ref = parse_reference(s.ref);
    if (!ref) return fail("credential \"" + s.type + "\": " + ref.error().message);
    auto e = std::make_shared<Entry>();
    e->type = s.type;
    e->ref = std::move(*ref);
    e->key = e->ref.canonical();
    e->env = s.env;
    e->systemd_credential = s.systemd_credential;
    e->category = s.category;
    e->target = s.target;
    if (!c.by_type_.emplace(e->type, e).second) return fail("credential type \"" + s.type + "\" is defined twice");
    // Two types may name one secret (an alias); the first keeps the key.
    c.by_key_.emplace(e->key, e);
    c.entries_.push_back(std::move(e));
  }
  return c;
}

std::shared_ptr<const Entry> Catalog::by_type(std::string_view type) const {
  auto it = by_type_.find(std::string(type));
  return it == by_type_.end() ? nullptr : it->second;
}

std::shared_ptr<const Entry> Catalog::by_key(std::string_view key) const {
  auto it = by_key_.find(std::string(key));
  return it == by_key_.end() ? nullptr : it->second;
}

std::shared_ptr<const Entry> Catalog::by_target(std::string_view category, std::string_view target) const {
  for (const auto& e : entries_) {
    if (e->category == category && !e->target.empty() && fold_case(e->target) == fold_case(target)) return e;
  }
  return nullptr;
}

}  // namespace chitty::catalog
