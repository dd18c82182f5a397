#include "chitty/client/agent_client.hpp"

#include <curl/curl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "chitty/base/text.hpp"
#include "chitty/base/wipe.hpp"
#include "chitty/json/reader.hpp"

namespace chitty::client {

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

// ---------------------------------------------------------------------------

std::string owner_text(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "";
  std::string user = std::to_string(st.st_uid), group_name = std::to_string(st.st_gid);
  if (const passwd* pw = ::getpwuid(st.st_uid)) user = pw->pw_name;
  if (const struct group* gr = ::getgrgid(st.st_gid)) group_name = gr->gr_name;
  return " (owner " + user + ", group " + group_name + ", mode " + format_mode(st.st_mode & 07777) + ")";
}

Failure unreachable(const std::string& path, CURLcode rc, long os_errno, std::chrono::milliseconds timeout) {
  std::string m;
  if (rc == CURLE_OPERATION_TIMEDOUT) {
    m = "the agent at " + path + " did not answer within " + std::to_string(timeout.count()) +
        " ms (is it overloaded or stopped? try --timeout)";
  } else if (os_errno == ENOENT || os_errno == ENOTDIR) {
    m = "the agent is not running: there is no socket at " + path +
        " (start it with systemctl start chitty-agent, or give its socket with --socket or CHITTY_AGENT_SOCKET)";
  } else if (os_errno == ECONNREFUSED) {
    m = "the agent is not running: nothing listens on " + path + " (a socket left behind by an agent that stopped)";
  } else if (os_errno == EACCES || os_errno == EPERM) {
    m = "no permission to connect to the agent's socket " + path + owner_text(path) +
        ": run as a member of the socket's group (ask the administrator to add you)";
  } else {
    m = "cannot talk to the agent at " + path + ": " + curl_easy_strerror(rc);
    if (os_errno != 0) m += std::string(" (") + std::strerror(static_cast<int>(os_errno)) + ")";
  }
  return Failure{Exit::unreachable, std::move(m), {}, {}, {}};
}

struct Sink {
  secure::SecureBuffer* secret = nullptr;
  std::string* text = nullptr;
  bool overflow = false;
  static constexpr std::size_t kMaxText = 64u << 20;
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
  if (s->text->size() + bytes > Sink::kMaxText) {
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
  auto* r = static_cast<Reply*>(user);
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

struct AgentClient::Impl {
  CURL* easy = nullptr;
  ~Impl() {
    if (easy != nullptr) curl_easy_cleanup(easy);
  }
};

AgentClient::AgentClient(std::string socket_path, secure::Arena& arena, std::chrono::milliseconds timeout)
    : socket_path_(std::move(socket_path)), arena_(arena), timeout_(timeout), impl_(std::make_unique<Impl>()) {}

AgentClient::~AgentClient() = default;

void AgentClient::disconnect() noexcept {
  if (impl_->easy != nullptr) {
    curl_easy_cleanup(impl_->easy);
    impl_->easy = nullptr;
  }
}

Outcome<Reply> AgentClient::send(const Request& request) {
  if (impl_->easy == nullptr) {
    impl_->easy = curl_easy_init();
    if (impl_->easy == nullptr) return failed(Exit::failure, "cannot initialise libcurl");
  }
  CURL* e = impl_->easy;
  Reply reply;
  Sink sink;
  if (request.secret_answer) {
    reply.secret = secure::SecureBuffer::allocate(arena_, secure::Arena::kMaxBlock);
    if (!reply.secret) return failed(Exit::failure, "no locked memory for the agent's answer");
    sink.secret = &reply.secret;
  } else {
    sink.text = &reply.text;
  }
  // The secret header's line is built in locked memory; libcurl's copy of
  // it is wiped when libcurl frees it (the wiping allocator).
  curl_slist* headers = nullptr;
  auto free_headers = [&] { curl_slist_free_all(headers); };
  for (const std::string& h : request.headers) headers = curl_slist_append(headers, h.c_str());
  if (!request.body.empty()) headers = curl_slist_append(headers, "Content-Type: application/json");
  headers = curl_slist_append(headers, "Expect:");
  if (request.secret_header_value != nullptr) {
    const secure::SecureBuffer& v = *request.secret_header_value;
    secure::SecureBuffer line =
        secure::SecureBuffer::allocate(arena_, request.secret_header_name.size() + 3 + v.size());
    if (!line || !line.append(request.secret_header_name) || !line.append(": ") ||
        !line.append(std::string_view(v.data(), v.size())) || !line.push_back('\0')) {
      free_headers();
      return failed(Exit::failure, "no locked memory for the request");
    }
    headers = curl_slist_append(headers, line.data());
  }
  std::string url = "http://localhost" + request.target;
  curl_easy_reset(e);
  curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, socket_path_.c_str());
  curl_easy_setopt(e, CURLOPT_URL, url.c_str());
  curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, request.method.c_str());
  if (request.method == "POST") {
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, request.body.c_str());
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
  } else {
    curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, request.method == "GET" ? nullptr : request.method.c_str());
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
  free_headers();
  if (rc != CURLE_OK) {
    if (sink.overflow) {
      return failed(Exit::failure, request.secret_answer ? "the agent's answer is larger than 64 KiB"
                                                         : "the agent's answer is larger than 64 MiB");
    }
    long os_errno = 0;
    curl_easy_getinfo(e, CURLINFO_OS_ERRNO, &os_errno);
    // A connection kept alive from an earlier request that the agent has
    // since closed is not a reason to give up: curl reconnects by itself;
    // what reaches here is a real failure.
    return tl::unexpected(unreachable(socket_path_, rc, os_errno, timeout_));
  }
  curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &reply.status);
  return reply;
}

std::string socket_path_from(const std::optional<std::string>& option) {
  if (option && !option->empty()) return *option;
  if (const char* env = std::getenv("CHITTY_AGENT_SOCKET"); env != nullptr && *env != '\0') return env;
  return "/run/chitty-agent/agent.sock";
}

Failure failure_of(const Reply& reply) {
  Failure f;
  std::string code, message;
  if (auto doc = json::parse(reply.body()); doc && doc->type == json::Value::Type::object) {
    if (const json::Value* err = doc->find("error"); err != nullptr && err->type == json::Value::Type::object) {
      if (const json::Value* c = err->find("code"); c != nullptr && c->type == json::Value::Type::string) code = c->string;
      if (const json::Value* m = err->find("message"); m != nullptr && m->type == json::Value::Type::string) {
        message = m->string;
      }
    }
  }
  if (code.empty()) {
    f.exit = reply.status == 503 ? Exit::unavailable : Exit::failure;
    f.message = "the agent answered HTTP " + std::to_string(reply.status) + " without an error it explains";
    return f;
  }
  f.code = code;
  f.agent_message = message;
  f.retry_after = reply.retry_after;
  if (code == "forbidden" || code == "context_mismatch" || code == "revoked" || code == "risk_denied" ||
      code == "unauthenticated") {
    f.exit = Exit::denied;
    f.message = "denied (" + code + "): " + message;
  } else if (code == "step_up_required") {
    f.exit = Exit::step_up;
    f.message = "step-up required: " + message + " (give the service's step-up token with --step-up-file FILE)";
  } else if (code == "rate_limited") {
    f.exit = Exit::rate_limited;
    f.message = "rate limited: " + message;
    if (reply.retry_after) f.message += " (retry in " + std::to_string(*reply.retry_after) + " s)";
  } else if (code == "not_found") {
    f.exit = Exit::not_found;
    f.message = "not found: " + message;
  } else if (code == "upstream_unavailable" || code == "audit_unavailable" || code == "server_busy") {
    f.exit = Exit::unavailable;
    f.message = "unavailable (" + code + "): " + message;
    if (reply.retry_after) f.message += " (retry in " + std::to_string(*reply.retry_after) + " s)";
  } else {
    f.exit = Exit::failure;
    f.message = "refused (" + code + "): " + message;
  }
  return f;
}

}  // namespace chitty::client
