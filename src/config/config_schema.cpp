// The agent's configuration schema: every key, its type, default, bounds and
// meaning. docs/config.md documents the same table (a unit test keeps them in
// step).
#include <array>
#include <string>

#include "chitty/base/units.hpp"
#include "chitty/config/schema.hpp"

namespace chitty::config {
namespace {

constexpr std::int64_t kKiB = 1024;
constexpr std::int64_t kMiB = 1024 * 1024;
constexpr std::int64_t kSecond = 1000;  // duration bounds are in milliseconds
constexpr std::int64_t kMinute = 60 * kSecond;

constexpr std::array<std::string_view, 5> kLogLevels{"debug", "info", "warning", "warn", "error"};

// sockaddr_un.sun_path holds 108 bytes including the terminating NUL.
constexpr std::int64_t kMaxSocketPath = 107;

Schema make_schema() {
  using A = AgentConfig;
  Schema s;
  s.tables.push_back(Table{
      "agent",
      false,
      "The socket clients connect to, the state directory, and the limits every client is held to.",
      {
          {"socket", Kind::Path, "\"/run/chitty-agent/agent.sock\"", 0, kMaxSocketPath, {},
           "Path of the Unix socket. Created with socket_mode and socket_group before it accepts; a stale "
           "socket file is replaced only when nothing answers on it.",
           member(&A::socket)},
          {"socket_mode", Kind::FileMode, "\"0660\"", 0, 0777, {},
           "Permission bits of the socket file. Bits for others need socket_world_accessible = true.",
           member(&A::socket_mode)},
          {"socket_group", Kind::String, "\"\"", 0, 64, {},
           "Group (name or numeric id) that owns the socket file; empty keeps the agent's own group.",
           member(&A::socket_group)},
          {"socket_world_accessible", Kind::Boolean, "false", 0, 0, {},
           "Allow a socket_mode that lets every local user connect (policy still decides what they get).",
           member(&A::socket_world_accessible)},
          {"state_dir", Kind::Path, "\"/var/lib/chitty-agent\"", 0, 4000, {},
           "Directory for durable state. Locked (flock) so two agents never share it; created 0700 if missing.",
           member(&A::state_dir)},
          {"log_level", Kind::Enum, "\"info\"", 0, 0, kLogLevels,
           "Least severe level that is logged: debug, info, warning, error.", member(&A::log_level)},
          {"max_connections", Kind::Integer, "1024", 1, 65536, {},
           "Connections open at once, all clients together. Beyond it new connections get 503 and are closed.",
           member(&A::max_connections)},
          {"max_connections_per_uid", Kind::Integer, "256", 1, 65536, {},
           "Connections open at once from one uid (SO_PEERCRED). Beyond it new connections get 429 and are "
           "closed.",
           member(&A::max_connections_per_uid)},
          {"max_header_bytes", Kind::Size, "\"16KiB\"", kKiB, kMiB, {},
           "Bytes of header fields in one request (names and values). Beyond it: 431.",
           member(&A::max_header_bytes)},
          {"max_headers", Kind::Integer, "64", 1, 1024, {}, "Header fields in one request. Beyond it: 431.",
           member(&A::max_headers)},
          {"max_uri_bytes", Kind::Size, "\"8KiB\"", 256, 64 * kKiB, {},
           "Length of the request target (path and query). Beyond it: 414.", member(&A::max_uri_bytes)},
          {"max_body_bytes", Kind::Size, "\"64KiB\"", kKiB, 16 * kMiB, {},
           "Length of a request body (Content-Length). Beyond it: 413.", member(&A::max_body_bytes)},
          {"max_requests_per_connection", Kind::Integer, "1000", 1, 1'000'000'000, {},
           "Requests served on one keep-alive connection; the last response carries Connection: close.",
           member(&A::max_requests_per_connection)},
          {"max_pipelined_requests", Kind::Integer, "16", 1, 1024, {},
           "Requests of one connection being handled at once. Further pipelined requests wait unread.",
           member(&A::max_pipelined_requests)},
          {"idle_timeout", Kind::Duration, "\"60s\"", 100, 60 * kMinute, {},
           "How long a keep-alive connection may sit idle between requests before it is closed.",
           member(&A::idle_timeout)},
          {"header_timeout", Kind::Duration, "\"10s\"", 100, 10 * kMinute, {},
           "Time from the first byte of a request to the end of its headers. Beyond it: 408 and close.",
           member(&A::header_timeout)},
          {"body_timeout", Kind::Duration, "\"10s\"", 100, 10 * kMinute, {},
           "Time from the end of the headers to the end of the body. Beyond it: 408 and close.",
           member(&A::body_timeout)},
          {"write_timeout", Kind::Duration, "\"10s\"", 100, 10 * kMinute, {},
           "How long a response may wait for a client that does not read it before the connection is dropped.",
           member(&A::write_timeout)},
          {"shutdown_timeout", Kind::Duration, "\"10s\"", 0, 10 * kMinute, {},
           "On SIGTERM/SIGINT, how long requests in flight may take to finish before connections are closed.",
           member(&A::shutdown_timeout)},
      },
      [](void* root) -> void* { return &static_cast<Config*>(root)->agent; },
  });
  return s;
}

std::string octal(std::uint32_t mode) {
  std::string out = "0000";
  for (int i = 3; i >= 0; --i) {
    out[static_cast<std::size_t>(i)] = static_cast<char>('0' + (mode & 7));
    mode >>= 3;
  }
  return out;
}

}  // namespace

const Schema& agent_schema() {
  static const Schema schema = make_schema();
  return schema;
}

std::vector<Problem> validate(const Config& c) {
  std::vector<Problem> out;
  const AgentConfig& a = c.agent;
  if ((a.socket_mode & 0007) != 0 && !a.socket_world_accessible) {
    out.push_back({"agent.socket_mode", "socket_mode " + octal(a.socket_mode) +
                                            " lets every local user connect; use 0660 (owner and group), or "
                                            "set agent.socket_world_accessible = true if that is intended"});
  }
  if ((a.socket_mode & 0222) == 0) {
    out.push_back({"agent.socket_mode", "socket_mode " + octal(a.socket_mode) +
                                            " grants nobody write permission, so no client could connect"});
  }
  if (a.max_connections_per_uid > a.max_connections) {
    out.push_back({"agent.max_connections_per_uid",
                   "max_connections_per_uid (" + std::to_string(a.max_connections_per_uid) +
                       ") is larger than max_connections (" + std::to_string(a.max_connections) + ")"});
  }
  if (a.socket.ends_with('/')) {
    out.push_back({"agent.socket", "socket must name a file, not a directory"});
  }
  return out;
}

std::string default_config_toml() {
  std::string out =
      "# chitty-agent configuration: every key at its default.\n"
      "# Reference: docs/config.md. Check a file with: chitty-agent --check-config FILE\n";
  for (const auto& t : agent_schema().tables) {
    out += "\n# " + std::string(t.doc) + "\n";
    out += t.is_array ? "[[" + std::string(t.name) + "]]\n" : "[" + std::string(t.name) + "]\n";
    for (const auto& k : t.keys) {
      out += "\n# " + std::string(k.doc) + "\n# type: " + std::string(kind_name(k.kind));
      if (k.kind == Kind::Integer) {
        out += ", " + std::to_string(k.min) + " to " + std::to_string(k.max);
      } else if (k.kind == Kind::Duration) {
        out += ", " + format_duration(std::chrono::milliseconds(k.min)) + " to " +
               format_duration(std::chrono::milliseconds(k.max));
      } else if (k.kind == Kind::Size) {
        out += ", " + format_size(static_cast<std::uint64_t>(k.min)) + " to " +
               format_size(static_cast<std::uint64_t>(k.max));
      } else if ((k.kind == Kind::Path || k.kind == Kind::String) && k.max > 0) {
        out += ", at most " + std::to_string(k.max) + " bytes";
      }
      out += "\n" + std::string(k.name) + " = " + std::string(k.default_toml) + "\n";
    }
  }
  return out;
}

Config defaults() {
  Config c;
  auto problems = apply_defaults(agent_schema(), &c);
  // The defaults are part of the program: a default that fails its own key is
  // a build defect that the unit tests catch, never a runtime condition.
  if (!problems.empty()) std::abort();
  c.source = "<built-in defaults>";
  return c;
}

std::string Diagnostic::to_string() const {
  std::string out = file;
  if (line != 0) {
    out += ':' + std::to_string(line);
    if (column != 0) out += ':' + std::to_string(column);
  }
  out += ": " + message;
  return out;
}

}  // namespace chitty::config
