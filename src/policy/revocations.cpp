#include "chitty/policy/revocations.hpp"

#include <algorithm>

namespace chitty::policy {

std::string_view revocation_kind_name(Revocation::Kind k) noexcept {
  switch (k) {
    case Revocation::Kind::ref: return "ref";
    case Revocation::Kind::type: return "type";
    case Revocation::Kind::service: return "service";
    case Revocation::Kind::all: return "all";
  }
  return "all";
}

std::optional<Revocation::Kind> revocation_kind(std::string_view name) noexcept {
  for (auto k : {Revocation::Kind::ref, Revocation::Kind::type, Revocation::Kind::service, Revocation::Kind::all}) {
    if (revocation_kind_name(k) == name) return k;
  }
  return std::nullopt;
}

bool Revocation::known_as(std::string_view form) const {
  return std::find(forms.begin(), forms.end(), form) != forms.end();
}

bool Revocation::add_form(std::string form) {
  if (form.empty() || known_as(form)) return false;
  forms.push_back(std::move(form));
  return true;
}

bool Revocation::add_type(const std::string& type) {
  if (type.empty() || std::find(types.begin(), types.end(), type) != types.end()) return false;
  types.push_back(type);
  return true;
}

bool Revocation::checked(const std::string& type) const {
  return std::find(checked_types.begin(), checked_types.end(), type) != checked_types.end();
}

bool Revocation::add_checked(const std::string& type) {
  if (type.empty() || checked(type)) return false;
  checked_types.push_back(type);
  return true;
}

bool Revocations::same(const Revocation& a, const Revocation& b) {
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Revocation::Kind::all: return true;
    case Revocation::Kind::service: return a.target == b.target;
    case Revocation::Kind::type:
      if (a.target == b.target) return true;
      break;
    case Revocation::Kind::ref: break;
  }
  // One secret: a spelling in common.
  for (const auto& f : b.forms) {
    if (a.known_as(f)) return true;
  }
  return false;
}

bool Revocations::add(Revocation r) {
  for (Revocation& existing : list_) {
    if (!same(existing, r)) continue;
    for (auto& f : r.forms) existing.add_form(std::move(f));
    for (const auto& t : r.types) existing.add_type(t);
    for (const auto& t : r.checked_types) existing.add_checked(t);
    if (existing.key.empty()) existing.key = r.key;
    if (!existing.ref) existing.ref = r.ref;
    existing.resolved = existing.resolved || r.resolved;
    return false;
  }
  list_.push_back(std::move(r));
  return true;
}

std::size_t Revocations::clear(const Revocation& r) {
  std::size_t before = list_.size();
  if (r.kind == Revocation::Kind::all) {
    list_.clear();
  } else {
    list_.erase(std::remove_if(list_.begin(), list_.end(), [&](const Revocation& x) { return same(x, r); }),
                list_.end());
  }
  return before - list_.size();
}

bool blocks(const Revocation& r, std::string_view service, const catalog::Entry* entry,
            const std::vector<std::string>& forms) {
  switch (r.kind) {
    case Revocation::Kind::all: return true;
    case Revocation::Kind::service: return !service.empty() && r.target == service;
    case Revocation::Kind::type:
    case Revocation::Kind::ref:
      if (entry != nullptr) {
        if (r.kind == Revocation::Kind::type && entry->type == r.target) return true;
        if (std::find(r.types.begin(), r.types.end(), entry->type) != r.types.end()) return true;
      }
      for (const auto& f : forms) {
        if (r.known_as(f)) return true;
      }
      return false;
  }
  return false;
}

const Revocation* Revocations::blocking(std::string_view service, const catalog::Entry* entry,
                                        const std::vector<std::string>& forms) const {
  for (const Revocation& r : list_) {
    if (blocks(r, service, entry, forms)) return &r;
  }
  return nullptr;
}

const Revocation* Revocations::blocking_service(std::string_view service) const {
  for (const Revocation& r : list_) {
    if (r.kind == Revocation::Kind::all) return &r;
    if (r.kind == Revocation::Kind::service && !service.empty() && r.target == service) return &r;
  }
  return nullptr;
}

bool Revocations::any_secret() const noexcept {
  return std::any_of(list_.begin(), list_.end(), [](const Revocation& r) {
    return r.kind == Revocation::Kind::ref || r.kind == Revocation::Kind::type;
  });
}

bool Revocations::any_unresolved() const noexcept {
  return std::any_of(list_.begin(), list_.end(), [](const Revocation& r) {
    return (r.kind == Revocation::Kind::ref || r.kind == Revocation::Kind::type) && !r.resolved;
  });
}

}  // namespace chitty::policy
