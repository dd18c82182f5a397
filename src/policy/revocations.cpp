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

bool Revocations::add(Revocation r) {
  for (const Revocation& existing : list_) {
    if (existing == r) return false;
  }
  list_.push_back(std::move(r));
  return true;
}

std::size_t Revocations::clear(const Revocation& r) {
  std::size_t before = list_.size();
  if (r.kind == Revocation::Kind::all) {
    list_.clear();
  } else {
    // A ref revocation is lifted by any of its keys.
    list_.erase(std::remove_if(list_.begin(), list_.end(),
                               [&](const Revocation& x) {
                                 if (x.kind != r.kind) return false;
                                 for (const auto& k : r.keys) {
                                   if (std::find(x.keys.begin(), x.keys.end(), k) != x.keys.end()) return true;
                                 }
                                 return false;
                               }),
                list_.end());
  }
  return before - list_.size();
}

const Revocation* Revocations::blocking(std::string_view service, const catalog::Entry* entry,
                                        const std::vector<std::string>& keys) const {
  for (const Revocation& r : list_) {
    switch (r.kind) {
      case Revocation::Kind::all: return &r;
      case Revocation::Kind::service:
        if (!r.keys.empty() && r.keys.front() == service) return &r;
        break;
      case Revocation::Kind::type:
        if (entry != nullptr && !r.keys.empty() && r.keys.front() == entry->type) return &r;
        break;
      case Revocation::Kind::ref:
        for (const auto& k : keys) {
          if (std::find(r.keys.begin(), r.keys.end(), k) != r.keys.end()) return &r;
        }
        break;
    }
  }
  return nullptr;
}

bool Revocations::blocks_key(const std::string& key) const {
  for (const Revocation& r : list_) {
    if (r.kind == Revocation::Kind::all) return true;
    if (r.kind == Revocation::Kind::ref && std::find(r.keys.begin(), r.keys.end(), key) != r.keys.end()) return true;
  }
  return false;
}

}  // namespace chitty::policy
