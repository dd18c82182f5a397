#include <catch2/catch.hpp>

#include <string>

#include "chitty/identity/cgroup.hpp"

using chitty::identity::CgroupInfo;
using chitty::identity::parse_proc_cgroup;

namespace {

const std::string kId = "3f2a9d0c1b7e4f5a8c6d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f2a1b";

CgroupInfo parsed(const std::string& content) {
  auto info = parse_proc_cgroup(content);
  REQUIRE(info.has_value());
  return *info;
}

}  // namespace

TEST_CASE("cgroup v2: a system service", "[identity][cgroup]") {
  auto i = parsed("0::/system.slice/chitty-registry.service\n");
  CHECK(i.path == "/system.slice/chitty-registry.service");
  CHECK(i.unit == "chitty-registry.service");
  CHECK(i.user_unit.empty());
  CHECK(i.container.empty());
  CHECK(i.runtime.empty());
}

TEST_CASE("cgroup v2: nested slices, a scope, and init.scope", "[identity][cgroup]") {
  CHECK(parsed("0::/system.slice/system-getty.slice/getty@tty1.service\n").unit == "getty@tty1.service");
  CHECK(parsed("0::/user.slice/user-1000.slice/session-3.scope\n").unit == "session-3.scope");
  CHECK(parsed("0::/init.scope\n").unit == "init.scope");
  // A process in a sub-cgroup of its service is still that service's.
  CHECK(parsed("0::/system.slice/foo.service/worker\n").unit == "foo.service");
}

TEST_CASE("cgroup v2: a user's unit under user@UID.service", "[identity][cgroup]") {
  auto i = parsed("0::/user.slice/user-1000.slice/user@1000.service/app.slice/chitty-dev.service\n");
  CHECK(i.unit == "user@1000.service");
  CHECK(i.user_unit == "chitty-dev.service");
}

TEST_CASE("no unit: the root cgroup or slices only", "[identity][cgroup]") {
  CHECK(parsed("0::/\n").unit.empty());
  CHECK(parsed("0::/user.slice/user-1000.slice\n").unit.empty());
}

TEST_CASE("cgroup v1 and hybrid: the name=systemd hierarchy decides the unit", "[identity][cgroup]") {
  auto i = parsed(
      "12:pids:/system.slice/foo.service\n"
      "11:memory:/system.slice/foo.service\n"
      "1:name=systemd:/system.slice/foo.service\n"
      "0::/\n");
  CHECK(i.path == "/system.slice/foo.service");
  CHECK(i.unit == "foo.service");
}

TEST_CASE("Docker: systemd driver, cgroupfs driver, and systemd running inside", "[identity][cgroup][container]") {
  auto sd = parsed("0::/system.slice/docker-" + kId + ".scope\n");
  CHECK(sd.container == kId);
  CHECK(sd.runtime == "docker");
  CHECK(sd.unit == "docker-" + kId + ".scope");

  auto fs = parsed("0::/docker/" + kId + "\n");
  CHECK(fs.container == kId);
  CHECK(fs.runtime == "docker");
  CHECK(fs.unit.empty());

  auto inner = parsed("0::/system.slice/docker-" + kId + ".scope/init.scope\n");
  CHECK(inner.container == kId);
}

TEST_CASE("containerd, CRI-O, Podman, nerdctl and Kubernetes paths", "[identity][cgroup][container]") {
  auto k8s = parsed("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1234_5678.slice/cri-containerd-" +
                    kId + ".scope\n");
  CHECK(k8s.container == kId);
  CHECK(k8s.runtime == "containerd");

  auto crio = parsed("0::/kubepods.slice/kubepods-pod9.slice/crio-" + kId + ".scope\n");
  CHECK(crio.container == kId);
  CHECK(crio.runtime == "cri-o");

  auto podman = parsed("0::/machine.slice/libpod-" + kId + ".scope\n");
  CHECK(podman.container == kId);
  CHECK(podman.runtime == "podman");


  auto nerdctl = parsed("0::/system.slice/nerdctl-" + kId + ".scope\n");
  CHECK(nerdctl.container == kId);

  auto k8s_fs = parsed("0::/kubepods/besteffort/pod1234-5678/" + kId + "\n");
  CHECK(k8s_fs.container == kId);
  CHECK(k8s_fs.runtime == "kubernetes");
}

TEST_CASE("a reader in another cgroup namespace sees /../ paths", "[identity][cgroup][container]") {
  auto i = parsed("0::/../docker-" + kId + ".scope\n");
  CHECK(i.container == kId);
  CHECK(i.unit == "docker-" + kId + ".scope");
}

TEST_CASE("container ids on v1 controller lines are found when the systemd line has none", "[identity][cgroup]") {
  auto i = parsed("4:memory:/docker/" + kId + "\n1:name=systemd:/\n0::/\n");
  CHECK(i.path == "/");
  CHECK(i.container == kId);
  CHECK(i.runtime == "docker");
}

TEST_CASE("things that look like container ids but are not", "[identity][cgroup][container]") {
  CHECK(parsed("0::/system.slice/docker-" + kId.substr(0, 63) + ".scope\n").container.empty());  // too short
  CHECK(parsed("0::/system.slice/docker-" + std::string(64, 'G') + ".scope\n").container.empty());  // not hex
  CHECK(parsed("0::/system.slice/crio-conmon-" + kId + ".scope\n").container.empty());  // the monitor, not the container
  CHECK(parsed("0::/system.slice/docker.service\n").container.empty());
}

TEST_CASE("unusable content", "[identity][cgroup]") {
  CHECK_FALSE(parse_proc_cgroup("").has_value());
  CHECK_FALSE(parse_proc_cgroup("garbage\n").has_value());
  CHECK_FALSE(parse_proc_cgroup("0::\n").has_value());
}

TEST_CASE("a container-looking cgroup inside a unit's delegated subtree is not trusted", "[identity][cgroup][container]") {
  // Rootless Podman, or any user faking one: user@UID.service owns its subtree.
  auto rootless = parsed("0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + kId + ".scope\n");
  CHECK(rootless.container.empty());
  CHECK(rootless.runtime.empty());
  CHECK(rootless.delegated_to == "user@1000.service");
  CHECK(rootless.unit == "user@1000.service");

  // A service with Delegate=yes can create cgroups with any name below itself.
  auto delegated = parsed("0::/system.slice/builder.service/docker-" + kId + ".scope\n");
  CHECK(delegated.container.empty());
  CHECK(delegated.delegated_to == "builder.service");
  CHECK(delegated.unit == "builder.service");

  auto cgroupfs = parsed("0::/system.slice/builder.service/docker/" + kId + "\n");
  CHECK(cgroupfs.container.empty());
  CHECK(cgroupfs.delegated_to == "builder.service");

  // Below the container's own scope is fine (systemd inside the container).
  auto inner = parsed("0::/system.slice/docker-" + kId + ".scope/system.slice/foo.service\n");
  CHECK(inner.container == kId);
  CHECK(inner.delegated_to.empty());
}
