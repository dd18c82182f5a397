// HTTP requests from the event loop: libcurl's multi interface driven by
// libuv (one uv_poll per curl socket, one uv_timer for curl's timeouts,
// completions read after every socket action), with connection reuse across
// requests to one server.
//
// Hardened for talking to a secrets server:
//   - proxy environment variables are ignored, redirects are not followed,
//     only http and https are spoken, netrc and cookies are never read;
//   - plain http only to a loopback address unless explicitly allowed;
//   - SSLKEYLOGFILE is removed from the environment (libcurl would write TLS
//     session keys there);
//   - response bodies are copied straight into locked memory and each chunk
//     is wiped in curl's receive buffer right after; curl's own allocations
//     are wiped when freed (curl_global_init_mem), so neither the answer nor
//     the Authorization header lingers in ordinary heap memory.
//
// Thread: loop thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>

#include <tl/expected.hpp>

#include "chitty/base/clock.hpp"
#include "chitty/base/result.hpp"
#include "chitty/loop/handle.hpp"
#include "chitty/loop/loop.hpp"
#include "chitty/loop/task_queue.hpp"
#include "chitty/secure/arena.hpp"
#include "chitty/secure/secure_buffer.hpp"

namespace chitty::upstream {

struct HttpClientOptions {
  std::string ca_file;               // CA bundle for https; "" = the system's
  bool allow_insecure_http = false;  // plain http to a host that is not loopback
  long max_host_connections = 8;     // connections kept to one server
};

struct HttpRequest {
  std::string url;  // absolute; must pass check_url()
  std::string method = "GET";  // or "POST" (with `body`)
  std::string body;            // not secret (audit batches); sent as is
  std::string content_type;    // of `body`
  // The Authorization header's value ("Bearer …") in locked memory, or null.
  // Copied into curl's (wiped-on-free) memory by send(); the caller may
  // release it as soon as send() returns.
  const secure::SecureBuffer* authorization = nullptr;
  std::chrono::milliseconds timeout{2000};
  std::chrono::milliseconds connect_timeout{1000};
  std::size_t max_body = 64 * 1024 - 1;  // larger answers fail with too_large (at most 64 KiB - 1)
};

enum class HttpError {
  connect,    // could not connect or resolve, connection reset or closed early
  timeout,    // no complete answer within the request's timeout
  tls,        // TLS handshake or certificate verification failed
  too_large,  // the body exceeds max_body
  no_memory,  // no locked memory to receive the body right now
  protocol,   // a malformed HTTP answer, a truncated body
  refused,    // the request was not sent: URL not allowed, set-up failed
};
std::string_view http_error_name(HttpError e) noexcept;

struct HttpFailure {
  HttpError kind;
  std::string message;  // curl's explanation; never response bytes
  Duration elapsed{};
};

struct HttpResponse {
  long status = 0;
  // The body, in locked memory, with at least one byte of spare capacity
  // (json::InPlace needs it). Empty (falsy) when the answer had no body.
  secure::SecureBuffer body;
  std::string content_type;
  std::string connect_version;  // 1Password-Connect-Version, "" if absent
  Duration elapsed{};
};

using HttpResult = tl::expected<HttpResponse, HttpFailure>;
using HttpDone = std::function<void(HttpResult)>;

class HttpClient {
 public:
  using Id = std::uint64_t;

  HttpClient(loop::Loop& loop, loop::TaskQueue& tasks, secure::Arena& arena, const Clock& clock,
             HttpClientOptions options);
  ~HttpClient();  // close()
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Whether `url` may be used: http or https, no credentials in it, plain
  // http only to localhost / 127.0.0.0/8 / ::1 unless allowed; a `base` URL
  // (a server's, from the configuration) has no query or fragment either.
  [[nodiscard]] static Result<void> check_url(std::string_view url, bool allow_insecure_http, bool base = true);

  // Starts the request. `done` runs exactly once on the loop thread after send()
  // has returned — unless the request is cancelled or the client closed.
  Id send(HttpRequest request, HttpDone done);
  // Abandons a request: `done` will not run. Unknown ids are ignored.
  void cancel(Id id) noexcept;
  // Aborts every request (their callbacks do not run) and releases curl and
  // the loop handles. Call before the loop closes. Idempotent.
  void close() noexcept;

  std::size_t in_flight() const noexcept { return transfers_.size(); }
  const HttpClientOptions& options() const noexcept { return options_; }

 private:
  struct Transfer;
  struct Socket;
  static int on_socket(void* easy, int fd, int what, void* client, void* socket) noexcept;
  static int on_curl_timer(void* multi, long timeout_ms, void* client) noexcept;
  static void on_poll(uv_poll_t* handle, int status, int events) noexcept;
  static void on_timer(uv_timer_t* timer) noexcept;
  int socket_changed(int fd, int what, Socket* socket) noexcept;
  void socket_action(int fd, int flags) noexcept;
  void collect_done() noexcept;
  void finish(Transfer& t, int curl_code) noexcept;
  void fail_later(HttpDone done, HttpError kind, std::string message);

  loop::Loop& loop_;
  loop::TaskQueue& tasks_;
  secure::Arena& arena_;
  const Clock& clock_;
  HttpClientOptions options_;
  void* multi_ = nullptr;  // CURLM*
  loop::Handle<uv_timer_t> timer_;
  std::unordered_map<Id, std::unique_ptr<Transfer>> transfers_;
  Id next_id_ = 1;
  bool closed_ = false;
};

}  // namespace chitty::upstream
