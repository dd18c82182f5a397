#include "chitty/client/agent_client.hpp"

#include <grp.h>
#include <pwd.h>
#include <sys/stat.h>

#include <cstdlib>

#include "chitty/base/text.hpp"
#include "chitty/json/reader.hpp"

namespace chitty::client {

namespace {

std::string owner_text(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return "";
  std::string user = std::to_string(st.st_uid), group_name = std::to_string(st.st_gid);
  if (const passwd* pw = ::getpwuid(st.st_uid)) user = pw->pw_name;
  if (const struct group* gr = ::getgrgid(st.st_gid)) group_name = gr->gr_name;
  return " (owner " + user + ", group " + group_name + ", mode " + format_mode(st.st_mode & 07777) + ")";
}

Failure unreachable(const std::string& path, const upstream::SocketFailure& f, std::chrono::milliseconds timeout) {
  using Kind = upstream::SocketFailure::Kind;
  std::string m;
  switch (f.kind) {
    case Kind::timeout:
      m = "the agent at " + path + " did not answer within " + std::to_string(timeout.count()) +
          " ms (is it overloaded or stopped? try --timeout)";
      break;
    case Kind::no_socket:
      m = "the agent is not running: there is no socket at " + path +
          " (start it with systemctl start chitty-agent, or give its socket with --socket or CHITTY_AGENT_SOCKET)";
      break;
    case Kind::refused:
      m = "the agent is not running: nothing listens on " + path + " (a socket left behind by an agent that stopped)";
      break;
    case Kind::permission:
      m = "no permission to connect to the agent's socket " + path + owner_text(path) +
          ": run as a member of the socket's group (ask the administrator to add you)";
      break;
    case Kind::too_large:
    case Kind::other:
      m = "cannot talk to the agent at " + path + ": " + f.detail;
      break;
  }
  return Failure{Exit::unreachable, std::move(m), {}, {}, {}};
}

constexpr std::size_t kMaxText = 64u << 20;

}  // namespace

bool install_wiping_allocator() noexcept { return upstream::install_wiping_allocator(); }

AgentClient::AgentClient(std::string socket_path, secure::Arena& arena, std::chrono::milliseconds timeout)
    : socket_path_(socket_path), arena_(arena), timeout_(timeout), http_(std::move(socket_path), timeout) {}

AgentClient::~AgentClient() = default;

void AgentClient::disconnect() noexcept { http_.disconnect(); }

Outcome<Reply> AgentClient::send(const Request& request) {
  Reply reply;
  if (request.secret_answer) {
    reply.secret = secure::SecureBuffer::allocate(arena_, secure::Arena::kMaxBlock);
    if (!reply.secret) return failed(Exit::failure, "no locked memory for the agent's answer");
  }
  upstream::SocketRequest r;
  r.method = request.method;
  r.target = request.target;
  r.body = request.body;
  r.headers = request.headers;
  // The secret header's line is built in locked memory.
  secure::SecureBuffer line;
  if (request.secret_header_value != nullptr) {
    const secure::SecureBuffer& v = *request.secret_header_value;
    line = secure::SecureBuffer::allocate(arena_, request.secret_header_name.size() + 3 + v.size());
    if (!line || !line.append(request.secret_header_name) || !line.append(": ") ||
        !line.append(std::string_view(v.data(), v.size())) || !line.push_back('\0')) {
      return failed(Exit::failure, "no locked memory for the request");
    }
    r.secret_header_line = &line;
  }
  auto got = http_.perform(r, request.secret_answer ? &reply.secret : nullptr, &reply.text, kMaxText);
  if (!got) {
    if (got.error().kind == upstream::SocketFailure::Kind::too_large) {
      return failed(Exit::failure, request.secret_answer ? "the agent's answer is larger than 64 KiB"
                                                         : "the agent's answer is larger than 64 MiB");
    }
    return tl::unexpected(unreachable(socket_path_, got.error(), timeout_));
  }
  reply.status = got->status;
  reply.content_type = std::move(got->content_type);
  reply.request_id = std::move(got->request_id);
  reply.retry_after = got->retry_after;
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
