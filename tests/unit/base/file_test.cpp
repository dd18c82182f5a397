// read_file (file.hpp): the one private-file reader — its checks as a table
// of files, the sinks (growing, fixed, out of room), files larger than any
// read buffer and files that grow while read; write_file_atomically and
// fsync_directory.
#include "chitty/base/file.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <catch2/catch.hpp>

#include "temp_dir.hpp"

namespace chitty {
namespace {

using Kind = FileFailure::Kind;
using Catch::Matchers::Contains;

std::string pattern(std::size_t n) {
  std::string s(n, '\0');
  for (std::size_t i = 0; i < n; ++i) s[i] = static_cast<char>((i * 131 + i / 251) % 256);
  return s;
}

// A sink of fixed size (like the secure module's): its region never grows.
// `on_first` runs on the first ask, after the file was opened and fstat'ed.
class FixedSink final : public ReadSink {
 public:
  std::span<char> room(std::size_t size) override {
    asks.push_back(size);
    if (asks.size() == 1) {
      if (on_first) on_first();
      if (out_of_memory) return {};
      bytes.assign(size, '\xAA');
    }
    return {bytes.data(), bytes.size()};
  }
  std::vector<char> bytes;
  std::vector<std::size_t> asks;
  std::function<void()> on_first;
  bool out_of_memory = false;
};

// A sink that grows like a string, with the same hook.
class GrowingSink final : public ReadSink {
 public:
  std::span<char> room(std::size_t size) override {
    if (asks++ == 0 && on_first) on_first();
    if (bytes.size() < size) bytes.resize(size);
    return {bytes.data(), bytes.size()};
  }
  std::string bytes;
  int asks = 0;
  std::function<void()> on_first;
};

void append_to(const std::string& path, const std::string& more) {
  int fd = ::open(path.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  REQUIRE(fd >= 0);
  REQUIRE(::write(fd, more.data(), more.size()) == static_cast<ssize_t>(more.size()));
  ::close(fd);
}

}  // namespace

TEST_CASE("read_file checks what a file is before it reads it", "[base][file]") {
  testing::TempDir dir;
  dir.write("private", "secret\n", 0600);
  dir.write("group-readable", "secret\n", 0640);
  dir.write("world-writable", "secret\n", 0602);
  dir.write("empty", "", 0600);
  dir.write("short", "12345", 0600);
  dir.write("exactly-64", std::string(64, 'x'), 0600);
  dir.write("65-bytes", std::string(65, 'x'), 0600);
  REQUIRE(::symlink((dir / "private").c_str(), (dir / "link").c_str()) == 0);
  REQUIRE(::mkdir((dir / "directory").c_str(), 0700) == 0);
  REQUIRE(::mkfifo((dir / "fifo").c_str(), 0600) == 0);  // no writer: a blocking open would hang

  const FileRules any{.max_bytes = 64};
  const FileRules private_only{.max_bytes = 64, .owner_only = true};
  const FileRules not_empty{.max_bytes = 64, .min_bytes = 1};
  const FileRules key_sized{.max_bytes = 64, .min_bytes = 32};
  struct Case {
    const char* name;
    FileRules rules;
    std::optional<std::string> content;  // nullopt: refused
    Kind kind = Kind::open;
    int error = 0;
    const char* message = "";  // what message("the file") says
  };
  const Case cases[] = {
      {"missing", any, std::nullopt, Kind::open, ENOENT, "the file: No such file or directory"},
      {"link", any, std::nullopt, Kind::open, ELOOP, "the file: Too many levels of symbolic links"},
      {"directory", any, std::nullopt, Kind::not_regular, 0, "the file is not a regular file"},
      {"fifo", any, std::nullopt, Kind::not_regular, 0, "the file is not a regular file"},
      {"private", private_only, "secret\n"},
      {"group-readable", private_only, std::nullopt, Kind::not_private, 0,
       "the file is readable or writable by group or others (mode 0640); chmod 0600 it"},
      {"world-writable", private_only, std::nullopt, Kind::not_private, 0, "(mode 0602)"},
      {"group-readable", any, "secret\n"},  // only refused when asked to be private
      {"empty", any, ""},
      {"empty", not_empty, std::nullopt, Kind::too_small, 0, "the file is empty"},
      {"short", key_sized, std::nullopt, Kind::too_small, 0, "the file holds 5 bytes, fewer than 32"},
      {"exactly-64", any, std::string(64, 'x')},
      {"65-bytes", any, std::nullopt, Kind::too_large, 0, "the file is larger than 64B"},
  };
  for (const auto& c : cases) {
    INFO(c.name);
    auto got = read_file(dir / c.name, c.rules);
    if (c.content) {
      REQUIRE(got);
      CHECK(*got == *c.content);
      continue;
    }
    REQUIRE_FALSE(got);
    CHECK(got.error().kind == c.kind);
    CHECK(got.error().error == c.error);
    CHECK(got.error().system_error() == (c.error != 0));
    CHECK_THAT(got.error().message("the file"), Contains(c.message));
  }
}

TEST_CASE("read_file refuses a file owned by someone else when asked", "[base][file]") {
  testing::TempDir dir;
  dir.write("mine", "token", 0600);
  const FileRules owned{.max_bytes = 64, .owned_by_agent = true};
  CHECK(read_file(dir / "mine", owned));  // the agent's own
  if (::geteuid() != 0) {
    WARN("skipped the foreign-owner case: it needs root to chown a file");
    return;
  }
  REQUIRE(::chown((dir / "mine").c_str(), 65534, 65534) == 0);
  auto got = read_file(dir / "mine", owned);
  REQUIRE_FALSE(got);
  CHECK(got.error().kind == Kind::foreign_owner);
  CHECK(got.error().uid == 65534);
  CHECK_THAT(got.error().message("the file"), Contains("the file belongs to uid 65534, not to the agent's uid"));
  CHECK(read_file(dir / "mine", FileRules{.max_bytes = 64}));  // without the rule it is read
}

TEST_CASE("read_file reads files larger than any read buffer, and /proc files that claim 0 bytes", "[base][file]") {
  testing::TempDir dir;
  const std::string big = pattern(3 * 65536 + 17);
  dir.write("big", big);
  auto whole = read_file(dir / "big", FileRules{.max_bytes = big.size()});
  REQUIRE(whole);
  CHECK(*whole == big);
  auto capped = read_file(dir / "big", FileRules{.max_bytes = big.size() - 1});
  REQUIRE_FALSE(capped);
  CHECK(capped.error().kind == Kind::too_large);

  auto status = read_file("/proc/self/status", FileRules{.max_bytes = 64 * 1024});
  REQUIRE(status);
  CHECK(status->starts_with("Name:"));
  CHECK(status->find("\nThreads:") != std::string::npos);  // all of it, though fstat said 0 bytes
  CHECK(status->ends_with("\n"));
  auto stat = read_file("/proc/self/stat", FileRules{.max_bytes = 16});
  REQUIRE_FALSE(stat);  // the cap holds for what is read, whatever fstat says
  CHECK(stat.error().kind == Kind::too_large);
}

TEST_CASE("a fixed destination receives exactly the file's bytes, and is asked once for size + 1", "[base][file]") {
  testing::TempDir dir;
  const std::string bytes = pattern(100 * 1024);  // every byte value, \0 included
  dir.write("secret", bytes);
  FixedSink sink;
  auto got = read_file(dir / "secret", FileRules{.max_bytes = 1 << 20}, sink);
  REQUIRE(got);
  CHECK(*got == bytes.size());
  REQUIRE(sink.asks.size() == 1);
  CHECK(sink.asks[0] == bytes.size() + 1);
  CHECK(std::string(sink.bytes.data(), *got) == bytes);
  CHECK(sink.bytes[*got] == '\xAA');  // the extra byte is left alone

  dir.write("empty", "");
  FixedSink none;
  auto zero = read_file(dir / "empty", FileRules{.max_bytes = 16}, none);
  REQUIRE(zero);
  CHECK(*zero == 0);

  FixedSink oom;
  oom.out_of_memory = true;
  auto refused = read_file(dir / "secret", FileRules{.max_bytes = 1 << 20}, oom);
  REQUIRE_FALSE(refused);
  CHECK(refused.error().kind == Kind::no_room);
}

TEST_CASE("a file that grows while it is read: a fixed destination says so, a growing one takes it", "[base][file]") {
  testing::TempDir dir;
  const std::string path = dir / "growing";
  dir.write("growing", "0123456789");
  const FileRules rules{.max_bytes = 1 << 20};

  FixedSink fixed;
  fixed.on_first = [&] { append_to(path, "more"); };
  auto got = read_file(path, rules, fixed);
  REQUIRE_FALSE(got);
  CHECK(got.error().kind == Kind::changed);
  CHECK(got.error().message("the file") == "the file changed while it was read");

  GrowingSink growing;
  growing.on_first = [&] { append_to(path, pattern(10000)); };
  auto all = read_file(path, rules, growing);
  REQUIRE(all);
  CHECK(std::string(growing.bytes.data(), *all) == "0123456789more" + pattern(10000));

  GrowingSink past_cap;
  past_cap.on_first = [&] { append_to(path, pattern(100)); };
  auto capped = read_file(path, FileRules{.max_bytes = 10014 + 50}, past_cap);
  REQUIRE_FALSE(capped);
  CHECK(capped.error().kind == Kind::too_large);
}

TEST_CASE("write_file_atomically replaces a file whole, privately, and says how far it got", "[base][file]") {
  testing::TempDir dir;
  const std::string path = dir / "state.json";
  bool replaced = false;
  REQUIRE(write_file_atomically(path, "first\n", &replaced));
  CHECK(replaced);
  REQUIRE(write_file_atomically(path, pattern(200 * 1024)));
  CHECK(testing::read_file(path) == pattern(200 * 1024));
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0600);
  CHECK(::access((path + ".tmp").c_str(), F_OK) != 0);  // nothing left beside it

  auto no_dir = write_file_atomically(dir / "missing/state.json", "x", &replaced);
  REQUIRE_FALSE(no_dir);
  CHECK_FALSE(replaced);
  CHECK_THAT(no_dir.error().message, Contains("cannot write " + dir / "missing/state.json.tmp") &&
                                         Contains("No such file or directory"));

  // A symlink planted at the temporary name is not followed.
  dir.write("elsewhere", "untouched");
  REQUIRE(::symlink((dir / "elsewhere").c_str(), (path + ".tmp").c_str()) == 0);
  auto planted = write_file_atomically(path, "x");
  REQUIRE_FALSE(planted);
  CHECK_THAT(planted.error().message, Contains("cannot write " + path + ".tmp"));
  CHECK(testing::read_file(dir / "elsewhere") == "untouched");
  CHECK(testing::read_file(path) == pattern(200 * 1024));
  REQUIRE(::unlink((path + ".tmp").c_str()) == 0);

  REQUIRE(::mkdir((dir / "a-directory").c_str(), 0700) == 0);
  REQUIRE(::mkdir((dir / "a-directory/inside").c_str(), 0700) == 0);
  auto onto_dir = write_file_atomically(dir / "a-directory", "x", &replaced);
  REQUIRE_FALSE(onto_dir);
  CHECK_FALSE(replaced);
  CHECK_THAT(onto_dir.error().message, Contains("cannot rename " + dir / "a-directory.tmp to " + dir / "a-directory"));
}

TEST_CASE("fsync_directory syncs a directory and names one it cannot open", "[base][file]") {
  testing::TempDir dir;
  CHECK(fsync_directory(dir.path()));
  auto missing = fsync_directory(dir / "missing");
  REQUIRE_FALSE(missing);
  CHECK_THAT(missing.error().message, Contains("cannot open " + dir / "missing"));
}

}  // namespace chitty
