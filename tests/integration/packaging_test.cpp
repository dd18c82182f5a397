// What we ship besides the binary: the systemd unit and the packaged config.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "process.hpp"

using chitty::testing::TempDir;

namespace {

std::string source_root() {
  const char* root = std::getenv("CHITTY_SOURCE_ROOT");
  REQUIRE(root != nullptr);
  return root;
}

// The unit with ExecStart pointing at the binary under test (verify checks
// that it exists and is executable).
std::string unit_under_test(const TempDir& dir) {
  std::string unit = chitty::testing::read_file(source_root() + "/systemd/chitty-agent.service");
  REQUIRE(unit.find("ExecStart=/usr/bin/chitty-agent") != std::string::npos);
  for (auto at = unit.find("/usr/bin/chitty-agent"); at != std::string::npos; at = unit.find("/usr/bin/chitty-agent")) {
    unit.replace(at, 21, chitty::testing::agent_binary());
  }
  dir.write("chitty-agent.service", unit);
  return dir / "chitty-agent.service";
}

}  // namespace

TEST_CASE("systemd-analyze verify accepts the units without a warning", "[integration][packaging]") {
  TempDir dir;
  std::string service = unit_under_test(dir);
  dir.write("chitty-agent.socket", chitty::testing::read_file(source_root() + "/systemd/chitty-agent.socket"));
  auto r = chitty::testing::run({"systemd-analyze", "verify", "--man=no", service, dir / "chitty-agent.socket"});
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.err.empty());
  std::string unit = chitty::testing::read_file(service);
  CHECK(unit.find("Type=notify\n") != std::string::npos);
  CHECK(unit.find("ExecReload=/bin/kill -HUP $MAINPID") != std::string::npos);
  CHECK(unit.find("WatchdogSec=") != std::string::npos);
  // A configuration that does not load stops the start before the agent runs.
  CHECK(unit.find("ExecStartPre=" + chitty::testing::agent_binary() + " --check-config /etc/chitty-agent/agent.toml\n") !=
        std::string::npos);
  // No capability: exe selectors match only the agent's own uid (docs/systemd.md).
  CHECK(unit.find("\nCapabilityBoundingSet=\n") != std::string::npos);
  CHECK(unit.find("CAP_SYS_PTRACE\n") == std::string::npos);
}

TEST_CASE("sysusers.d and tmpfiles.d make the user and the directories the unit expects",
          "[integration][packaging]") {
  if (geteuid() != 0) {
    WARN("skipped: systemd-tmpfiles sets owners only as root");
    return;
  }
  TempDir root;
  auto mkdir_p = [](const std::string& p) { REQUIRE(chitty::testing::run({"mkdir", "-p", p}).exit_code == 0); };
  mkdir_p(root / "etc");
  root.write("etc/passwd", "root:x:0:0:root:/root:/bin/sh\n", 0644);
  root.write("etc/group", "root:x:0:\n", 0644);
  auto users = chitty::testing::run(
      {"systemd-sysusers", "--root=" + root.path(), source_root() + "/packaging/sysusers.d-chitty-agent.conf"});
  INFO(users.err);
  REQUIRE(users.exit_code == 0);
  auto dirs = chitty::testing::run(
      {"systemd-tmpfiles", "--root=" + root.path(), "--create", source_root() + "/packaging/tmpfiles.d-chitty-agent.conf"});
  INFO(dirs.err);
  REQUIRE(dirs.exit_code == 0);
  CHECK(dirs.err.empty());
  const std::string passwd = chitty::testing::read_file(root / "etc/passwd");
  const std::string group = chitty::testing::read_file(root / "etc/group");
  auto id_of = [](const std::string& table, const std::string& name) {
    auto at = table.find("\n" + name + ":x:");
    REQUIRE(at != std::string::npos);
    return static_cast<unsigned>(std::stoul(table.substr(at + name.size() + 4)));
  };
  const unsigned agent_uid = id_of(passwd, "chitty-agent");
  const unsigned chitty_gid = id_of(group, "chitty");
  struct stat st {};
  REQUIRE(stat((root / "run/chitty-agent").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0755);
  CHECK(st.st_uid == agent_uid);
  CHECK(st.st_gid == chitty_gid);
  REQUIRE(stat((root / "var/lib/chitty-agent").c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0700);
  CHECK(st.st_uid == agent_uid);
  CHECK(st.st_gid == chitty_gid);
  // The unit runs as that user and group, in those directories.
  std::string unit = chitty::testing::read_file(source_root() + "/systemd/chitty-agent.service");
  CHECK(unit.find("\nUser=chitty-agent\n") != std::string::npos);
  CHECK(unit.find("\nGroup=chitty\n") != std::string::npos);
  CHECK(unit.find("\nRuntimeDirectory=chitty-agent\n") != std::string::npos);
  CHECK(unit.find("\nStateDirectory=chitty-agent\n") != std::string::npos);
}

TEST_CASE("the unit's exposure stays at or below 2.0 (systemd-analyze security)", "[integration][packaging]") {
  TempDir dir;
  auto r = chitty::testing::run(
      {"systemd-analyze", "security", "--offline=true", "--threshold=20", "--no-pager", unit_under_test(dir)});
  INFO(r.out);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("Overall exposure level for chitty-agent.service") != std::string::npos);
}

TEST_CASE("the packaged configuration is valid", "[integration][packaging]") {
  auto r = chitty::testing::run(
      {chitty::testing::agent_binary(), "--check-config", source_root() + "/packaging/agent.toml"});
  INFO(r.err);
  CHECK(r.exit_code == 0);
}

TEST_CASE("--check-config warns about exe selectors the process cannot serve (no CAP_SYS_PTRACE)",
          "[integration][packaging]") {
  if (geteuid() != 0) {
    WARN("skipped: needs root to run with and without CAP_SYS_PTRACE");
    return;
  }
  TempDir dir;
  dir.write("agent.toml",
            "[[service]]\nname = \"billing\"\nexe = \"/usr/bin/billing\"\nallow = []\n"
            "[[service]]\nname = \"own\"\nuid = 0\nexe = \"/usr/bin/own\"\nallow = []\n"
            "[[service]]\nname = \"by-unit\"\nunit = \"billing.service\"\nallow = []\n");
  const std::string config = dir / "agent.toml";
  // With every capability root has: executables of other users are readable.
  auto with = chitty::testing::run({chitty::testing::agent_binary(), "--check-config", config});
  INFO(with.err);
  CHECK(with.exit_code == 0);
  CHECK(with.err.find("warning:") == std::string::npos);
  // As the shipped unit runs it (no CAP_SYS_PTRACE): a warning for the one
  // service whose exe selector cannot match other users' callers; still valid.
  auto without = chitty::testing::run({"setpriv", "--bounding-set=-sys_ptrace", "--inh-caps=-sys_ptrace",
                                       chitty::testing::agent_binary(), "--check-config", config});
  INFO(without.err);
  CHECK(without.exit_code == 0);
  CHECK(without.err.find("warning: service \"billing\" selects by exe = \"/usr/bin/billing\"") != std::string::npos);
  CHECK(without.err.find("lacks CAP_SYS_PTRACE") != std::string::npos);
  CHECK(without.err.find("service \"own\"") == std::string::npos);  // its callers run as the agent's uid
  CHECK(without.err.find("by-unit") == std::string::npos);
}
