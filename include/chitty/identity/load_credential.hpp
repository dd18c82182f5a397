// systemd's LoadCredential= protocol as the agent sees it (docs/systemd.md).
//
// A unit with `LoadCredential=ID:/run/chitty-agent/agent.sock` gets its
// credential from the agent: before the unit's processes start, systemd's
// helper (a child of PID 1, uid 0, already in the unit's cgroup) binds its
// socket to the abstract address "\0<random hex>/unit/<unit name>/<ID>",
// connects, shuts its write side down and reads to EOF. The address is the
// whole request; what the agent writes before closing is the credential.
//
// Any local process may bind an abstract address of that form, so the name
// alone proves nothing: only a peer with uid 0 (and, where its own unit can
// be read, in the unit it names) speaks for systemd.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "chitty/identity/identity.hpp"

namespace chitty::identity {

struct CredentialRequest {
  std::string unit;  // "app.service"
  std::string id;    // the credential ID, as the unit's LoadCredential= names it
};

// The abstract name the peer of connected socket `fd` is bound to, without
// its leading NUL; none for an unnamed peer (the usual client), a path
// name, or when getpeername() fails.
std::optional<std::string> abstract_peer_name(int fd);

// Whether an abstract name (without the leading NUL) has the shape of the
// helper's, "<1-16 lower-case hex digits>/unit/…": such a peer is answered
// as systemd's helper — served, or given an unusable credential — and never
// as an HTTP client, even when the rest does not parse.
bool is_credential_address(std::string_view name);

// The unit and ID an address of that shape names, unchecked (for messages
// about one that parse_credential_address() rejects); empty parts when
// absent.
CredentialRequest credential_address_parts(std::string_view name);

// Parses an abstract name (without the leading NUL) of exactly the form
// systemd's helper binds: "<1-16 lower-case hex digits>/unit/<unit>/<ID>",
// where <unit> is a valid unit name of a type that has credentials
// (.service, .socket, .mount, .swap) and <ID> a valid credential name (1-255
// printable ASCII characters or spaces, none of them '/' or ':', not "." or
// "..").
// None for anything else.
std::optional<CredentialRequest> parse_credential_address(std::string_view name);

// Why the process `helper` (as identified at accept) may not ask for the
// credentials of `unit`; empty when it may. It must run as uid 0 (a system
// manager's helper), be alive, and be established as a process of exactly
// that system unit — on the host, in no user's manager and no container
// (systemd's helper runs in the unit's cgroup before the unit's program is
// executed). Anything not established is a refusal: a root process that
// exited after connecting, or whose unit cannot be read, is not believed.
std::string credential_helper_refusal(const Identity& helper, std::string_view unit);

// The identity a credential request attests: the unit, named by systemd;
// its cgroup and container are the helper's (the helper runs in the unit's
// cgroup), and so is its pid (for the audit trail); the uid, gid and
// executable are unknown (the unit's own processes do not exist yet, and
// the helper's uid 0 is not the unit's). The raw_* fields are the helper's.
Identity credential_identity(const Identity& helper, std::string_view unit);

}  // namespace chitty::identity
