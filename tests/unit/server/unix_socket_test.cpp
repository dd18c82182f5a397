#include <catch2/catch.hpp>

#include <grp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>

#include "chitty/server/unix_socket.hpp"
#include "temp_dir.hpp"
#include "uds_client.hpp"

using chitty::server::create_listening_socket;
using chitty::server::PathState;
using chitty::server::probe_socket_path;
using chitty::server::SocketSpec;
using chitty::testing::TempDir;

namespace {

struct stat stat_of(const std::string& path) {
  struct stat st {};
  REQUIRE(lstat(path.c_str(), &st) == 0);
  return st;
}

// Leaves a socket file behind with nobody listening: what a crashed agent leaves.
void make_stale_socket(const std::string& path) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  close(fd);
}

}  // namespace

TEST_CASE("the socket gets the configured mode", "[server][socket]") {
  TempDir dir;
  for (std::uint32_t mode : {0600u, 0660u, 0666u, 0620u}) {
    INFO("mode " << std::oct << mode);
    std::string path = dir / ("s" + std::to_string(mode) + ".sock");
    auto s = create_listening_socket(SocketSpec{path, mode, "", 16});
    REQUIRE(s.has_value());
    CHECK(S_ISSOCK(stat_of(path).st_mode));
    CHECK((stat_of(path).st_mode & 07777) == mode);
    CHECK(chitty::testing::can_connect(path));
  }
}

TEST_CASE("the socket gets the configured group, by name or number", "[server][socket]") {
  if (geteuid() != 0) {
    WARN("skipped: " "changing a file's group to one we are not a member of needs root");
    return;
  }
  TempDir dir;
  struct group* daemon = getgrnam("daemon");
  REQUIRE(daemon != nullptr);
  auto by_name = create_listening_socket(SocketSpec{dir / "a.sock", 0660, "daemon", 16});
  REQUIRE(by_name.has_value());
  CHECK(stat_of(dir / "a.sock").st_gid == daemon->gr_gid);
  auto by_number = create_listening_socket(SocketSpec{dir / "b.sock", 0660, std::to_string(daemon->gr_gid), 16});
  REQUIRE(by_number.has_value());
  CHECK(stat_of(dir / "b.sock").st_gid == daemon->gr_gid);
}

TEST_CASE("an unknown group is refused before anything is created", "[server][socket]") {
  TempDir dir;
  auto s = create_listening_socket(SocketSpec{dir / "a.sock", 0660, "no-such-group-chitty", 16});
  REQUIRE_FALSE(s.has_value());
  CHECK(s.error().message.find("no-such-group-chitty") != std::string::npos);
  struct stat st {};
  CHECK(lstat((dir / "a.sock").c_str(), &st) != 0);
}

TEST_CASE("a live listener is never displaced", "[server][socket]") {
  TempDir dir;
  std::string path = dir / "agent.sock";
  auto first = create_listening_socket(SocketSpec{path, 0660, "", 16});
  REQUIRE(first.has_value());
  ino_t ino = stat_of(path).st_ino;
  CHECK(probe_socket_path(path) == PathState::live_socket);
  auto second = create_listening_socket(SocketSpec{path, 0660, "", 16});
  REQUIRE_FALSE(second.has_value());
  CHECK(second.error().message.find("another chitty-agent is already serving on " + path) != std::string::npos);
  CHECK(stat_of(path).st_ino == ino);
  CHECK(chitty::testing::can_connect(path));
}

TEST_CASE("a live listener that is not an agent is not displaced either", "[server][socket]") {
  TempDir dir;
  std::string path = dir / "agent.sock";
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(listen(fd, 4) == 0);
  auto s = create_listening_socket(SocketSpec{path, 0660, "", 16});
  REQUIRE_FALSE(s.has_value());
  CHECK(s.error().message.find("another process is already serving on " + path) != std::string::npos);
  close(fd);
}

TEST_CASE("a socket directory others could write to is refused", "[server][socket]") {
  TempDir dir;
  std::string open_dir = dir / "open";
  REQUIRE(mkdir(open_dir.c_str(), 0777) == 0);
  REQUIRE(chmod(open_dir.c_str(), 0777) == 0);
  auto s = create_listening_socket(SocketSpec{open_dir + "/agent.sock", 0660, "", 16});
  REQUIRE_FALSE(s.has_value());
  CHECK(s.error().message.find("writable by group or others") != std::string::npos);

  // Sticky, like /tmp: others cannot replace what we create there.
  REQUIRE(chmod(open_dir.c_str(), 01777) == 0);
  CHECK(create_listening_socket(SocketSpec{open_dir + "/agent.sock", 0660, "", 16}).has_value());

  if (geteuid() == 0) {
    std::string foreign = dir / "foreign";
    REQUIRE(mkdir(foreign.c_str(), 0755) == 0);
    REQUIRE(chown(foreign.c_str(), 65534, 65534) == 0);
    auto f = create_listening_socket(SocketSpec{foreign + "/agent.sock", 0660, "", 16});
    REQUIRE_FALSE(f.has_value());
    CHECK(f.error().message.find("belongs to uid 65534") != std::string::npos);
  }
}

TEST_CASE("the lock is released with the socket file", "[server][socket]") {
  TempDir dir;
  std::string path = dir / "agent.sock";
  {
    auto first = create_listening_socket(SocketSpec{path, 0660, "", 16});
    REQUIRE(first.has_value());
    first->remove();
  }
  CHECK(create_listening_socket(SocketSpec{path, 0660, "", 16}).has_value());
}

TEST_CASE("a stale socket is replaced", "[server][socket]") {
  TempDir dir;
  std::string path = dir / "agent.sock";
  make_stale_socket(path);
  CHECK(probe_socket_path(path) == PathState::stale_socket);
  ino_t stale = stat_of(path).st_ino;
  auto s = create_listening_socket(SocketSpec{path, 0660, "", 16});
  REQUIRE(s.has_value());
  CHECK(stat_of(path).st_ino != stale);
  CHECK(chitty::testing::can_connect(path));
}

TEST_CASE("a path that is not a socket is left alone", "[server][socket]") {
  TempDir dir;
  dir.write("agent.sock", "precious data");
  CHECK(probe_socket_path(dir / "agent.sock") == PathState::not_a_socket);
  auto s = create_listening_socket(SocketSpec{dir / "agent.sock", 0660, "", 16});
  REQUIRE_FALSE(s.has_value());
  CHECK(s.error().message.find("not a socket") != std::string::npos);
  CHECK(chitty::testing::read_file(dir / "agent.sock") == "precious data");
}

TEST_CASE("no temporary files are left behind", "[server][socket]") {
  TempDir dir;
  auto s = create_listening_socket(SocketSpec{dir / "agent.sock", 0660, "", 16});
  REQUIRE(s.has_value());
  dir.write("x", "");
  int entries = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    (void)e;
    ++entries;
  }
  CHECK(entries == 3);  // agent.sock, agent.sock.lock and x
}

TEST_CASE("missing parent directories are created", "[server][socket]") {
  TempDir dir;
  std::string path = dir / "run/chitty/agent.sock";
  auto s = create_listening_socket(SocketSpec{path, 0660, "", 16});
  REQUIRE(s.has_value());
  CHECK(chitty::testing::can_connect(path));
}

TEST_CASE("a path longer than sun_path allows is refused with the numbers", "[server][socket]") {
  TempDir dir;
  std::string path = dir.path() + "/" + std::string(120, 'x');
  auto s = create_listening_socket(SocketSpec{path, 0660, "", 16});
  REQUIRE_FALSE(s.has_value());
  CHECK(s.error().message.find("at most 107") != std::string::npos);
}

TEST_CASE("remove() unlinks only the socket this process created", "[server][socket]") {
  TempDir dir;
  std::string path = dir / "agent.sock";
  {
    auto s = create_listening_socket(SocketSpec{path, 0660, "", 16});
    REQUIRE(s.has_value());
    s->remove();
    struct stat st {};
    CHECK(lstat(path.c_str(), &st) != 0);
  }
  {
    auto mine = create_listening_socket(SocketSpec{path, 0660, "", 16});
    REQUIRE(mine.has_value());
    // Someone else's socket now sits at the path.
    REQUIRE(unlink(path.c_str()) == 0);
    make_stale_socket(path);
    ino_t theirs = stat_of(path).st_ino;
    mine->remove();
    CHECK(stat_of(path).st_ino == theirs);
  }
}

TEST_CASE("probe_socket_path on a missing path", "[server][socket]") {
  TempDir dir;
  CHECK(probe_socket_path(dir / "nothing") == PathState::absent);
}
