// The credential catalog (SPEC §3): credential types, their references, and
// the fallback sources (an environment variable, a systemd credential) that
// can provide each one. Built from the [[credential]] sections.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "chitty/base/result.hpp"
#include "chitty/catalog/reference.hpp"

namespace chitty::catalog {

struct Entry {
  std::string type;                // "openai_api_key"
  Reference ref;
  std::string key;                 // ref.canonical(): the cache and audit key
  std::string env;                 // "" for none
  std::string systemd_credential;  // "" for none
  std::string category;            // "" for none
  std::string target;              // for service-token/{target} routes
};

// What the catalog is built from (config::CredentialConfig, minus the config
// module: the catalog does not depend on it).
struct EntrySpec {
  std::string type;
  std::string ref;
  std::string env;
  std::string systemd_credential;
  std::string category;
  std::string target;
};

class Catalog {
 public:
  Catalog() = default;
  // Fails on an invalid reference or a type defined twice (the config's
  // validation has already said so with file:line; this is the last guard).
  [[nodiscard]] static Result<Catalog> build(const std::vector<EntrySpec>& specs);

  // Lookups return shared ownership: a request in flight keeps its entry
  // across a reload that replaces the catalog.
  std::shared_ptr<const Entry> by_type(std::string_view type) const;
  // The entry whose reference is `key` (canonical), if the catalog has one.
  std::shared_ptr<const Entry> by_key(std::string_view key) const;
  // The first entry of `category` whose target is `target` (case-insensitive).
  std::shared_ptr<const Entry> by_target(std::string_view category, std::string_view target) const;
  const std::vector<std::shared_ptr<const Entry>>& entries() const noexcept { return entries_; }
  bool empty() const noexcept { return entries_.empty(); }

 private:
  std::vector<std::shared_ptr<const Entry>> entries_;
  std::unordered_map<std::string, std::shared_ptr<const Entry>> by_type_;
  std::unordered_map<std::string, std::shared_ptr<const Entry>> by_key_;
};

}  // namespace chitty::catalog
