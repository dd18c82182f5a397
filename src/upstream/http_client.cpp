#include "chitty/upstream/http_client.hpp"

#include <malloc.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include <curl/curl.h>

#include "chitty/base/service_url.hpp"
#include "chitty/base/text.hpp"
#include "chitty/base/wipe.hpp"
#include "chitty/log/log.hpp"
#include "environment.hpp"

namespace chitty::upstream {
namespace {

// curl's allocator: every block is wiped before it goes back to the heap, so
// request headers (the Authorization token) and any response bytes curl
// buffered itself are not left behind in freed memory.
void* curl_alloc(std::size_t n) { return std::malloc(n); }
void curl_release(void* p) {
  if (p == nullptr) return;
  secure_zero(p, malloc_usable_size(p));
  std::free(p);
}
void* curl_resize(void* p, std::size_t n) {
  if (p == nullptr) return std::malloc(n);
  if (n == 0) {
    curl_release(p);
    return nullptr;
  }
  // Never in place: the old block is copied, then wiped.
  void* q = std::malloc(n);
  if (q == nullptr) return nullptr;
  std::memcpy(q, p, std::min(malloc_usable_size(p), n));
  curl_release(p);
  return q;
}
char* curl_duplicate(const char* s) {
  std::size_t n = std::strlen(s) + 1;
  auto* d = static_cast<char*>(std::malloc(n));
  if (d != nullptr) std::memcpy(d, s, n);
  return d;
}
void* curl_zeroed(std::size_t count, std::size_t size) { return std::calloc(count, size); }

void init_curl_once() {
  static std::once_flag once;
  std::call_once(once, [] {
    // libcurl (with OpenSSL) writes TLS session keys to $SSLKEYLOGFILE:
    // whoever set it could decrypt the token and every secret.
    if (take_environment_variable("SSLKEYLOGFILE", [](std::string_view) {})) {
      log::warn("upstream", "SSLKEYLOGFILE was set; removed, so TLS session keys are not written anywhere");
    }
    if (curl_global_init_mem(CURL_GLOBAL_DEFAULT, curl_alloc, curl_release, curl_resize, curl_duplicate,
                             curl_zeroed) != CURLE_OK) {
      log::error("upstream", "libcurl could not be initialised");
      std::abort();  // before any request: a broken installation, not a runtime condition
    }
  });
}

HttpError kind_of(CURLcode rc) {
  switch (rc) {
    case CURLE_OPERATION_TIMEDOUT: return HttpError::timeout;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_USE_SSL_FAILED: return HttpError::tls;
    case CURLE_PARTIAL_FILE:
    case CURLE_WEIRD_SERVER_REPLY:
    case CURLE_BAD_CONTENT_ENCODING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM: return HttpError::protocol;
    case CURLE_FILESIZE_EXCEEDED: return HttpError::too_large;
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_URL_MALFORMAT: return HttpError::refused;
    default: return HttpError::connect;
  }
}

}  // namespace

std::string_view http_error_name(HttpError e) noexcept {
  switch (e) {
    case HttpError::connect: return "connect";
    case HttpError::timeout: return "timeout";
    case HttpError::tls: return "tls";
    case HttpError::too_large: return "too_large";
    case HttpError::no_memory: return "no_memory";
    case HttpError::protocol: return "protocol";
    case HttpError::refused: return "refused";
  }
  return "connect";
}

struct HttpClient::Transfer {
  Id id = 0;
  CURL* easy = nullptr;
  curl_slist* headers = nullptr;
  HttpDone done;
  std::string request_body;  // POST data, alive until the transfer ends
  secure::Arena* arena = nullptr;
  secure::SecureBuffer body;
  std::size_t max_body = 0;
  bool too_large = false;
  bool no_memory = false;
  std::string content_type;
  std::string connect_version;
  MonoTime started{};
  char error[CURL_ERROR_SIZE] = {};

  ~Transfer() {
    if (easy != nullptr) curl_easy_cleanup(easy);
    if (headers != nullptr) curl_slist_free_all(headers);  // wiped by curl_release
  }

  // Appends a chunk of the body; false when it must stop (too large, no
  // locked memory). Keeps one spare byte for the in-place JSON reader.
  bool append(const char* p, std::size_t n) {
    if (body.size() + n > max_body) {
      too_large = true;
      return false;
    }
    std::size_t need = body.size() + n + 1;
    if (need > body.capacity()) {
      std::size_t grown = std::max<std::size_t>(need, body.capacity() == 0 ? 4096 : body.capacity() * 2);
      grown = std::min(grown, max_body + 1);
      secure::SecureBuffer bigger = secure::SecureBuffer::allocate(*arena, grown);
      if (!bigger) {
        no_memory = true;
        return false;
      }
      if (!bigger.append({body.data(), body.size()})) return false;  // (grown >= need > size)
      body = std::move(bigger);  // the old block is wiped on release
    }
    return body.append({p, n});
  }

  static std::size_t on_body(char* p, std::size_t size, std::size_t count, void* self) noexcept {
    std::size_t n = size * count;
    bool ok = static_cast<Transfer*>(self)->append(p, n);
    secure_zero(p, n);  // curl's receive buffer: no copy of the answer stays there
    return ok ? n : 0;
  }

  static std::size_t on_header(char* p, std::size_t size, std::size_t count, void* self) noexcept {
    std::size_t n = size * count;
    auto* t = static_cast<Transfer*>(self);
    std::string_view line(p, n);
    while (!line.empty() && (line.back() == '\n' || line.back() == '\r')) line.remove_suffix(1);
    auto value_of = [&](std::string_view name) -> std::optional<std::string> {
      if (line.size() <= name.size() || !iequals(line.substr(0, name.size()), name) ||
          line[name.size()] != ':') {
        return std::nullopt;
      }
      std::string_view v = line.substr(name.size() + 1);
      while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
      while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
      return std::string(v.substr(0, 128));
    };
    if (line.starts_with("HTTP/")) {  // a new status line: headers start over
      t->content_type.clear();
      t->connect_version.clear();
    } else if (auto ct = value_of("content-type")) {
      t->content_type = *ct;
    } else if (auto cv = value_of("1password-connect-version")) {
      t->connect_version = *cv;
    }
    return n;
  }
};

struct HttpClient::Socket {
  loop::Handle<uv_poll_t> poll;
  curl_socket_t fd = CURL_SOCKET_BAD;
  HttpClient* client = nullptr;
};

HttpClient::HttpClient(loop::Loop& loop, loop::TaskQueue& tasks, secure::Arena& arena, const Clock& clock,
                       HttpClientOptions options)
    : loop_(loop), tasks_(tasks), arena_(arena), clock_(clock), options_(std::move(options)) {
  init_curl_once();
  CURLM* m = curl_multi_init();
  if (m == nullptr) {
    log::error("upstream", "curl_multi_init failed");
    std::abort();
  }
  multi_ = m;
  curl_multi_setopt(m, CURLMOPT_SOCKETFUNCTION, &HttpClient::on_socket);
  curl_multi_setopt(m, CURLMOPT_SOCKETDATA, this);
  curl_multi_setopt(m, CURLMOPT_TIMERFUNCTION, &HttpClient::on_curl_timer);
  curl_multi_setopt(m, CURLMOPT_TIMERDATA, this);
  curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, options_.max_host_connections);
  uv_timer_init(loop_.raw(), timer_.get());
  timer_.get()->data = this;
}

HttpClient::~HttpClient() { close(); }

void HttpClient::close() noexcept {
  if (closed_) return;
  closed_ = true;
  auto* m = static_cast<CURLM*>(multi_);
  for (auto& [id, t] : transfers_) curl_multi_remove_handle(m, t->easy);
  transfers_.clear();  // easy handles cleaned up; callbacks dropped
  // Closing the multi handle closes its cached connections, which reports
  // CURL_POLL_REMOVE for their sockets: the poll handles are released there.
  curl_multi_cleanup(m);
  multi_ = nullptr;
  timer_.close();
}

Result<void> HttpClient::check_url(std::string_view url, bool allow_insecure_http, bool base) {
  auto checked = check_service_url(url, allow_insecure_http, base, "the token and every secret");
  if (!checked) return tl::unexpected(checked.error());
  // The rule was applied to the host as the agent reads the URL; libcurl
  // must read the same one (the strict parser leaves no room, this proves it).
  init_curl_once();
  CURLU* u = curl_url();
  if (u == nullptr) return fail("out of memory");
  struct Free {
    CURLU* u;
    ~Free() { curl_url_cleanup(u); }
  } guard{u};
  std::string text(url);
  char* host = nullptr;
  if (curl_url_set(u, CURLUPART_URL, text.c_str(), 0) != CURLUE_OK ||
      curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || host == nullptr) {
    return fail("\"" + text + "\" is not a URL (write it as http://host:port or https://host)");
  }
  std::string curl_host(host);
  curl_free(host);
  if (checked->ipv6 && curl_host.size() >= 2 && curl_host.front() == '[') curl_host = curl_host.substr(1, curl_host.size() - 2);
  if (!iequals(curl_host, checked->host)) return fail("\"" + text + "\" names its host ambiguously");
  return {};
}

HttpClient::Id HttpClient::send(HttpRequest request, HttpDone done) {
  Id id = next_id_++;
  if (closed_) return id;  // shutting down: the request is dropped, as if cancelled
  if (auto ok = check_url(request.url, options_.allow_insecure_http, false); !ok) {
    fail_later(std::move(done), HttpError::refused, ok.error().message);
    return id;
  }
  auto t = std::make_unique<Transfer>();
  t->id = id;
  t->done = std::move(done);
  t->arena = &arena_;
  t->max_body = std::min<std::size_t>(request.max_body, secure::Arena::kMaxBlock - 1);
  t->started = clock_.now();
  CURL* e = curl_easy_init();
  if (e == nullptr) {
    fail_later(std::move(t->done), HttpError::refused, "curl_easy_init failed");
    return id;
  }
  t->easy = e;
  if (request.authorization != nullptr) {
    // "Authorization: <value>" as a C string, built in locked memory; curl
    // copies it (into memory it wipes when freed).
    static constexpr std::string_view kName = "Authorization: ";
    secure::SecureBuffer line =
        secure::SecureBuffer::allocate(arena_, kName.size() + request.authorization->size() + 1);
    if (!line) {
      fail_later(std::move(t->done), HttpError::no_memory, "no locked memory for the request right now");
      return id;
    }
    if (!line.append(kName) || !line.append({request.authorization->data(), request.authorization->size()}) ||
        !line.push_back('\0')) {
      fail_later(std::move(t->done), HttpError::no_memory, "no locked memory for the request right now");
      return id;
    }
    t->headers = curl_slist_append(t->headers, line.data());
  }
  t->headers = curl_slist_append(t->headers, "Accept: application/json");
  t->headers = curl_slist_append(t->headers, "Expect:");
  if (request.method == "POST") {
    t->request_body = std::move(request.body);
    if (!request.content_type.empty()) {
      t->headers = curl_slist_append(t->headers, ("Content-Type: " + request.content_type).c_str());
    }
  } else if (request.method != "GET") {
    fail_later(std::move(t->done), HttpError::refused, "unsupported method " + request.method);
    return id;
  }

  curl_easy_setopt(e, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(e, CURLOPT_PRIVATE, t.get());
  curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->error);
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "chitty-agent");
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_PROXY, "");  // "" disables proxies, even from the environment
  curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(e, CURLOPT_NETRC, static_cast<long>(CURL_NETRC_IGNORED));
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(request.timeout.count()));
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(request.connect_timeout.count()));
  curl_easy_setopt(e, CURLOPT_MAXFILESIZE_LARGE, static_cast<curl_off_t>(t->max_body));
  curl_easy_setopt(e, CURLOPT_BUFFERSIZE, 16384L);
  curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L);
  curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L);
  if (!options_.ca_file.empty()) curl_easy_setopt(e, CURLOPT_CAINFO, options_.ca_file.c_str());
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &Transfer::on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, t.get());
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &Transfer::on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, t.get());
  if (request.method == "POST") {
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->request_body.data());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(t->request_body.size()));
  }

  Transfer& ref = *t;
  transfers_.emplace(id, std::move(t));
  if (curl_multi_add_handle(static_cast<CURLM*>(multi_), e) != CURLM_OK) {
    auto node = transfers_.extract(id);
    fail_later(std::move(ref.done), HttpError::refused, "curl_multi_add_handle failed");
  }
  return id;
}

void HttpClient::cancel(Id id) noexcept {
  auto it = transfers_.find(id);
  if (it == transfers_.end()) return;
  curl_multi_remove_handle(static_cast<CURLM*>(multi_), it->second->easy);
  transfers_.erase(it);
}

void HttpClient::fail_later(HttpDone done, HttpError kind, std::string message) {
  if (!done) return;
  tasks_.post([done = std::move(done), kind, message = std::move(message)]() mutable {
    done(tl::unexpected(HttpFailure{kind, std::move(message), Duration{}}));
  });
}

// ---------------------------------------------------------------------------
// curl ↔ libuv

int HttpClient::on_socket(void*, int fd, int what, void* client, void* socket) noexcept {
  return static_cast<HttpClient*>(client)->socket_changed(fd, what, static_cast<Socket*>(socket));
}

int HttpClient::socket_changed(int fd, int what, Socket* s) noexcept {
  auto* m = static_cast<CURLM*>(multi_);
  if (what == CURL_POLL_REMOVE) {
    if (s != nullptr) {
      // Stop now, not in the close callback: curl may reuse the fd number at
      // once, and libuv allows one poll handle per fd.
      uv_poll_stop(s->poll.get());
      curl_multi_assign(m, fd, nullptr);
      delete s;  // its Handle closes the uv_poll (freed in the close callback)
    }
    return 0;
  }
  if (s == nullptr) {
    auto fresh = std::make_unique<Socket>();
    fresh->fd = fd;
    fresh->client = this;
    if (uv_poll_init_socket(loop_.raw(), fresh->poll.get(), fd) != 0) {
      log::error("upstream", "cannot watch a curl socket", {{"fd", fd}});
      return -1;
    }
    fresh->poll.get()->data = fresh.get();
    s = fresh.release();
    curl_multi_assign(m, fd, s);
  }
  int events = 0;
  if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) events |= UV_READABLE;
  if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) events |= UV_WRITABLE;
  uv_poll_start(s->poll.get(), events, &HttpClient::on_poll);
  return 0;
}

int HttpClient::on_curl_timer(void*, long timeout_ms, void* client) noexcept {
  auto* self = static_cast<HttpClient*>(client);
  if (!self->timer_) return 0;
  if (timeout_ms < 0) {
    uv_timer_stop(self->timer_.get());
  } else {
    // Never call back into curl from here: the action runs from the loop.
    uv_timer_start(self->timer_.get(), &HttpClient::on_timer, static_cast<std::uint64_t>(timeout_ms), 0);
  }
  return 0;
}

void HttpClient::on_poll(uv_poll_t* handle, int status, int events) noexcept {
  auto* s = static_cast<Socket*>(handle->data);
  if (s == nullptr) return;
  int flags = 0;
  if (status < 0) {
    flags = CURL_CSELECT_ERR;
  } else {
    if ((events & UV_READABLE) != 0) flags |= CURL_CSELECT_IN;
    if ((events & UV_WRITABLE) != 0) flags |= CURL_CSELECT_OUT;
  }
  HttpClient* client = s->client;  // `s` may be deleted by the action
  client->socket_action(s->fd, flags);
}

void HttpClient::on_timer(uv_timer_t* timer) noexcept {
  static_cast<HttpClient*>(timer->data)->socket_action(CURL_SOCKET_TIMEOUT, 0);
}

void HttpClient::socket_action(int fd, int flags) noexcept {
  if (closed_) return;
  int running = 0;
  curl_multi_socket_action(static_cast<CURLM*>(multi_), fd, flags, &running);
  collect_done();
}

void HttpClient::collect_done() noexcept {
  int left = 0;
  while (!closed_) {
    CURLMsg* msg = curl_multi_info_read(static_cast<CURLM*>(multi_), &left);
    if (msg == nullptr) break;
    if (msg->msg != CURLMSG_DONE) continue;
    CURL* e = msg->easy_handle;
    CURLcode rc = msg->data.result;  // msg is invalid once the handle is removed
    Transfer* t = nullptr;
    curl_easy_getinfo(e, CURLINFO_PRIVATE, reinterpret_cast<char**>(&t));
    if (t != nullptr) finish(*t, rc);
  }
}

void HttpClient::finish(Transfer& t, int curl_code) noexcept {
  auto rc = static_cast<CURLcode>(curl_code);
  curl_multi_remove_handle(static_cast<CURLM*>(multi_), t.easy);
  auto node = transfers_.extract(t.id);
  std::unique_ptr<Transfer> owned = std::move(node.mapped());
  Duration elapsed = clock_.now() - owned->started;
  HttpResult result;
  if (rc == CURLE_OK) {
    HttpResponse r;
    curl_easy_getinfo(owned->easy, CURLINFO_RESPONSE_CODE, &r.status);
    r.body = std::move(owned->body);
    r.content_type = std::move(owned->content_type);
    r.connect_version = std::move(owned->connect_version);
    r.elapsed = elapsed;
    result = std::move(r);
  } else {
    HttpError kind = kind_of(rc);
    std::string message = owned->error[0] != '\0' ? owned->error : curl_easy_strerror(rc);
    if (owned->too_large) {
      kind = HttpError::too_large;
      message = "the answer is larger than " + std::to_string(owned->max_body) + " bytes";
    } else if (owned->no_memory) {
      kind = HttpError::no_memory;
      message = "no locked memory to receive the answer right now";
    }
    result = tl::unexpected(HttpFailure{kind, std::move(message), elapsed});
  }
  HttpDone done = std::move(owned->done);
  owned.reset();  // curl handle and headers released (and wiped) before the callback runs
  if (done) done(std::move(result));
}

}  // namespace chitty::upstream
