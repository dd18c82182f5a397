// The audit chain's key: HMAC-SHA-256 against RFC 4231's vectors (the keyed
// state is precomputed once, so a MAC must not depend on the ones before),
// and the key file's rules; read_secret_file, the reader of every secret
// file (the key's among them).
#include <catch2/catch.hpp>

#include <sys/stat.h>

#include <fstream>
#include <string>

#include "chitty/secure/arena.hpp"
#include "chitty/secure/mac_key.hpp"
#include "chitty/secure/secret_file.hpp"
#include "temp_dir.hpp"

using chitty::secure::MacKey;
using chitty::testing::TempDir;

namespace {

chitty::secure::Arena& arena() {
  static std::unique_ptr<chitty::secure::Arena> a = [] {
    chitty::secure::ArenaOptions o;
    o.capacity = 1 << 16;
    return std::move(*chitty::secure::Arena::create(o));
  }();
  return *a;
}

void write_file(const std::string& path, const std::string& text, mode_t mode) {
  {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out << text;
  }
  REQUIRE(::chmod(path.c_str(), mode) == 0);
}

}  // namespace

TEST_CASE("HMAC-SHA-256 matches RFC 4231, call after call", "[secure][mac]") {
  // Test cases 6 and 7: a 131-byte key (longer than SHA-256's block).
  std::string k(131, '\xaa');
  auto key = MacKey::from_bytes(arena(), k);
  REQUIRE(key);
  std::string d6 = "Test Using Larger Than Block-Size Key - Hash Key First";
  std::string d7 =
      "This is a test using a larger than block-size key and a larger than block-size data. The key needs to be "
      "hashed before being used by the HMAC algorithm.";
  const char* m6 = "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54";
  const char* m7 = "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2";
  CHECK(chitty::secure::to_hex((*key)->mac(d6)) == m6);
  CHECK(chitty::secure::to_hex((*key)->mac(d7)) == m7);
  CHECK(chitty::secure::to_hex((*key)->mac(d6)) == m6);  // the keyed state is not consumed
  // A domain prefix is MAC'd as if written before the data.
  CHECK(chitty::secure::to_hex((*key)->mac(d7.substr(0, 40), d7.substr(40))) == m7);
  CHECK((*key)->mac("a", d6) != (*key)->mac(d6));

  MacKey::Mac back{};
  REQUIRE(chitty::secure::from_hex(m7, back));
  CHECK(back == (*key)->mac(d7));
  CHECK_FALSE(chitty::secure::from_hex("60e4", back));
  CHECK_FALSE(chitty::secure::from_hex(std::string(64, 'g'), back));
}

TEST_CASE("a chain key needs 32 bytes, and a file only the agent can read", "[secure][mac]") {
  CHECK_FALSE(MacKey::from_bytes(arena(), std::string(31, 'k')));
  TempDir dir;
  std::string path = dir / "chain.key";

  write_file(path, std::string(40, 'k') + "\n", 0640);
  auto open = MacKey::from_file(arena(), path);
  REQUIRE_FALSE(open);
  CHECK(open.error().message.find("0640") != std::string::npos);

  write_file(path, std::string(40, 'k') + "\n", 0600);
  auto key = MacKey::from_file(arena(), path);
  REQUIRE(key);
  auto same = MacKey::from_bytes(arena(), std::string(40, 'k'));  // the trailing newline is not part of the key
  CHECK((*key)->mac("x") == (*same)->mac("x"));

  write_file(path, "short\n", 0600);
  auto short_key = MacKey::from_file(arena(), path);
  REQUIRE_FALSE(short_key);
  CHECK(short_key.error().message == "chain key file " + path + " must hold 32 to 4096 bytes");

  auto missing = MacKey::from_file(arena(), dir / "missing.key");
  REQUIRE_FALSE(missing);
  CHECK(missing.error().message == "chain key file " + (dir / "missing.key") + ": No such file or directory");
}

TEST_CASE("a generated key file is new, private and 32 random bytes in hex", "[secure][mac]") {
  TempDir dir;
  std::string path = dir / "generated.key";
  REQUIRE(MacKey::generate_file(path));
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  std::ifstream in(path);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  REQUIRE(text.size() == 65);
  CHECK(text.back() == '\n');
  CHECK(text.find_first_not_of("0123456789abcdef") == 64);
  CHECK(MacKey::from_file(arena(), path));
  CHECK_FALSE(MacKey::generate_file(path));  // never overwrites a key

  std::string other = dir / "other.key";
  REQUIRE(MacKey::generate_file(other));
  std::ifstream in2(other);
  std::string text2((std::istreambuf_iterator<char>(in2)), std::istreambuf_iterator<char>());
  CHECK(text2 != text);
}

TEST_CASE("a secret file goes straight into locked memory, exactly its bytes", "[secure][secret_file]") {
  chitty::secure::ArenaOptions o;
  o.capacity = 1 << 20;
  auto fresh = chitty::secure::Arena::create(o);
  REQUIRE(fresh);
  chitty::secure::Arena& a = **fresh;
  TempDir dir;
  std::string bytes(60000, '\0');  // beyond any one read buffer; every byte value, \0 included
  for (std::size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<char>(i * 7 % 256);
  write_file(dir / "value", bytes, 0600);
  const chitty::FileRules rules{.max_bytes = chitty::secure::Arena::kMaxBlock - 1, .owner_only = true};
  {
    auto got = chitty::secure::read_secret_file(a, dir / "value", rules);
    REQUIRE(got);
    CHECK(got->size() == bytes.size());
    CHECK(std::string_view(got->data(), got->size()) == bytes);
    CHECK(a.contains(got->data()));
    CHECK(a.used() > 0);
  }
  CHECK(a.used() == 0);  // released (and wiped) with the buffer

  write_file(dir / "empty", "", 0600);
  {
    auto empty = chitty::secure::read_secret_file(a, dir / "empty", rules);
    REQUIRE(empty);
    CHECK(empty->size() == 0);
  }

  // The file's size + 1 must fit one block: a file of kMaxBlock bytes has no room.
  write_file(dir / "huge", std::string(chitty::secure::Arena::kMaxBlock, 'x'), 0600);
  auto huge = chitty::secure::read_secret_file(
      a, dir / "huge", chitty::FileRules{.max_bytes = chitty::secure::Arena::kMaxBlock});
  REQUIRE_FALSE(huge);
  CHECK(huge.error().kind == chitty::FileFailure::Kind::no_room);
  CHECK(chitty::secure::secret_file_message(huge.error(), "token file T") == "no locked memory to read token file T");
  CHECK(a.used() == 0);

  write_file(dir / "shared", "s3cret", 0644);
  auto shared = chitty::secure::read_secret_file(a, dir / "shared", rules);
  REQUIRE_FALSE(shared);
  CHECK(chitty::secure::secret_file_message(shared.error(), "token file T") ==
        "token file T is readable or writable by group or others (mode 0644); chmod 0600 it (or give it with "
        "LoadCredential=)");
  CHECK(a.used() == 0);
}
