// systemd's LoadCredential= addresses: what is recognised as the helper's
// request, who may make it, and the identity it attests.
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <string>

#include "chitty/identity/load_credential.hpp"
#include "temp_dir.hpp"

using chitty::identity::abstract_peer_name;
using chitty::identity::credential_helper_refusal;
using chitty::identity::credential_identity;
using chitty::identity::Fact;
using chitty::identity::Identity;
using chitty::identity::Origin;
using chitty::identity::parse_credential_address;
using chitty::testing::TempDir;

TEST_CASE("systemd's helper address is parsed into unit and credential ID", "[load_credential]") {
  // The man page's example, and the shortest random part systemd can print.
  auto r = parse_credential_address("adf9d86b6eda275e/unit/foobar.service/credx");
  REQUIRE(r);
  CHECK(r->unit == "foobar.service");
  CHECK(r->id == "credx");
  r = parse_credential_address("0/unit/app@blue.service/db.password-2");
  REQUIRE(r);
  CHECK(r->unit == "app@blue.service");
  CHECK(r->id == "db.password-2");
  CHECK(parse_credential_address("1/unit/web.socket/tls_key"));
  CHECK(parse_credential_address("1/unit/data.mount/key"));
  CHECK(parse_credential_address("1/unit/cryptswap.swap/key"));
  // systemd allows spaces in credential IDs (fdname_is_valid).
  r = parse_credential_address("1/unit/app.service/db password");
  REQUIRE(r);
  CHECK(r->id == "db password");
}

TEST_CASE("the helper's shape is recognised even when the rest does not parse", "[load_credential]") {
  using chitty::identity::credential_address_parts;
  using chitty::identity::is_credential_address;
  CHECK(is_credential_address("5eed/unit/app.service/id"));
  CHECK(is_credential_address("5eed/unit/bad$unit/id"));  // answered as the helper: refused, never as HTTP
  CHECK(is_credential_address("5eed/unit/"));
  CHECK_FALSE(is_credential_address("5eed/units/app.service/id"));
  CHECK_FALSE(is_credential_address("my-client"));
  CHECK_FALSE(is_credential_address(""));
  auto parts = credential_address_parts("5eed/unit/bad$unit/some/id");
  CHECK(parts.unit == "bad$unit");
  CHECK(parts.id == "some/id");
  parts = credential_address_parts("5eed/unit/app.service");
  CHECK(parts.unit == "app.service");
  CHECK(parts.id.empty());
}

TEST_CASE("anything but exactly the helper's form is not a credential request", "[load_credential]") {
  for (std::string bad : {
           "",                                              // unnamed
           "/unit/app.service/id",                          // no random part
           "ADF9/unit/app.service/id",                      // upper-case hex: systemd prints lower
           "12345678901234567/unit/app.service/id",         // 17 digits: more than a u64
           "12g4/unit/app.service/id",                      // not hex
           "1234/units/app.service/id",                     // not /unit/
           "1234/unit/app.service",                         // no ID
           "1234/unit/app.service/",                        // empty ID
           "1234/unit/app.service/a/b",                     // '/' in the ID
           "1234/unit/app.service/a:b",                     // ':' in the ID (not an fd name)
           "1234/unit/app.service/..",                      // not a file name
           "1234/unit/app.timer/id",                        // timers have no credentials
           "1234/unit/app.target/id",                       // nor targets
           "1234/unit/.service/id",                         // empty prefix
           "1234/unit/@x.service/id",                       // template without a name
           "1234/unit/a@b@c.service/id",                    // two '@'
           "1234/unit/app.service/a\tb",                    // a control character
           "1234/unit/app$.service/id",                     // invalid character
           "1234/unit//id",                                 // empty unit
       }) {
    INFO(bad);
    CHECK_FALSE(parse_credential_address(bad));
  }
  CHECK_FALSE(parse_credential_address(std::string("1234/unit/app.service/i\0d", 25)));
  CHECK_FALSE(parse_credential_address("1234/unit/" + std::string(252, 'a') + ".service/id"));  // 260 > 255
  CHECK_FALSE(parse_credential_address("1234/unit/app.service/" + std::string(256, 'x')));
}

namespace {

// A live process of `uid` in system unit `unit` (on the host, no user
// manager, no container).
Identity helper_in(uid_t uid, const Fact<std::string>& unit) {
  Identity h;
  h.raw_uid = uid;
  h.pid = Fact<pid_t>::known(4242);
  h.unit = unit;
  h.user_unit = Fact<std::string>::known("");
  h.container = Fact<std::string>::known("");
  return h;
}

}  // namespace

TEST_CASE("only uid 0, alive, and in exactly the unit it names", "[load_credential]") {
  const auto in_app = Fact<std::string>::known("app.service");
  CHECK(credential_helper_refusal(helper_in(0, in_app), "app.service").empty());
  // Another unit's root process.
  CHECK(credential_helper_refusal(helper_in(0, in_app), "other.service").find("from a process of app.service") !=
        std::string::npos);
  // Root in no unit, or whose unit cannot be read: not believed.
  CHECK(credential_helper_refusal(helper_in(0, Fact<std::string>::known("")), "other.service")
            .find("from a process of no unit") != std::string::npos);
  CHECK(credential_helper_refusal(helper_in(0, Fact<std::string>::unknown("no systemd hierarchy")), "app.service")
            .find("whose unit cannot be read (no systemd hierarchy)") != std::string::npos);
  // The connecting process exited (a child that connected for its parent).
  Identity gone = helper_in(0, in_app);
  gone.pid = Fact<pid_t>::unknown("the process that connected has exited");
  CHECK(credential_helper_refusal(gone, "app.service").find("cannot be identified") != std::string::npos);
  // Inside the unit, but in a container or a user's manager below it.
  Identity boxed = helper_in(0, in_app);
  boxed.container = Fact<std::string>::unknown("delegated");
  CHECK_FALSE(credential_helper_refusal(boxed, "app.service").empty());
  Identity managed = helper_in(0, in_app);
  managed.user_unit = Fact<std::string>::known("x.service");
  CHECK_FALSE(credential_helper_refusal(managed, "app.service").empty());
  // Any other uid, whatever its unit.
  std::string why = credential_helper_refusal(helper_in(1000, in_app), "app.service");
  CHECK(why.find("from uid 1000") != std::string::npos);
  CHECK(why.find("only systemd's credential helper (uid 0)") != std::string::npos);
}

TEST_CASE("the attested identity is the unit, nothing a process would say", "[load_credential]") {
  Identity helper;
  helper.raw_uid = 0;
  helper.raw_gid = 0;
  helper.raw_pid = 4242;
  helper.uid = Fact<uid_t>::known(0);
  helper.gid = Fact<gid_t>::known(0);
  helper.pid = Fact<pid_t>::known(4242);
  helper.exe = Fact<std::string>::known("/usr/lib/systemd/systemd-executor");
  helper.cgroup = Fact<std::string>::known("/system.slice/app.service");
  helper.unit = Fact<std::string>::known("app.service");
  helper.container = Fact<std::string>::known("");
  Identity id = credential_identity(helper, "app.service");
  CHECK(id.origin == Origin::load_credential);
  CHECK(id.unit.matches("app.service"));
  CHECK(id.user_unit.matches(""));
  CHECK(id.container.matches(""));
  CHECK(id.cgroup.matches("/system.slice/app.service"));
  // uid 0 is the helper's, not the unit's: a `uid = 0` service must not match.
  CHECK_FALSE(id.uid.is_known());
  CHECK_FALSE(id.gid.is_known());
  CHECK(id.pid.matches(4242));  // the helper's, for the audit trail
  CHECK_FALSE(id.exe.is_known());
  CHECK(id.exe.reason().find("LoadCredential=") != std::string::npos);
  CHECK(id.raw_uid == 0);
  CHECK(id.raw_pid == 4242);
}

TEST_CASE("the abstract name of a real peer, and none for the others", "[load_credential]") {
  TempDir dir;
  std::string path = dir / "s.sock";
  int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  std::memcpy(a.sun_path, path.c_str(), path.size() + 1);
  REQUIRE(bind(listener, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  REQUIRE(listen(listener, 4) == 0);

  auto connect_as = [&](const std::string* abstract_name) {
    int c = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (abstract_name != nullptr) {
      sockaddr_un b{};
      b.sun_family = AF_UNIX;
      std::memcpy(b.sun_path + 1, abstract_name->data(), abstract_name->size());
      auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + abstract_name->size());
      REQUIRE(bind(c, reinterpret_cast<sockaddr*>(&b), len) == 0);
    }
    REQUIRE(connect(c, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    int s = accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    REQUIRE(s >= 0);
    auto name = abstract_peer_name(s);
    close(s);
    close(c);
    return name;
  };
  // A unique name per run: abstract names are per network namespace.
  std::string name = std::to_string(getpid()) + "a/unit/app.service/token";
  auto got = connect_as(&name);
  REQUIRE(got);
  CHECK(*got == name);  // exactly, not NUL-terminated, not padded
  CHECK_FALSE(connect_as(nullptr));
  close(listener);
}
