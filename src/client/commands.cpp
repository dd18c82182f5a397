// get, health, insights, revoke, audit query/tail: one request each (tail
// polls), the agent's answer printed.
#include "chitty/client/commands.hpp"

#include <fcntl.h>
#include <signal.h>
#include <termios.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <iostream>
#include <set>
#include <thread>

#include "chitty/base/clock.hpp"
#include "chitty/base/fd.hpp"
#include "chitty/base/text.hpp"
#include "chitty/base/time_format.hpp"
#include "chitty/base/units.hpp"
#include "chitty/catalog/reference.hpp"
#include "chitty/json/writer.hpp"

namespace chitty::client {

// ---------------------------------------------------------------------------
// Output

int report(const Failure& f) {
  std::string line = "chittyctl: " + f.message + "\n";
  (void)write_all(2, line);
  return static_cast<int>(f.exit);
}

bool write_all(int fd, std::string_view bytes) noexcept {
  while (!bytes.empty()) {
    ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    bytes.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

namespace {

void render(std::string& out, const json::Value& v, bool pretty, int depth) {
  auto newline = [&](int d) {
    if (!pretty) return;
    out += '\n';
    out.append(static_cast<std::size_t>(d) * 2, ' ');
  };
  switch (v.type) {
    case json::Value::Type::null: out += "null"; return;
    case json::Value::Type::boolean: out += v.boolean ? "true" : "false"; return;
    case json::Value::Type::number: {
      if (v.integer) {
        out += std::to_string(*v.integer);
      } else {
        std::string tmp;
        json::Writer w(tmp);
        w.number(v.number);
        out += tmp;
      }
      return;
    }
    case json::Value::Type::string:
      out += '"';
      append_json_escaped(out, v.string);
      out += '"';
      return;
    case json::Value::Type::array:
      out += '[';
      for (std::size_t i = 0; i < v.items.size(); ++i) {
        if (i > 0) out += ',';
        newline(depth + 1);
        render(out, v.items[i], pretty, depth + 1);
      }
      if (!v.items.empty()) newline(depth);
      out += ']';
      return;
    case json::Value::Type::object:
      out += '{';
      for (std::size_t i = 0; i < v.members.size(); ++i) {
        if (i > 0) out += ',';
        newline(depth + 1);
        out += '"';
        append_json_escaped(out, v.members[i].key);
        out += pretty ? "\": " : "\":";
        render(out, v.members[i].value, pretty, depth + 1);
      }
      if (!v.members.empty()) newline(depth);
      out += '}';
      return;
  }
}

// Prints a public JSON answer (indented on a terminal).
void print_json(const Session& s, std::string_view body) {
  auto doc = json::parse(body);
  std::string out = doc ? to_json(*doc, s.pretty) : std::string(body);
  out += '\n';
  (void)write_all(1, out);
}

// A public request; the answer whatever its status.
Outcome<Reply> send_public(Session& s, std::string method, std::string target, std::string body = {}) {
  Request r;
  r.method = std::move(method);
  r.target = std::move(target);
  r.body = std::move(body);
  if (s.context.mcp) r.headers.emplace_back("X-Chitty-Channel: mcp");
  return s.agent.send(r);
}

}  // namespace

std::string to_json(const json::Value& value, bool pretty) {
  std::string out;
  render(out, value, pretty, 0);
  return out;
}

// ---------------------------------------------------------------------------
// get

int get(Session& s, const GetOptions& o) {
  if (!o.what.ref.empty()) {
    if (auto ref = catalog::parse_reference(o.what.ref); !ref) {
      return report(Failure{Exit::usage, "invalid reference: " + ref.error().message, {}, {}, {}});
    }
  }
  auto reply = ask(s.agent, o.what, s.context);
  if (!reply) return report(reply.error());
  if (o.json) {
    // The whole answer, value included, straight from locked memory.
    bool ok = write_all(1, reply->body()) && write_all(1, "\n");
    reply->secret.reset();
    return ok ? 0 : report(Failure{Exit::failure, "cannot write to standard output", {}, {}, {}});
  }
  auto value = value_of(s.arena, *reply);
  reply->secret.reset();
  if (!value) return report(value.error());
  if (!*value) return report(Failure{Exit::denied, "the agent withheld the value", {}, {}, {}});
  const secure::SecureBuffer& v = **value;
  bool ok = write_all(1, std::string_view(v.data(), v.size())) && (!o.newline || write_all(1, "\n"));
  return ok ? 0 : report(Failure{Exit::failure, "cannot write to standard output", {}, {}, {}});
}

// ---------------------------------------------------------------------------
// health, insights

int health(Session& s) {
  auto reply = send_public(s, "GET", "/health");
  if (!reply) return report(reply.error());
  if (reply->status != 200 && reply->status != 503) return report(failure_of(*reply));
  print_json(s, reply->body());
  return reply->status == 200 ? 0 : static_cast<int>(Exit::unavailable);
}

int insights(Session& s, const std::string& service) {
  auto reply = send_public(s, "GET", "/api/onepassword/insights/" + percent_encode(service));
  if (!reply) return report(reply.error());
  if (reply->status != 200) return report(failure_of(*reply));
  print_json(s, reply->body());
  return 0;
}

// ---------------------------------------------------------------------------
// revoke

namespace {

// The terminal's settings while echo is off, so that ^C (or ^\) at the
// prompt gives the terminal back as it was before the process ends.
int g_prompt_tty = -1;
termios g_prompt_saved{};

void restore_and_reraise(int sig) noexcept {
  if (g_prompt_tty >= 0) ::tcsetattr(g_prompt_tty, TCSANOW, &g_prompt_saved);
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

Outcome<secure::SecureBuffer> prompt_token(secure::Arena& arena) {
  UniqueFd tty(::open("/dev/tty", O_RDWR | O_NOCTTY | O_CLOEXEC));
  if (!tty) {
    return failed(Exit::usage,
                  "no emergency token: give --token-file FILE or --token-credential NAME (never on the command line)");
  }
  termios saved{};
  bool restore = ::tcgetattr(tty.get(), &saved) == 0;
  struct sigaction handler {}, old_int {}, old_quit {}, old_term {};
  if (restore) {
    g_prompt_saved = saved;
    g_prompt_tty = tty.get();
    handler.sa_handler = &restore_and_reraise;
    ::sigemptyset(&handler.sa_mask);
    ::sigaction(SIGINT, &handler, &old_int);
    ::sigaction(SIGQUIT, &handler, &old_quit);
    ::sigaction(SIGTERM, &handler, &old_term);
    termios quiet = saved;
    quiet.c_lflag &= static_cast<tcflag_t>(~ECHO);
    quiet.c_lflag |= ECHONL;
    ::tcsetattr(tty.get(), TCSANOW, &quiet);
  }
  (void)write_all(tty.get(), "Emergency token: ");
  secure::SecureBuffer token = secure::SecureBuffer::allocate(arena, 4096);
  bool ok = static_cast<bool>(token);
  while (ok) {
    char c = 0;
    ssize_t n = ::read(tty.get(), &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0 || c == '\n') break;
    if (c != '\r' && !token.push_back(c)) ok = false;
    c = 0;
  }
  if (restore) {
    ::tcsetattr(tty.get(), TCSANOW, &saved);
    ::sigaction(SIGINT, &old_int, nullptr);
    ::sigaction(SIGQUIT, &old_quit, nullptr);
    ::sigaction(SIGTERM, &old_term, nullptr);
    g_prompt_tty = -1;
  }
  if (!ok) return failed(Exit::usage, "the emergency token typed is longer than 4096 bytes");
  if (token.size() == 0) return failed(Exit::usage, "no emergency token typed");
  return token;
}

}  // namespace

Outcome<secure::SecureBuffer> emergency_token(secure::Arena& arena, const TokenSource& from) {
  if (!from.file.empty()) return read_token_file(arena, from.file, "emergency token file", true);
  if (!from.credential.empty()) {
    const char* dir = std::getenv("CREDENTIALS_DIRECTORY");
    if (dir == nullptr || *dir == '\0') {
      return failed(Exit::usage, "--token-credential " + from.credential +
                                     ": $CREDENTIALS_DIRECTORY is not set (run under systemd with LoadCredential=)");
    }
    if (from.credential.find('/') != std::string::npos) {
      return failed(Exit::usage, "--token-credential takes a credential name, not a path");
    }
    // systemd's credentials are owner-only already; their mode is 0400 or 0440.
    return read_token_file(arena, std::string(dir) + "/" + from.credential, "emergency token credential", false);
  }
  if (!from.prompt) return failed(Exit::usage, "no emergency token: give --token-file FILE or --token-credential NAME");
  return prompt_token(arena);
}

int revoke(Session& s, const RevokeOptions& o) {
  int forms = (o.ref.empty() ? 0 : 1) + (o.type.empty() ? 0 : 1) + (o.service.empty() ? 0 : 1) + (o.all ? 1 : 0);
  if (forms != 1) {
    return report(Failure{Exit::usage, "say what to revoke, one way: REF, --type TYPE, --service NAME or --all", {}, {},
                          {}});
  }
  if (!o.ref.empty()) {
    if (auto ref = catalog::parse_reference(o.ref); !ref) {
      return report(Failure{Exit::usage, "invalid reference: " + ref.error().message, {}, {}, {}});
    }
  }
  auto token = emergency_token(s.arena, o.token);
  if (!token) return report(token.error());
  Request r;
  r.method = "POST";
  r.target = o.clear ? "/api/onepassword/emergency-revoke/clear" : "/api/onepassword/emergency-revoke";
  r.body = json::object_text([&](json::Writer& w) {
    if (!o.ref.empty()) w.key("ref").string(o.ref);
    if (!o.type.empty()) w.key("credential_type").string(o.type);
    if (!o.service.empty()) w.key("service").string(o.service);
    if (o.all) w.key("all").boolean(true);
    if (!o.reason.empty()) w.key("reason").string(o.reason);
  });
  r.secret_header_name = "X-Emergency-Token";
  r.secret_header_value = &*token;
  if (s.context.mcp) r.headers.emplace_back("X-Chitty-Channel: mcp");
  auto reply = s.agent.send(r);
  token->reset();
  if (!reply) return report(reply.error());
  if (reply->status != 200) return report(failure_of(*reply));
  print_json(s, reply->body());
  return 0;
}

// ---------------------------------------------------------------------------
// audit

namespace {

// --since: an RFC 3339 time, or a duration back from now.
Outcome<std::string> since_time(std::string_view text) {
  if (text.empty()) return std::string();
  if (parse_rfc3339(text)) return std::string(text);
  auto d = parse_duration(text);
  if (!d) {
    return failed(Exit::usage, "--since \"" + std::string(text.substr(0, 64)) +
                                   "\": give an RFC 3339 time (2026-12-08T09:00:00Z) or a duration back (15m, 2h)");
  }
  return format_rfc3339_ms(SystemClock().wall_now() - std::chrono::duration_cast<Duration>(*d));
}

std::string audit_target(const std::string& service, const std::string& since, std::size_t limit) {
  std::string t = "/api/credentials/audit?limit=" + std::to_string(limit);
  if (!service.empty()) t += "&service=" + percent_encode(service);
  if (!since.empty()) t += "&since=" + percent_encode(since);
  return t;
}

Outcome<json::Value> audit_events(Session& s, const std::string& service, const std::string& since, std::size_t limit) {
  auto reply = send_public(s, "GET", audit_target(service, since, limit));
  if (!reply) return tl::unexpected(reply.error());
  if (reply->status != 200) return tl::unexpected(failure_of(*reply));
  auto doc = json::parse(reply->body());
  const json::Value* events = doc ? doc->find("events") : nullptr;
  if (events == nullptr || events->type != json::Value::Type::array) {
    return failed(Exit::failure, "the agent's audit answer has no events");
  }
  return *events;
}

std::string text_of(const json::Value& event, std::string_view key) {
  const json::Value* v = event.find(key);
  return v != nullptr && v->type == json::Value::Type::string ? v->string : std::string();
}

}  // namespace

int audit_query(Session& s, const AuditOptions& o) {
  if (o.limit < 1 || o.limit > 1000) return report(Failure{Exit::usage, "--limit takes 1 to 1000", {}, {}, {}});
  auto since = since_time(o.since);
  if (!since) return report(since.error());
  if (o.json) {
    auto reply = send_public(s, "GET", audit_target(o.service, *since, o.limit));
    if (!reply) return report(reply.error());
    if (reply->status != 200) return report(failure_of(*reply));
    print_json(s, reply->body());
    return 0;
  }
  auto events = audit_events(s, o.service, *since, o.limit);
  if (!events) return report(events.error());
  std::string out;
  for (const auto& e : events->items) out += to_json(e, false) + "\n";
  return write_all(1, out) ? 0 : static_cast<int>(Exit::failure);
}

int audit_tail(Session& s, const AuditOptions& o) {
  if (o.limit < 1 || o.limit > 1000) return report(Failure{Exit::usage, "-n takes 1 to 1000", {}, {}, {}});
  auto since = since_time(o.since);
  if (!since) return report(since.error());
  auto events = audit_events(s, o.service, *since, o.limit);
  if (!events) return report(events.error());
  // Events are printed oldest first, one JSON object per line. Following,
  // the agent is asked for what came at or after the last time seen; events
  // of that same millisecond come again and are recognised by their id.
  std::string last_at;
  std::set<std::string> seen_at_last;
  auto print = [&](const json::Value& list) -> bool {
    std::string out;
    for (const auto& e : list.items) {
      std::string at = text_of(e, "at"), id = text_of(e, "id");
      if (at == last_at && seen_at_last.count(id) != 0) continue;
      if (at != last_at) {
        last_at = at;
        seen_at_last.clear();
      }
      seen_at_last.insert(id);
      out += to_json(e, false) + "\n";
    }
    return write_all(1, out);
  };
  if (!print(*events)) return static_cast<int>(Exit::failure);
  if (!o.follow) return 0;
  // Each poll is a request from the admin service's rate-limit bucket: when
  // it runs dry, the tail waits as long as the agent says (and says so once).
  std::chrono::milliseconds wait = o.interval;
  bool told = false;
  for (;;) {
    std::this_thread::sleep_for(wait);
    wait = o.interval;
    auto more = audit_events(s, o.service, last_at.empty() ? *since : last_at, 1000);
    if (!more) {
      // An agent restarting is worth waiting for; anything else ends the tail.
      const Failure& f = more.error();
      if (f.exit == Exit::rate_limited) {
        wait = std::max(o.interval, std::chrono::milliseconds(std::clamp<long>(f.retry_after.value_or(5), 1, 300) * 1000));
        if (!told) {
          report(Failure{Exit::rate_limited, f.message + "; following goes on when the bucket refills (each poll is "
                                                          "one request of the service's rate_limit)", {}, {}, {}});
          told = true;
        }
        continue;
      }
      if (f.exit != Exit::unreachable && f.exit != Exit::unavailable) return report(f);
      continue;
    }
    if (!print(*more)) return static_cast<int>(Exit::failure);
  }
}

}  // namespace chitty::client
