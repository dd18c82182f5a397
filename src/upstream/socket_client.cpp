#include "chitty/upstream/socket_client.hpp"

#include <curl/curl.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "chitty/base/text.hpp"
#include "chitty/base/wipe.hpp"

namespace chitty::upstream {

namespace {

// ---------------------------------------------------------------------------
// libcurl's heap, wiped on release. Each block carries its size in a header
// so that free() knows how much to wipe.

constexpr std::size_t kHeader = alignof(std::max_align_t);

void* wiping_malloc(std::size_t n) noexcept {
  auto* p = static_cast<unsigned char*>(std::malloc(n + kHeader));
  if (p == nullptr) return nullptr;
  std::memcpy(p, &n, sizeof n);
  return p + kHeader;
}

void wiping_free(void* block) noexcept {
  if (block == nullptr) return;
  auto* p = static_cast<unsigned char*>(block) - kHeader;
  std::size_t n = 0;
  std::memcpy(&n, p, sizeof n);
  secure_zero(p, n + kHeader);
  std::free(p);
}

void* wiping_realloc(void* block, std::size_t n) noexcept {
  if (block == nullptr) return wiping_malloc(n);
  std::size_t old = 0;
  std::memcpy(&old, static_cast<unsigned char*>(block) - kHeader, sizeof old);
  void* fresh = wiping_malloc(n);
  if (fresh == nullptr) return nullptr;
  std::memcpy(fresh, block, old < n ? old : n);
  wiping_free(block);
  return fresh;
}

void* wiping_calloc(std::size_t count, std::size_t size) noexcept {
  if (size != 0 && count > (SIZE_MAX - kHeader) / size) return nullptr;
  void* p = wiping_malloc(count * size);
  if (p != nullptr) std::memset(p, 0, count * size);
  return p;
}

char* wiping_strdup(const char* s) noexcept {
  std::size_t n = std::strlen(s) + 1;
  auto* p = static_cast<char*>(wiping_malloc(n));
  if (p != nullptr) std::memcpy(p, s, n);
  return p;
}

struct Sink {
  secure::SecureBuffer* secret = nullptr;
  std::string* text = nullptr;
  std::size_t max_text = 0;
  bool overflow = false;
};

std::size_t on_body(char* data, std::size_t size, std::size_t n, void* user) noexcept {
  auto* s = static_cast<Sink*>(user);
  std::size_t bytes = size * n;
  if (s->secret != nullptr) {
    if (!s->secret->append(std::string_view(data, bytes))) {
      s->overflow = true;
      return 0;
    }
    return bytes;
  }
  if (s->text->size() + bytes > s->max_text) {
    s->overflow = true;
    return 0;
  }
  try {
    s->text->append(data, bytes);
  } catch (...) {
    s->overflow = true;
    return 0;
  }
  return bytes;
}

std::size_t on_header(char* data, std::size_t size, std::size_t n, void* user) noexcept {
  auto* r = static_cast<SocketReply*>(user);
  std::string_view line(data, size * n);
  auto colon = line.find(':');
  if (colon == std::string_view::npos) return size * n;
  std::string_view name = line.substr(0, colon), value = line.substr(colon + 1);
  while (!value.empty() && (value.front() == ' ' || value.front() == '\t')) value.remove_prefix(1);
  while (!value.empty() && (value.back() == '\r' || value.back() == '\n' || value.back() == ' ')) value.remove_suffix(1);
  try {
    if (iequals(name, "X-Request-Id")) r->request_id = std::string(value);
    if (iequals(name, "Content-Type")) r->content_type = std::string(value);
    if (iequals(name, "Retry-After")) {
      std::uint64_t secs = 0;
      if (parse_u64(value, secs)) r->retry_after = static_cast<long>(secs);
    }
  } catch (...) {
    return 0;
  }
  return size * n;
}

}  // namespace

bool install_wiping_allocator() noexcept {
  return curl_global_init_mem(CURL_GLOBAL_DEFAULT, wiping_malloc, wiping_free, wiping_realloc, wiping_strdup,
                              wiping_calloc) == CURLE_OK;
}

struct SocketClient::Impl {
  CURL* easy = nullptr;
  ~Impl() {
    if (easy != nullptr) curl_easy_cleanup(easy);
  }
};

SocketClient::SocketClient(std::string socket_path, std::chrono::milliseconds timeout)
    : socket_path_(std::move(socket_path)), timeout_(timeout), impl_(std::make_unique<Impl>()) {}

SocketClient::~SocketClient() = default;

void SocketClient::disconnect() noexcept {
  if (impl_->easy != nullptr) {
    curl_easy_cleanup(impl_->easy);
    impl_->easy = nullptr;
  }
}

tl::expected<SocketReply, SocketFailure> SocketClient::perform(const SocketRequest& request,
                                                               secure::SecureBuffer* secret, std::string* text,
                                                               std::size_t max_text) {
  if (impl_->easy == nullptr) {
    impl_->easy = curl_easy_init();
    if (impl_->easy == nullptr) return tl::unexpected(SocketFailure{SocketFailure::Kind::other, "cannot initialise libcurl"});
  }
  CURL* e = impl_->easy;
  SocketReply reply;
  Sink sink{secret, text, max_text, false};
  curl_slist* headers = nullptr;
  for (const std::string& h : request.headers) headers = curl_slist_append(headers, h.c_str());
  if (!request.body.empty()) headers = curl_slist_append(headers, "Content-Type: application/json");
  headers = curl_slist_append(headers, "Expect:");
  // libcurl's copy of the secret line is wiped when it frees it.
  if (request.secret_header_line != nullptr) headers = curl_slist_append(headers, request.secret_header_line->data());
  std::string url = "http://localhost" + request.target;
  curl_easy_reset(e);
  curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, socket_path_.c_str());
  curl_easy_setopt(e, CURLOPT_URL, url.c_str());
  if (request.method == "POST") {
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, request.body.c_str());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
  } else {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    if (request.method != "GET") curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  }
  curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(e, CURLOPT_USERAGENT, "chittyctl");
  curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http");
  curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(e, CURLOPT_PROXY, "");
  curl_easy_setopt(e, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(e, CURLOPT_NETRC, static_cast<long>(CURL_NETRC_IGNORED));
  curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(e, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_1_1));
  curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_.count()));
  curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(timeout_.count()));
  curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, &on_body);
  curl_easy_setopt(e, CURLOPT_WRITEDATA, &sink);
  curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, &on_header);
  curl_easy_setopt(e, CURLOPT_HEADERDATA, &reply);
  CURLcode rc = curl_easy_perform(e);
  curl_slist_free_all(headers);
  if (rc != CURLE_OK) {
    if (sink.overflow) return tl::unexpected(SocketFailure{SocketFailure::Kind::too_large, "the answer is too large"});
    long os_errno = 0;
    curl_easy_getinfo(e, CURLINFO_OS_ERRNO, &os_errno);
    SocketFailure f;
    f.detail = curl_easy_strerror(rc);
    if (os_errno != 0) f.detail += std::string(" (") + std::strerror(static_cast<int>(os_errno)) + ")";
    if (rc == CURLE_OPERATION_TIMEDOUT) {
      f.kind = SocketFailure::Kind::timeout;
    } else if (os_errno == ENOENT || os_errno == ENOTDIR) {
      f.kind = SocketFailure::Kind::no_socket;
    } else if (os_errno == ECONNREFUSED) {
      f.kind = SocketFailure::Kind::refused;
    } else if (os_errno == EACCES || os_errno == EPERM) {
      f.kind = SocketFailure::Kind::permission;
    }
    return tl::unexpected(std::move(f));
  }
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &reply.status);
  return reply;
}

}  // namespace chitty::upstream
