// chittyctl mcp: a Model Context Protocol server on standard input and
// output (JSON-RPC 2.0, one message per line; docs/mcp.md) exposing the six
// credential tools. Every tool call is a request to the agent marked
// X-Chitty-Channel: mcp, so identity, policy, risk, rate limits, revocation
// and audit apply, and the agent withholds values from this channel unless
// the caller's service has mcp_release = true: by default no value ever
// reaches this process, let alone the assistant.
//
// Thread: one.
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "chitty/client/agent_client.hpp"
#include "chitty/client/credential.hpp"
#include "chitty/json/reader.hpp"

namespace chitty::client {

// Messages longer than this are refused unread (-32600) and the server
// reads on.
inline constexpr std::size_t kMaxMcpMessage = 1u << 20;

// The protocol versions spoken, newest first; initialize agrees on the
// client's when it is one of them, else offers the newest.
inline constexpr std::string_view kMcpVersions[] = {"2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"};

struct McpServerOptions {
  std::string version;          // chittyctl's, for serverInfo
  std::string purpose;          // stated when a tool call gives none
  std::string environment;      // likewise
  // The emergency token for chitty_credential_revoke, in locked memory;
  // null: the tool answers that revocation is not enabled here.
  const secure::SecureBuffer* emergency_token = nullptr;
};

class McpServer {
 public:
  // Writes one outgoing message (without its newline).
  using Write = std::function<void(std::span<const char>)>;

  McpServer(secure::Arena& arena, Transport& agent, McpServerOptions options);

  // Handles one incoming message (or a batch, in the protocol versions that
  // have them); writes at most one answer.
  void handle(std::string_view message, const Write& write);
  // A message over kMaxMcpMessage was dropped: answers -32600.
  void oversized(const Write& write);
  // The version initialize agreed on ("" before).
  const std::string& protocol_version() const noexcept { return version_; }

 private:
  // One message (an element of a batch when `in_batch`).
  void dispatch(const json::Value& message, const Write& write, bool in_batch);
  void call_tool(const json::Value* id, const json::Value& params, const Write& write);
  void credential_tool(const json::Value* id, const Wanted& what, const Context& ctx, const Write& write);
  void public_tool(const json::Value* id, const Request& request, const Write& write);

  secure::Arena& arena_;
  Transport& agent_;
  McpServerOptions options_;
  std::string version_;
};

// Reads messages from `in_fd` until end of input, answering on `out_fd`.
// Returns 0 at end of input, Exit::failure when the output is gone.
int serve_mcp(McpServer& server, int in_fd, int out_fd);

}  // namespace chitty::client
