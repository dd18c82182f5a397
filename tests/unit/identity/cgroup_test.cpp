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

TEST_CASE("cgroup v2: socket, mount and swap units, and names systemd escapes", "[identity][cgroup]") {
  // Their processes (ExecStartPre=, mount helpers) live in the unit's cgroup.
  CHECK(parsed("0::/system.slice/web.socket\n").unit == "web.socket");
  CHECK(parsed("0::/system.slice/data.mount\n").unit == "data.mount");
  CHECK(parsed("0::/system.slice/cryptswap.swap\n").unit == "cryptswap.swap");
  // A unit named like a cgroup file ("cpu.service") or starting with '_' is
  // one '_' longer as a cgroup.
  CHECK(parsed("0::/system.slice/_cpu.service\n").unit == "cpu.service");
  CHECK(parsed("0::/system.slice/__x.service\n").unit == "_x.service");
  CHECK(parsed("0::/user.slice/user-1000.slice/user@1000.service/app.slice/_cgroup.x.service\n").user_unit ==
        "cgroup.x.service");
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

  // systemd running inside: below the container's scope (see the nesting
  // cases below), so the id is not established.
  auto inner = parsed("0::/system.slice/docker-" + kId + ".scope/init.scope\n");
  CHECK(inner.container.empty());
  CHECK_FALSE(inner.container_unknown.empty());
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

TEST_CASE("a container id on a v1 controller line is never taken", "[identity][cgroup][container][spoof]") {
  // A v1 controller hierarchy can be delegated on its own (a chowned subtree,
  // a writable cgroupfs in a container): its paths prove nothing. The
  // name=systemd line decides, and here it names no container.
  auto i = parsed("4:memory:/docker/" + kId + "\n1:name=systemd:/\n0::/\n");
  CHECK(i.path == "/");
  CHECK(i.container.empty());
  CHECK(i.runtime.empty());
  CHECK(i.container_unknown.empty());  // established: in no container

  // Another container's id on a controller line does not override the
  // systemd hierarchy's.
  const std::string other(64, 'e');
  auto two = parsed("4:memory:/docker/" + other + "\n3:cpu:/docker-" + other + ".scope\n1:name=systemd:/docker/" + kId +
                    "\n");
  CHECK(two.container == kId);

  // A v1 host without a systemd hierarchy: the container is unknown, not
  // taken from whichever line names one.
  auto bare = parsed("4:memory:/docker/" + kId + "\n3:cpu:/docker/" + kId + "\n");
  CHECK(bare.container.empty());
  CHECK_FALSE(bare.systemd_hierarchy);
  CHECK_THAT(bare.container_unknown, Catch::Matchers::Contains("no systemd cgroup hierarchy"));
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

  CHECK_THAT(delegated.container_unknown, Catch::Matchers::Contains("builder.service"));

  // Rootless Podman with a sub-cgroup of its own: still the user's subtree.
  auto rootless_inner =
      parsed("0::/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-" + kId + ".scope/container\n");
  CHECK(rootless_inner.container.empty());
  CHECK(rootless_inner.delegated_to == "user@1000.service");

  // A unit's own sub-cgroups are not containers: established as none.
  auto worker = parsed("0::/system.slice/foo.service/worker\n");
  CHECK(worker.container.empty());
  CHECK(worker.container_unknown.empty());
  CHECK(worker.delegated_to.empty());
}

// Nesting: a process in a container that may create sub-cgroups (delegation,
// a writable cgroupfs, docker-in-docker) must not name a container, another
// or its own, by the path it builds below its container's cgroup. Only the
// runtime's leaf pattern as the last component names a container.
namespace {

const std::string kFake(64, 'f');

void check_below_container(const std::string& line, const std::string& delegated_to) {
  INFO(line);
  auto i = parsed(line);
  CHECK(i.container.empty());
  CHECK(i.runtime.empty());
  CHECK(i.delegated_to == delegated_to);
  CHECK_THAT(i.container_unknown, Catch::Matchers::Contains("below the cgroup of container " + kId.substr(0, 12)));
}

}  // namespace

TEST_CASE("nesting: a scope of another container below a container's scope", "[identity][cgroup][container][spoof]") {
  check_below_container("0::/system.slice/docker-" + kId + ".scope/docker-" + kFake + ".scope\n", "docker-" + kId + ".scope");
  check_below_container("0::/kubepods.slice/kubepods-pod1.slice/cri-containerd-" + kId + ".scope/cri-containerd-" + kFake +
                            ".scope\n",
                        "cri-containerd-" + kId + ".scope");
}

TEST_CASE("nesting: the same container's scope below itself", "[identity][cgroup][container][spoof]") {
  check_below_container("0::/system.slice/docker-" + kId + ".scope/docker-" + kId + ".scope\n", "docker-" + kId + ".scope");
}

TEST_CASE("nesting: any sub-cgroup of a container's scope", "[identity][cgroup][container][spoof]") {
  check_below_container("0::/system.slice/docker-" + kId + ".scope/anything\n", "docker-" + kId + ".scope");
  check_below_container("0::/system.slice/docker-" + kId + ".scope/init.scope\n", "docker-" + kId + ".scope");
  check_below_container("0::/system.slice/docker-" + kId + ".scope/system.slice/foo.service\n", "docker-" + kId + ".scope");
  check_below_container("0::/machine.slice/libpod-" + kId + ".scope/container\n", "libpod-" + kId + ".scope");
  check_below_container("0::/kubepods.slice/kubepods-pod9.slice/crio-" + kId + ".scope/x\n", "crio-" + kId + ".scope");
}

TEST_CASE("nesting: a bare id (cgroupfs form) below a container's scope", "[identity][cgroup][container][spoof]") {
  check_below_container("0::/system.slice/docker-" + kId + ".scope/docker/" + kFake + "\n", "docker-" + kId + ".scope");
  check_below_container("0::/system.slice/docker-" + kId + ".scope/" + kFake + "\n", "docker-" + kId + ".scope");
}

TEST_CASE("nesting: docker-in-docker with the cgroupfs driver", "[identity][cgroup][container][spoof]") {
  // What an inner dockerd creates in a private cgroup namespace.
  check_below_container("0::/docker/" + kId + "/docker/" + kFake + "\n", "/docker/" + kId);
  check_below_container("0::/docker/" + kId + "/" + kFake + "\n", "/docker/" + kId);
}

TEST_CASE("nesting: a systemd-style scope below a cgroupfs container", "[identity][cgroup][container][spoof]") {
  check_below_container("0::/docker/" + kId + "/docker-" + kFake + ".scope\n", "/docker/" + kId);
  check_below_container("0::/docker/" + kId + "/system.slice/docker-" + kFake + ".scope\n", "/docker/" + kId);
}

TEST_CASE("nesting: any sub-cgroup of a cgroupfs container", "[identity][cgroup][container][spoof]") {
  check_below_container("0::/docker/" + kId + "/sub\n", "/docker/" + kId);
  check_below_container("0::/kubepods/besteffort/pod1234-5678/" + kId + "/" + kFake + "\n",
                        "/kubepods/besteffort/pod1234-5678/" + kId);
}

TEST_CASE("nesting: on a v1 host the name=systemd path decides", "[identity][cgroup][container][spoof]") {
  // The systemd hierarchy shows the nesting; a clean-looking id on a
  // controller line does not rescue it.
  check_below_container("5:memory:/docker/" + kFake + "\n1:name=systemd:/docker/" + kId + "/docker/" + kFake + "\n",
                        "/docker/" + kId);
}

TEST_CASE("nesting seen from another cgroup namespace", "[identity][cgroup][container][spoof]") {
  check_below_container("0::/../docker-" + kId + ".scope/docker-" + kFake + ".scope\n", "docker-" + kId + ".scope");
}

TEST_CASE("the runtime's leaf patterns still name their container", "[identity][cgroup][container]") {
  auto sd = parsed("0::/system.slice/docker-" + kId + ".scope\n");
  CHECK(sd.container == kId);
  CHECK(sd.container_unknown.empty());
  CHECK(sd.delegated_to.empty());
  auto fs = parsed("0::/docker/" + kId + "\n");
  CHECK(fs.container == kId);
  CHECK(fs.container_unknown.empty());
  // The monitor next to a container is not inside it.
  auto conmon = parsed("0::/machine.slice/libpod-conmon-" + kId + ".scope\n");
  CHECK(conmon.container.empty());
  CHECK(conmon.container_unknown.empty());
}
