// A blocking HTTP/1.1 client for one Unix socket: chittyctl's way to the
// agent (the client module builds on it). libcurl stays in this module: an
// easy handle with CURLOPT_UNIX_SOCKET_PATH, one request at a time on one
// kept-alive connection. An answer that may hold a secret is read straight
// into a SecureBuffer the caller gives; libcurl's own heap blocks (its
// receive buffer, its copies of the headers it sends) are wiped when freed
// once install_wiping_allocator() ran.
//
// Thread: one.
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "chitty/secure/secure_buffer.hpp"

namespace chitty::upstream {

struct SocketRequest {
  std::string method = "GET";
  std::string target;                // path and query, percent-encoded
  std::string body;                  // sent as application/json when not empty
  std::vector<std::string> headers;  // "Name: value", public
  // One more header line, "Name: value" NUL-terminated, held in locked memory
  // (a token); null: none.
  const secure::SecureBuffer* secret_header_line = nullptr;
};

struct SocketReply {
  long status = 0;
  std::string content_type;
  std::string request_id;           // X-Request-Id
  std::optional<long> retry_after;  // Retry-After, seconds
};

// Why there was no answer.
struct SocketFailure {
  enum class Kind { timeout, no_socket, refused, permission, too_large, other };
  Kind kind = Kind::other;
  std::string detail;  // libcurl's words, with the errno's when there is one
};

class SocketClient {
 public:
  SocketClient(std::string socket_path, std::chrono::milliseconds timeout);
  ~SocketClient();
  SocketClient(const SocketClient&) = delete;
  SocketClient& operator=(const SocketClient&) = delete;

  // Sends `request`; the body of the answer goes to `secret` (up to its
  // capacity) when given, else to `text` (up to `max_text` bytes).
  tl::expected<SocketReply, SocketFailure> perform(const SocketRequest& request, secure::SecureBuffer* secret,
                                                   std::string* text, std::size_t max_text);
  // Closes the connection kept open (libcurl does not make it close-on-exec).
  void disconnect() noexcept;

 private:
  struct Impl;
  std::string socket_path_;
  std::chrono::milliseconds timeout_;
  std::unique_ptr<Impl> impl_;
};

// Makes libcurl allocate through wrappers that wipe every block before it is
// freed (curl_global_init_mem). Call once, first thing in a process that
// uses only SocketClient; false if libcurl could not be initialised.
bool install_wiping_allocator() noexcept;

}  // namespace chitty::upstream
