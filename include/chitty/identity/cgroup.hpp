// Reading a process's systemd unit and container from /proc/PID/cgroup
// (cgroup v1, v2 and hybrid). Pure: tested on text.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace chitty::identity {

struct CgroupInfo {
  std::string path;         // the systemd hierarchy's path ("name=systemd" on v1, else the v2 "0::" line)
  std::string unit;         // system unit ("foo.service", "docker-<id>.scope", "session-3.scope"); "" if none
  std::string user_unit;    // unit of a user's systemd manager ("app.service"); "" if none
  std::string container;    // 64-hex container id; "" if none
  std::string runtime;      // "docker", "containerd", "cri-o", "podman", "kubernetes" ... ; "" if none
  // A container-looking cgroup inside a unit's own subtree (user@UID.service,
  // or a service with Delegate=yes): that unit's owner can create cgroups with
  // any name there, so the id proves nothing. `container` is then empty and
  // this names the delegating unit.
  std::string delegated_to;
  // The path came from systemd's hierarchy (name=systemd or cgroup v2), so
  // unit names mean something.
  bool systemd_hierarchy = false;
};

// Parses the content of /proc/PID/cgroup. nullopt if it holds no usable line.
std::optional<CgroupInfo> parse_proc_cgroup(std::string_view content);

// The unit and user unit of a cgroup path, following systemd's rules: leading
// slices are skipped and the next component is the unit; below a
// user@UID.service the same again gives the user unit. "/../" components (a
// reader in another cgroup namespace) are skipped.
void units_of_path(std::string_view path, std::string& unit, std::string& user_unit);

// The container id (and runtime) named anywhere in a cgroup path, deepest
// match first: docker-<id>.scope, cri-containerd-<id>.scope, crio-<id>.scope,
// libpod-<id>.scope, nerdctl-<id>.scope, /docker/<id>, /kubepods/.../<id>, ...
// A match below another unit (a delegated subtree) is not trusted:
// `delegated_to` names that unit and the result is `delegated`.
enum class ContainerMatch { none, trusted, delegated };
ContainerMatch container_of_path(std::string_view path, std::string& id, std::string& runtime,
                                 std::string& delegated_to);

}  // namespace chitty::identity
