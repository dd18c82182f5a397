// A small blocking HTTP/1.1 client over a Unix socket, for tests that need
// byte-level control (pipelining, half-sent requests, smuggling vectors,
// clients that never read). Every wait has a timeout so a bug cannot hang a
// test.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace chitty::testing {

struct HttpResponse {
  int status = 0;
  std::string reason;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;

  std::optional<std::string> header(std::string_view name) const;
};

class UdsClient {
 public:
  // Connects (blocking). Throws std::runtime_error when it cannot.
  explicit UdsClient(const std::string& path);
  // Takes over an already connected socket.
  static UdsClient adopt(int fd);
  ~UdsClient();
  UdsClient(UdsClient&& o) noexcept;
  UdsClient& operator=(UdsClient&&) = delete;
  UdsClient(const UdsClient&) = delete;
  UdsClient& operator=(const UdsClient&) = delete;

  int fd() const noexcept { return fd_; }

  // Sends all bytes; false if the peer closed or reset the connection.
  bool send(std::string_view bytes);
  // Reads one response; nullopt on EOF, reset or timeout before a whole one.
  std::optional<HttpResponse> read_response(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // True if the server closes the connection within `timeout` (data before
  // the close is discarded).
  bool wait_closed(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  void close();

 private:
  UdsClient() = default;
  bool fill(std::chrono::steady_clock::time_point deadline);
  int fd_ = -1;
  std::string buffer_;
  bool eof_ = false;
};

// GET `path` on a fresh connection; nullopt if no answer.
std::optional<HttpResponse> get(const std::string& socket, const std::string& path,
                                std::chrono::milliseconds timeout = std::chrono::seconds(5));

// Connecting succeeds (something listens).
bool can_connect(const std::string& socket);

}  // namespace chitty::testing
