#include "chitty/identity/cgroup.hpp"

#include <array>
#include <optional>
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

// A cgroup systemd creates for a unit with processes of its own.
bool is_unit_name(std::string_view c) {
  return ends_with(c, ".service") || ends_with(c, ".scope") || ends_with(c, ".socket") || ends_with(c, ".mount") ||
         ends_with(c, ".swap");
}

// The unit a cgroup component names: systemd escapes a name that could be
// taken for a cgroup file ("cpu.service" is "_cpu.service") or that starts
// with '_' or '.' with one leading '_'.
std::string unit_of_component(std::string_view c) {
  if (!c.empty() && c.front() == '_') c.remove_prefix(1);
  return std::string(c);
}

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

struct Leaf {
  std::string_view id;
  std::string runtime;
};

// Whether component `k` has the shape of a container's own cgroup: a
// runtime's scope, or a bare id (cgroupfs driver: /docker/<id>,
// /kubepods/<qos>/pod<uid>/<id>, /<containerd namespace>/<id>).
std::optional<Leaf> container_cgroup(const std::vector<std::string_view>& parts, std::size_t k) {
  std::string_view c = parts[k];
  if (ends_with(c, ".scope")) {
    std::string_view stem = c.substr(0, c.size() - 6);
    for (const auto& p : kScopes) {
      if (stem.rfind(p.prefix, 0) == 0 && is_hex64(stem.substr(p.prefix.size()))) {
        return Leaf{stem.substr(p.prefix.size()), std::string(p.runtime)};
      }
    }
    return std::nullopt;
  }
  if (!is_hex64(c)) return std::nullopt;
  std::string r = "unknown";
  for (std::size_t j = 0; j < k; ++j) {
    if (parts[j] == "docker") r = "docker";
    if (parts[j].rfind("kubepods", 0) == 0) r = "kubernetes";
    if (parts[j] == "libpod_parent" || parts[j] == "machine.slice") r = "podman";
  }
  return Leaf{c, r};
}

std::string joined(const std::vector<std::string_view>& parts, std::size_t through) {
  std::string out;
  for (std::size_t j = 0; j <= through; ++j) {
    out += '/';
    out += parts[j];
  }
  return out;
}

}  // namespace

void units_of_path(std::string_view path, std::string& unit, std::string& user_unit) {
  unit.clear();
  user_unit.clear();
  auto parts = components(path);
  std::size_t i = 0;
  while (i < parts.size() && ends_with(parts[i], ".slice")) ++i;
  if (i >= parts.size() || !is_unit_name(parts[i])) return;
  unit = unit_of_component(parts[i]);
  // A user's manager: user@1000.service/app.slice/foo.service
  if (unit.rfind("user@", 0) == 0 && ends_with(unit, ".service")) {
    ++i;
    while (i < parts.size() && ends_with(parts[i], ".slice")) ++i;
    if (i < parts.size() && is_unit_name(parts[i])) user_unit = unit_of_component(parts[i]);
  }
}

ContainerOf container_of_path(std::string_view path) {
  ContainerOf out;
  auto parts = components(path);
  if (parts.empty()) return out;
  const std::size_t leaf = parts.size() - 1;
  // Only root and the runtimes create cgroups outside delegated subtrees. The
  // outermost ancestor that is a unit (its owner may name cgroups at will
  // below it) or a container's own cgroup (the container may subdivide it)
  // decides: nothing below it names a container, not even that container.
  for (std::size_t j = 0; j < leaf; ++j) {
    if (auto outer = container_cgroup(parts, j)) {
      out.match = ContainerMatch::delegated;
      out.delegated_to = is_unit_name(parts[j]) ? std::string(parts[j]) : joined(parts, j);
      out.reason = "the caller's cgroup is below the cgroup of container " + std::string(outer->id.substr(0, 12)) +
                   " (" + out.delegated_to +
                   "), which that container can subdivide and name at will (a nested runtime, systemd inside the "
                   "container, or a look-alike); only the runtime's own leaf cgroup names a container";
      return out;
    }
    if (is_unit_name(parts[j])) {
      // A unit's own sub-cgroups (foo.service/worker) are no container;
      // a container-looking cgroup anywhere below it is a look-alike or a
      // rootless runtime's.
      bool looks_like_one = false;
      for (std::size_t k = j + 1; k <= leaf && !looks_like_one; ++k) looks_like_one = container_cgroup(parts, k).has_value();
      if (!looks_like_one) return out;
      out.match = ContainerMatch::delegated;
      out.delegated_to = std::string(parts[j]);
      out.reason = "the container-looking cgroup is inside " + out.delegated_to +
                   ", whose owner can name cgroups at will (a rootless container or a look-alike); match on the "
                   "uid instead";
      return out;
    }
  }
  if (auto c = container_cgroup(parts, leaf)) {
    out.match = ContainerMatch::trusted;
    out.id = std::string(c->id);
    out.runtime = std::move(c->runtime);
  }
  return out;
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
  if (!info.systemd_hierarchy) {
    // A v1 controller hierarchy can be delegated on its own (a writable
    // cgroupfs mount, a chowned subtree): a container id found there proves
    // nothing, and without the systemd hierarchy there is nothing better.
    info.container_unknown =
        "no systemd cgroup hierarchy (neither name=systemd nor cgroup v2) on this host; container ids are read "
        "only from it";
    return info;
  }
  units_of_path(path, info.unit, info.user_unit);
  ContainerOf c = container_of_path(path);
  switch (c.match) {
    case ContainerMatch::none: break;
    case ContainerMatch::trusted:
      info.container = std::move(c.id);
      info.runtime = std::move(c.runtime);
      break;
    case ContainerMatch::delegated:
      info.delegated_to = std::move(c.delegated_to);
      info.container_unknown = std::move(c.reason);
      break;
  }
  return info;
}

}  // namespace chitty::identity
