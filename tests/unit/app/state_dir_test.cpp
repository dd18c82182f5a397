#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include "chitty/app/state_dir.hpp"
#include "temp_dir.hpp"

using chitty::app::StateDir;
using chitty::testing::TempDir;

TEST_CASE("the state directory is created 0700 and locked", "[app][state]") {
  TempDir dir;
  std::string path = dir / "state/nested";
  auto s = StateDir::open(path);
  REQUIRE(s.has_value());
  struct stat st {};
  REQUIRE(stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0700);
  CHECK(chitty::testing::read_file(path + "/agent.lock") == std::to_string(getpid()) + "\n");
}

TEST_CASE("a second agent cannot take a locked state directory", "[app][state]") {
  TempDir dir;
  auto first = StateDir::open(dir / "state");
  REQUIRE(first.has_value());
  auto second = StateDir::open(dir / "state");
  REQUIRE_FALSE(second.has_value());
  CHECK(second.error().message.find("in use by another chitty-agent") != std::string::npos);
  CHECK(second.error().message.find("pid " + std::to_string(getpid())) != std::string::npos);
}

TEST_CASE("the lock is released when the holder goes", "[app][state]") {
  TempDir dir;
  { auto first = StateDir::open(dir / "state"); REQUIRE(first.has_value()); }
  auto again = StateDir::open(dir / "state");
  CHECK(again.has_value());
}

TEST_CASE("a state directory others can write to is refused", "[app][state]") {
  TempDir dir;
  std::string path = dir / "open";
  REQUIRE(mkdir(path.c_str(), 0777) == 0);
  REQUIRE(chmod(path.c_str(), 0777) == 0);
  auto s = StateDir::open(path);
  REQUIRE_FALSE(s.has_value());
  CHECK(s.error().message.find("writable by group or others") != std::string::npos);
  CHECK(s.error().message.find("(mode 0777)") != std::string::npos);
}

TEST_CASE("a state path that is a file is refused", "[app][state]") {
  TempDir dir;
  dir.write("file", "x");
  auto s = StateDir::open(dir / "file");
  REQUIRE_FALSE(s.has_value());
  CHECK(s.error().message.find("not a directory") != std::string::npos);
}
