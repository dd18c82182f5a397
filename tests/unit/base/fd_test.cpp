// UniqueFd (fd.hpp): one owner per descriptor, closed exactly once; write_all;
// and format_mode (text.hpp), the one way a file mode is printed.
#include "chitty/base/fd.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <utility>

#include <catch2/catch.hpp>

#include "chitty/base/text.hpp"
#include "temp_dir.hpp"

namespace chitty {
namespace {

bool is_open(int fd) { return fd >= 0 && ::fcntl(fd, F_GETFD) != -1; }

int open_null() {
  int fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  REQUIRE(fd >= 0);
  return fd;
}

}  // namespace

TEST_CASE("a UniqueFd closes its descriptor when it dies, and only then", "[base][fd]") {
  int raw = open_null();
  {
    UniqueFd fd(raw);
    CHECK(fd);
    CHECK(fd.get() == raw);
    CHECK(is_open(raw));
  }
  CHECK_FALSE(is_open(raw));

  UniqueFd empty;
  CHECK_FALSE(empty);
  CHECK(empty.get() == -1);
  UniqueFd failed(::open("/nonexistent/chitty", O_RDONLY));  // open's -1: empty, nothing closed
  CHECK_FALSE(failed);
  CHECK(failed.get() == -1);
}

TEST_CASE("release gives the descriptor up; reset closes the old one and keeps errno", "[base][fd]") {
  int a = open_null();
  int b = open_null();
  UniqueFd fd(a);
  int given = fd.release();
  CHECK(given == a);
  CHECK_FALSE(fd);
  CHECK(is_open(a));  // the caller owns it now

  fd.reset(a);
  CHECK(fd.get() == a);
  errno = ENOSPC;
  fd.reset(b);  // closes a
  CHECK(errno == ENOSPC);
  CHECK_FALSE(is_open(a));
  CHECK(is_open(b));
  fd.reset();
  CHECK_FALSE(is_open(b));
  CHECK_FALSE(fd);
}

TEST_CASE("a UniqueFd moves: the target closes what it held, the source is empty", "[base][fd]") {
  int a = open_null();
  int b = open_null();
  UniqueFd first(a);
  UniqueFd second(std::move(first));
  CHECK_FALSE(first);  // NOLINT(bugprone-use-after-move): moved-from is empty by contract
  CHECK(second.get() == a);

  UniqueFd third(b);
  third = std::move(second);
  CHECK_FALSE(is_open(b));
  CHECK(third.get() == a);
  CHECK(is_open(a));
  auto& self = third;
  third = std::move(self);  // a self-move keeps the descriptor
  CHECK(third.get() == a);
  CHECK(is_open(a));
}

TEST_CASE("write_all writes everything, or fails with errno", "[base][fd]") {
  testing::TempDir dir;
  std::string path = dir / "out";
  std::string big(300 * 1024, '\0');
  for (std::size_t i = 0; i < big.size(); ++i) big[i] = static_cast<char>(i * 7919 % 251);
  {
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600));
    REQUIRE(fd);
    CHECK(write_all(fd.get(), big));
    CHECK(write_all(fd.get(), ""));
  }
  CHECK(testing::read_file(path) == big);

  UniqueFd read_only(::open(path.c_str(), O_RDONLY | O_CLOEXEC));
  REQUIRE(read_only);
  errno = 0;
  CHECK_FALSE(write_all(read_only.get(), "x"));
  CHECK(errno == EBADF);
}

TEST_CASE("format_mode prints four octal digits, without the file type", "[base][text]") {
  struct Case {
    std::uint32_t mode;
    const char* text;
  };
  const Case cases[] = {
      {0640, "0640"}, {0600, "0600"}, {0, "0000"},       {0755, "0755"},           {07, "0007"},
      {04755, "4755"}, {01777, "1777"}, {07777, "7777"}, {S_IFREG | 0644, "0644"}, {S_IFDIR | 02770, "2770"},
  };
  for (const auto& c : cases) {
    INFO(c.text);
    CHECK(format_mode(c.mode) == c.text);
  }
}

}  // namespace chitty
