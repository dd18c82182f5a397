// What we ship besides the binary: the systemd unit and the packaged config.
#include <catch2/catch.hpp>

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
  unit.replace(unit.find("/usr/bin/chitty-agent"), 21, chitty::testing::agent_binary());
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
