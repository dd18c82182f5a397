#include "chitty/identity/cgroup.hpp"

#include <array>
#include <vector>

namespace chitty::identity {
namespace {

std::vector<std::string_view> components(std::string_view path) {
  std::vector<std::string_view> out;
  while (!path.empty()) {
    auto slash = path.find('/');
    std::string_view c = path.substr(0, slash);
    if (!c.empty() && c != "." && c != "..") out.push_back(c);
    if (slash == std::string_view::npos) break;
    path.remove_prefix(slash + 1);
  }
  return out;
}

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

bool is_hex64(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

// A leaf cgroup systemd creates for a unit.
bool is_unit_name(std::string_view c) { return ends_with(c, ".service") || ends_with(c, ".scope"); }

struct ScopePattern {
  std::string_view prefix;
  std::string_view runtime;
};

// "<prefix><64 hex>.scope" names, systemd cgroup driver.
constexpr std::array<ScopePattern, 5> kScopes{{
    {"docker-", "docker"},
    {"cri-containerd-", "containerd"},
    {"crio-", "cri-o"},
    {"libpod-", "podman"},
    {"nerdctl-", "containerd"},
}};

}  // namespace

void units_of_path(std::string_view path, std::string& unit, std::string& user_unit) {
  unit.clear();
  user_unit.clear();
  auto parts = components(path);
  std::size_t i = 0;
  while (i < parts.size() && ends_with(parts[i], ".slice")) ++i;
  if (i >= parts.size() || !is_unit_name(parts[i])) return;
  unit = std::string(parts[i]);
  // A user's manager: user@1000.service/app.slice/foo.service
  if (unit.rfind("user@", 0) == 0 && ends_with(unit, ".service")) {
    ++i;
    while (i < parts.size() && ends_with(parts[i], ".slice")) ++i;
    if (i < parts.size() && is_unit_name(parts[i])) user_unit = std::string(parts[i]);
  }
}

ContainerMatch container_of_path(std::string_view path, std::string& id, std::string& runtime,
                                 std::string& delegated_to) {
  auto parts = components(path);
  // Only root (or the runtime) can create cgroups outside delegated subtrees;
  // below a unit, that unit's owner can name a cgroup anything.
  auto delegating_unit = [&](std::size_t k) -> std::string_view {
    for (std::size_t j = 0; j < k; ++j) {
      if (is_unit_name(parts[j])) return parts[j];
    }
    return {};
  };
  auto found = [&](std::size_t k, std::string_view container, std::string found_runtime) {
    std::string_view owner = delegating_unit(k);
    if (!owner.empty()) {
      delegated_to = std::string(owner);
      return ContainerMatch::delegated;
    }
    id = std::string(container);
    runtime = std::move(found_runtime);
    return ContainerMatch::trusted;
  };
  for (std::size_t k = parts.size(); k-- > 0;) {
    std::string_view c = parts[k];
    if (ends_with(c, ".scope")) {
      std::string_view stem = c.substr(0, c.size() - 6);
      for (const auto& p : kScopes) {
        if (stem.rfind(p.prefix, 0) == 0 && is_hex64(stem.substr(p.prefix.size()))) {
          return found(k, stem.substr(p.prefix.size()), std::string(p.runtime));
        }
      }
      continue;
    }
    if (is_hex64(c)) {
      // cgroupfs driver: /docker/<id>, /kubepods/<qos>/pod<uid>/<id>,
      // /<containerd namespace>/<id>.
      std::string r = "unknown";
      for (std::size_t j = 0; j < k; ++j) {
        if (parts[j] == "docker") r = "docker";
        if (parts[j].rfind("kubepods", 0) == 0) r = "kubernetes";
        if (parts[j] == "libpod_parent" || parts[j] == "machine.slice") r = "podman";
      }
      return found(k, c, r);
    }
  }
  return ContainerMatch::none;
}

std::optional<CgroupInfo> parse_proc_cgroup(std::string_view content) {
  // Lines: "hierarchy-ID:controller-list:path".
  std::optional<std::string_view> systemd_v1, unified;
  std::vector<std::string_view> all_paths;
  while (!content.empty()) {
    auto nl = content.find('\n');
    std::string_view line = content.substr(0, nl);
    content = nl == std::string_view::npos ? std::string_view() : content.substr(nl + 1);
    auto c1 = line.find(':');
    if (c1 == std::string_view::npos) continue;
    auto c2 = line.find(':', c1 + 1);
    if (c2 == std::string_view::npos) continue;
    std::string_view id = line.substr(0, c1);
    std::string_view controllers = line.substr(c1 + 1, c2 - c1 - 1);
    std::string_view path = line.substr(c2 + 1);
    if (path.empty()) continue;
    all_paths.push_back(path);
    if (controllers == "name=systemd") systemd_v1 = path;
    if (id == "0" && controllers.empty()) unified = path;
  }
  if (all_paths.empty()) return std::nullopt;
  CgroupInfo info;
  // Hybrid systems keep units on the v1 name=systemd hierarchy; on pure v2
  // only the "0::" line exists.
  std::string_view path = systemd_v1 ? *systemd_v1 : unified ? *unified : all_paths.front();
  info.path = std::string(path);
  info.systemd_hierarchy = systemd_v1.has_value() || unified.has_value();
  if (info.systemd_hierarchy) units_of_path(path, info.unit, info.user_unit);
  ContainerMatch m = container_of_path(path, info.container, info.runtime, info.delegated_to);
  for (std::size_t i = 0; m == ContainerMatch::none && i < all_paths.size(); ++i) {
    m = container_of_path(all_paths[i], info.container, info.runtime, info.delegated_to);
  }
  return info;
}

}  // namespace chitty::identity
