// chittyctl's subcommands (docs/chittyctl.md). Each returns the process's
// exit code (client::Exit, or the command's own for `run`) and has written
// its output and any message by then. agent/chittyctl.cpp only parses the
// command line into these options.
#pragma once

#include <chrono>
#include <cstddef>
#include <optional>
#include <string>
#include <vector>

#include "chitty/client/agent_client.hpp"
#include "chitty/client/credential.hpp"
#include "chitty/json/reader.hpp"
#include "chitty/secure/arena.hpp"

namespace chitty::client {

// What every command works with.
struct Session {
  secure::Arena& arena;
  Transport& agent;
  Context context;
  bool pretty = false;  // indent JSON output (standard output is a terminal)
};

// Prints "chittyctl: MESSAGE" on standard error; returns the exit code.
int report(const Failure& f);

struct GetOptions {
  Wanted what;
  bool json = false;        // the agent's whole answer instead of the value
  bool newline = true;      // a newline after the value
};
int get(Session& s, const GetOptions& o);

int health(Session& s);
int insights(Session& s, const std::string& service);

// Where an emergency token comes from (never the command line).
struct TokenSource {
  std::string file;        // --token-file
  std::string credential;  // --token-credential: $CREDENTIALS_DIRECTORY/NAME
  bool prompt = true;      // else ask on the terminal (no echo)
};
// The emergency token: from the file, the credential, or the terminal.
Outcome<secure::SecureBuffer> emergency_token(secure::Arena& arena, const TokenSource& from);

struct RevokeOptions {
  std::string ref, type, service;
  bool all = false;
  std::string reason;
  bool clear = false;  // lift the revocation instead
  TokenSource token;
};
int revoke(Session& s, const RevokeOptions& o);

struct AuditOptions {
  std::string service;
  std::string since;        // RFC 3339, or a duration back from now ("15m")
  std::size_t limit = 20;
  bool follow = false;
  std::chrono::milliseconds interval{1000};
  bool json = false;        // query: the agent's whole answer instead of NDJSON events
};
int audit_query(Session& s, const AuditOptions& o);
int audit_tail(Session& s, const AuditOptions& o);

struct RunOptions {
  std::vector<std::string> env_files;
  bool masking = true;
  std::vector<std::string> command;
};
int run(Session& s, const RunOptions& o);

struct InjectOptions {
  std::string input;   // "-" or "" = standard input
  std::string output;  // "" = standard output
  unsigned file_mode = 0600;
};
int inject(Session& s, const InjectOptions& o);

struct McpOptions {
  std::string emergency_token_file;  // enables chitty_credential_revoke
  std::string purpose;               // the purpose stated when a tool call gives none
  std::string version;               // chittyctl's version, for serverInfo
};
int mcp(Session& s, const McpOptions& o);

// Output helpers shared by the commands.
// Writes all of `bytes` to `fd` (EINTR retried); false on an error.
bool write_all(int fd, std::string_view bytes) noexcept;
// `value` as compact JSON, or indented (two spaces) when `pretty`.
std::string to_json(const json::Value& value, bool pretty);

}  // namespace chitty::client
