#include "chitty/identity/load_credential.hpp"

#include <sys/socket.h>
#include <sys/un.h>

#include <cstddef>

namespace chitty::identity {
namespace {

bool is_lower_hex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }

// systemd's unit_name_is_valid(): at most 255 characters of
// [A-Za-z0-9:-_.\@], a non-empty prefix (an instance only after '@'), and a
// type suffix; here only the types whose units can have LoadCredential=.
bool valid_unit_name(std::string_view u) {
  if (u.empty() || u.size() > 255) return false;
  for (char c : u) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == ':' ||
              c == '-' || c == '_' || c == '.' || c == '\\' || c == '@';
    if (!ok) return false;
  }
  auto dot = u.rfind('.');
  if (dot == std::string_view::npos || dot == 0) return false;
  std::string_view type = u.substr(dot + 1);
  if (type != "service" && type != "socket" && type != "mount" && type != "swap") return false;
  std::string_view prefix = u.substr(0, dot);
  if (prefix.front() == '@' || prefix.front() == '.') return false;
  if (auto at = prefix.find('@'); at != std::string_view::npos && prefix.find('@', at + 1) != std::string_view::npos) {
    return false;
  }
  return true;
}

// systemd's credential_name_valid(): a valid file name and a valid fd name.
bool valid_credential_id(std::string_view id) {
  if (id.empty() || id.size() > 255 || id == "." || id == "..") return false;
  for (char c : id) {
    if (c < 0x20 || c > 0x7e || c == '/' || c == ':') return false;
  }
  return true;
}

}  // namespace

std::optional<std::string> abstract_peer_name(int fd) {
  sockaddr_un addr{};
  socklen_t len = sizeof addr;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return std::nullopt;
  constexpr socklen_t kPathAt = offsetof(sockaddr_un, sun_path);
  // An unnamed peer has no path bytes at all; a path name starts with a
  // non-NUL byte. The abstract name is not NUL-terminated: its length is
  // what getpeername() says.
  if (len <= kPathAt + 1 || len > sizeof addr || addr.sun_path[0] != '\0') return std::nullopt;
  return std::string(addr.sun_path + 1, static_cast<std::size_t>(len - kPathAt - 1));
}

namespace {

constexpr std::string_view kUnit = "/unit/";

// What follows "<hex>/unit/" in a name of the helper's shape.
std::optional<std::string_view> after_prefix(std::string_view name) {
  auto slash = name.find('/');
  if (slash == 0 || slash == std::string_view::npos || slash > 16) return std::nullopt;
  for (char c : name.substr(0, slash)) {
    if (!is_lower_hex(c)) return std::nullopt;
  }
  std::string_view rest = name.substr(slash);
  if (rest.substr(0, kUnit.size()) != kUnit) return std::nullopt;
  return rest.substr(kUnit.size());
}

}  // namespace

bool is_credential_address(std::string_view name) { return after_prefix(name).has_value(); }

CredentialRequest credential_address_parts(std::string_view name) {
  auto rest = after_prefix(name);
  if (!rest) return {};
  auto sep = rest->find('/');
  if (sep == std::string_view::npos) return CredentialRequest{std::string(*rest), ""};
  return CredentialRequest{std::string(rest->substr(0, sep)), std::string(rest->substr(sep + 1))};
}

std::optional<CredentialRequest> parse_credential_address(std::string_view name) {
  auto rest = after_prefix(name);
  if (!rest) return std::nullopt;
  auto sep = rest->find('/');
  if (sep == std::string_view::npos) return std::nullopt;
  std::string_view unit = rest->substr(0, sep);
  std::string_view id = rest->substr(sep + 1);
  if (!valid_unit_name(unit) || !valid_credential_id(id)) return std::nullopt;
  return CredentialRequest{std::string(unit), std::string(id)};
}

std::string credential_helper_refusal(const Identity& helper, std::string_view unit) {
  if (helper.raw_uid != 0) {
    return "a LoadCredential= request from uid " + std::to_string(helper.raw_uid) +
           ": only systemd's credential helper (uid 0) may ask for a unit's credentials";
  }
  const std::string asks = "a LoadCredential= request for " + std::string(unit);
  if (!helper.pid.is_known()) {
    return asks + " from a process that cannot be identified (" + helper.pid.reason() +
           "): systemd's helper waits for the answer in the unit's cgroup";
  }
  if (!helper.unit.is_known()) {
    return asks + " from a process whose unit cannot be read (" + helper.unit.reason() +
           "): systemd's helper runs in the unit it asks for";
  }
  if (helper.unit.value() != unit) {
    return asks + " from a process of " + (helper.unit.value().empty() ? "no unit" : helper.unit.value()) +
           ": systemd's helper runs in the unit it asks for";
  }
  if (!helper.user_unit.matches("") || !helper.container.matches("")) {
    return asks + " from a process inside it (a user's manager or a container): systemd's helper runs in the "
                  "unit itself";
  }
  return {};
}

Identity credential_identity(const Identity& helper, std::string_view unit) {
  const std::string why = "a LoadCredential= request: systemd asks before the unit's processes start";
  Identity id;
  id.origin = Origin::load_credential;
  id.raw_uid = helper.raw_uid;
  id.raw_gid = helper.raw_gid;
  id.raw_pid = helper.raw_pid;
  id.uid = Fact<uid_t>::unknown(why);
  id.gid = Fact<gid_t>::unknown(why);
  id.pid = helper.pid;
  id.namespace_pid = Fact<pid_t>::unknown(why);
  id.nested_pid_namespace = Fact<bool>::unknown(why);
  id.exe = Fact<std::string>::unknown(why);
  id.cgroup = helper.cgroup;
  id.unit = Fact<std::string>::known(std::string(unit));
  id.user_unit = Fact<std::string>::known("");
  id.container = helper.container;
  id.container_runtime = helper.container_runtime;
  id.pidfd_source = PidfdSource::none;
  return id;
}

}  // namespace chitty::identity
