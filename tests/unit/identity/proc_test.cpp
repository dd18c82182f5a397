#include <catch2/catch.hpp>

#include <unistd.h>

#include <fstream>
#include <sstream>

#include "proc.hpp"

using chitty::identity::stat_start_time;
using chitty::identity::status_nspids;

TEST_CASE("start time is field 22 of /proc/PID/stat, counted after the command name", "[identity][proc]") {
  std::string stat =
      "1234 (my (weird) cmd) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 12345678 100 18446744073709551615";
  REQUIRE(stat_start_time(stat).has_value());
  CHECK(*stat_start_time(stat) == 987654);
  CHECK_FALSE(stat_start_time("1234 (cmd) S 1 2").has_value());
  CHECK_FALSE(stat_start_time("no parenthesis here").has_value());
}

TEST_CASE("start time of this process matches what /proc says", "[identity][proc]") {
  std::ifstream in("/proc/self/stat");
  std::stringstream s;
  s << in.rdbuf();
  auto t = stat_start_time(s.str());
  REQUIRE(t.has_value());
  CHECK(*t > 0);
}

TEST_CASE("NSpid lists the pid in every namespace down to the process's own", "[identity][proc]") {
  CHECK(status_nspids("Name:\tcurl\nNSpid:\t4242\t1\nUid:\t0\n") == std::vector<pid_t>{4242, 1});
  CHECK(status_nspids("NSpid:\t77\n") == std::vector<pid_t>{77});
  CHECK(status_nspids("Name:\tx\n").empty());
  std::ifstream in("/proc/self/status");
  std::stringstream s;
  s << in.rdbuf();
  auto mine = status_nspids(s.str());
  REQUIRE_FALSE(mine.empty());
  CHECK(mine.front() == getpid());
}

TEST_CASE("fdinfo of a pidfd names the pinned pid, -1 once it exited", "[identity][proc]") {
  using chitty::identity::fdinfo_pid;
  CHECK(fdinfo_pid("pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1057\nPid:\t4242\nNSpid:\t4242\n") == 4242L);
  CHECK(fdinfo_pid("Pid:\t-1\nNSpid:\t-1\n") == -1L);
  CHECK(fdinfo_pid("Pid:\t0\n") == 0L);
  CHECK_FALSE(fdinfo_pid("pos:\t0\n").has_value());
  CHECK_FALSE(fdinfo_pid("Pid:\tabc\n").has_value());
}
