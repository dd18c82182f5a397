// chittyctl's way to the agent: HTTP/1.1 over the agent's Unix socket
// (upstream::SocketClient: libcurl with CURLOPT_UNIX_SOCKET_PATH), one
// blocking request at a time on one kept-alive connection. Answers that may
// hold a secret are read straight into locked memory; libcurl's own heap
// blocks (its receive buffer, the copies of headers it sends) are wiped when
// libcurl frees them (install_wiping_allocator). What a failure means for
// the user — exit code and message — is decided here.
//
// Thread: one thread (chittyctl has only one).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "chitty/secure/arena.hpp"
#include "chitty/secure/secure_buffer.hpp"
#include "chitty/upstream/socket_client.hpp"

namespace chitty::client {

// chittyctl's exit codes (docs/chittyctl.md, chittyctl(1)). `run` exits with
// its command's code once the command started.
enum class Exit : int {
  ok = 0,
  failure = 1,       // anything not below (a malformed answer, I/O, the agent's bad_request)
  usage = 2,         // the command line (or a template, an env file) is wrong
  unreachable = 3,   // no agent at the socket, no permission on it, no answer in time
  denied = 4,        // forbidden, context_mismatch, revoked, risk_denied, unauthenticated
  step_up = 5,       // step_up_required
  rate_limited = 6,  // rate_limited (the message says when to retry)
  not_found = 7,     // not_found
  unavailable = 8,   // upstream_unavailable, audit_unavailable, server_busy, an unhealthy agent
};

// Why a command failed: a message for the user (never a secret) and the exit
// code; `code` is the agent's error.code when the agent refused.
struct Failure {
  Exit exit = Exit::failure;
  std::string message;
  std::string code;
  std::string agent_message;            // the agent's error.message, alone
  std::optional<long> retry_after;      // seconds, for rate_limited
};
template <typename T>
using Outcome = tl::expected<T, Failure>;
inline tl::unexpected<Failure> failed(Exit exit, std::string message) {
  return tl::unexpected<Failure>(Failure{exit, std::move(message), {}, {}, {}});
}

struct Request {
  std::string method = "GET";
  std::string target;                // path and query, percent-encoded
  std::string body;                  // JSON naming references, never values ("" = none)
  std::vector<std::string> headers;  // "Name: value", public only
  // One header whose value is secret (X-Emergency-Token, X-Chitty-Step-Up):
  // its name, and the value in locked memory.
  std::string secret_header_name;
  const secure::SecureBuffer* secret_header_value = nullptr;
  // The answer may hold a secret: its body goes to Reply::secret (at most
  // Arena::kMaxBlock bytes, the most the agent ever sends of one).
  bool secret_answer = false;
};

struct Reply {
  long status = 0;
  std::string content_type;
  std::string request_id;             // X-Request-Id
  std::optional<long> retry_after;    // Retry-After, seconds
  std::string text;                   // the body of a public answer
  secure::SecureBuffer secret;        // the body of a secret_answer request

  // The body, whichever holds it.
  std::string_view body() const noexcept {
    return secret ? std::string_view(secret.data(), secret.size()) : std::string_view(text);
  }
};

// Sends requests to the agent. An interface so that the MCP server and the
// commands can be tested on canned answers.
class Transport {
 public:
  virtual ~Transport() = default;
  // The answer, whatever its status; a Failure only when there was none
  // (Exit::unreachable with the reason and what to do about it).
  virtual Outcome<Reply> send(const Request& request) = 0;
  // Closes any connection kept open, before a command is started: it must
  // not inherit a connection the agent took for chittyctl's.
  virtual void disconnect() noexcept {}
};

class AgentClient final : public Transport {
 public:
  AgentClient(std::string socket_path, secure::Arena& arena, std::chrono::milliseconds timeout);
  ~AgentClient() override;
  AgentClient(const AgentClient&) = delete;
  AgentClient& operator=(const AgentClient&) = delete;

  Outcome<Reply> send(const Request& request) override;
  void disconnect() noexcept override;
  const std::string& socket_path() const noexcept { return socket_path_; }

 private:
  std::string socket_path_;
  secure::Arena& arena_;
  std::chrono::milliseconds timeout_;
  upstream::SocketClient http_;
};

// Where the agent listens: the --socket option, else $CHITTY_AGENT_SOCKET,
// else /run/chitty-agent/agent.sock.
std::string socket_path_from(const std::optional<std::string>& option);

// Makes libcurl allocate through wrappers that wipe every block before it
// is freed (curl_global_init_mem). Call once, first thing, before any
// request; false if libcurl could not be initialised.
bool install_wiping_allocator() noexcept;

// The Failure an error answer stands for: the agent's error.code mapped to
// an exit code, with its message ("denied (forbidden): …", "rate limited:
// … — retry in 12 s", "step-up required: …").
Failure failure_of(const Reply& reply);

}  // namespace chitty::client
