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
  std::string container;    // 64-hex container id; "" if none or unknown
  std::string runtime;      // "docker", "containerd", "cri-o", "podman", "kubernetes" ... ; "" if none
  // Why the container cannot be established; "" when it is (an id in
  // `container`, or "" there for "in no container"). Set for a container
  // cgroup inside a delegated subtree, for a path below a container's own
  // cgroup, and when there is no systemd hierarchy to read it from.
  std::string container_unknown;
  // The subtree that made the container unknown: a unit whose owner can
  // create cgroups with any name below it (user@UID.service, a service with
  // Delegate=yes), or a container's own cgroup ("docker-<id>.scope",
  // "/docker/<id>"), which the container may subdivide. "" otherwise.
  std::string delegated_to;
  // The path came from systemd's hierarchy (name=systemd or cgroup v2), so
  // unit names mean something.
  bool systemd_hierarchy = false;
};

// Parses the content of /proc/PID/cgroup. nullopt if it holds no usable line.
// The container is read from the systemd hierarchy's path only (name=systemd
// on v1 and hybrid hosts, else the unified "0::" line): the other v1
// hierarchies can be delegated separately, so their paths prove nothing.
std::optional<CgroupInfo> parse_proc_cgroup(std::string_view content);

// The unit and user unit of a cgroup path, following systemd's rules: leading
// slices are skipped and the next component is the unit; below a
// user@UID.service the same again gives the user unit. "/../" components (a
// reader in another cgroup namespace) are skipped.
void units_of_path(std::string_view path, std::string& unit, std::string& user_unit);

// The container a cgroup path names. Only a runtime's own leaf pattern as the
// LAST component names one: docker-<id>.scope, cri-containerd-<id>.scope,
// crio-<id>.scope, libpod-<id>.scope, nerdctl-<id>.scope (systemd driver), or
// a bare <id> (cgroupfs driver: /docker/<id>, /kubepods/.../<id>), where <id>
// is 64 lower-case hex digits. Such a leaf below a unit (a delegated
// subtree), and any path below a container's own cgroup (which the
// container can subdivide: a nested runtime, systemd inside, or a
// look-alike), is `delegated`: the container is then unknown.
enum class ContainerMatch { none, trusted, delegated };
struct ContainerOf {
  ContainerMatch match = ContainerMatch::none;
  std::string id;            // trusted only
  std::string runtime;       // trusted only
  std::string delegated_to;  // delegated only: the unit or container cgroup (see CgroupInfo)
  std::string reason;        // delegated only: why the container is unknown
};
ContainerOf container_of_path(std::string_view path);

}  // namespace chitty::identity
