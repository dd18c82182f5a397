#include "chitty/client/credential.hpp"

#include "chitty/base/text.hpp"
#include "chitty/json/in_place.hpp"
#include "chitty/json/writer.hpp"
#include "chitty/secure/secret_file.hpp"

namespace chitty::client {

namespace {

void write_context(json::Writer& w, const Context& ctx) {
  if (ctx.purpose.empty() && ctx.environment.empty()) return;
  w.key("context").begin_object();
  if (!ctx.purpose.empty()) w.key("purpose").string(ctx.purpose);
  if (!ctx.environment.empty()) w.key("environment").string(ctx.environment);
  w.end_object();
}

std::string query_of(const Context& ctx) {
  return ctx.purpose.empty() ? std::string() : "?purpose=" + percent_encode(ctx.purpose);
}

int base64_digit(char c) noexcept {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}

// Standard base64 (padding required) into `out`; false when malformed.
bool base64_decode(std::string_view in, secure::SecureBuffer& out) noexcept {
  if (in.size() % 4 != 0) return false;
  for (std::size_t i = 0; i < in.size(); i += 4) {
    int d[4];
    int pad = 0;
    for (int k = 0; k < 4; ++k) {
      char c = in[i + static_cast<std::size_t>(k)];
      if (c == '=' && i + 4 == in.size() && k >= 2) {
        d[k] = 0;
        ++pad;
        continue;
      }
      if (pad > 0) return false;
      d[k] = base64_digit(c);
      if (d[k] < 0) return false;
    }
    unsigned v = (static_cast<unsigned>(d[0]) << 18) | (static_cast<unsigned>(d[1]) << 12) |
                 (static_cast<unsigned>(d[2]) << 6) | static_cast<unsigned>(d[3]);
    if (!out.push_back(static_cast<char>((v >> 16) & 0xff))) return false;
    if (pad < 2 && !out.push_back(static_cast<char>((v >> 8) & 0xff))) return false;
    if (pad < 1 && !out.push_back(static_cast<char>(v & 0xff))) return false;
  }
  return true;
}

}  // namespace

Request credential_request(const Wanted& what, const Context& ctx) {
  Request r;
  r.secret_answer = true;
  if (ctx.mcp) r.headers.emplace_back("X-Chitty-Channel: mcp");
  if (ctx.step_up != nullptr) {
    r.secret_header_name = "X-Chitty-Step-Up";
    r.secret_header_value = ctx.step_up;
  }
  if (!what.service_token.empty()) {
    r.target = "/api/onepassword/service-token/" + percent_encode(what.service_token) + query_of(ctx);
    return r;
  }
  if (!what.integration_key.empty()) {
    r.target = "/api/onepassword/integration-key/" + percent_encode(what.integration_key) + query_of(ctx);
    return r;
  }
  r.method = "POST";
  if (!what.provision.empty()) {
    r.target = "/api/credentials/provision";
    r.body = json::object_text([&](json::Writer& w) {
      w.key("type").string(what.provision);
      write_context(w, ctx);
    });
    return r;
  }
  r.target = "/api/onepassword/retrieve";
  r.body = json::object_text([&](json::Writer& w) {
    if (!what.ref.empty()) {
      w.key("ref").string(what.ref);
    } else {
      w.key("credential_type").string(what.type);
    }
    write_context(w, ctx);
  });
  return r;
}

Outcome<Reply> ask(Transport& agent, const Wanted& what, const Context& ctx) {
  auto reply = agent.send(credential_request(what, ctx));
  if (!reply) return tl::unexpected(reply.error());
  if (reply->status != 200) return tl::unexpected(failure_of(*reply));
  return reply;
}

Outcome<std::optional<secure::SecureBuffer>> value_of(secure::Arena& arena, Reply& reply) {
  if (!reply.secret || reply.secret.size() + 1 > reply.secret.capacity()) {
    return failed(Exit::failure, "the agent's answer does not fit the buffer to parse it in");
  }
  auto doc = json::InPlace::parse(reply.secret);
  if (!doc) return failed(Exit::failure, "the agent's answer is not JSON: " + doc.error().message);
  json::Node credential = doc->root().get("credential");
  json::Node value = credential.get("value");
  if (credential.get("withheld").valid() && credential.get("withheld").boolean()) {
    return std::optional<secure::SecureBuffer>();
  }
  if (!value.valid() || !value.is(json::Node::Type::string)) {
    return failed(Exit::failure, "the agent's answer has no credential value");
  }
  std::string_view text = value.text();
  bool base64 = credential.get("encoding").valid() && credential.get("encoding").text() == "base64";
  secure::SecureBuffer out = secure::SecureBuffer::allocate(arena, text.empty() ? 1 : text.size());
  if (!out) return failed(Exit::failure, "no locked memory for the value");
  if (base64) {
    if (!base64_decode(text, out)) return failed(Exit::failure, "the agent's base64 value is malformed");
  } else if (!out.append(text)) {
    return failed(Exit::failure, "no locked memory for the value");
  }
  return std::optional<secure::SecureBuffer>(std::move(out));
}

Outcome<secure::SecureBuffer> fetch_value(Transport& agent, secure::Arena& arena, const Wanted& what,
                                          const Context& ctx) {
  auto reply = ask(agent, what, ctx);
  if (!reply) return tl::unexpected(reply.error());
  auto value = value_of(arena, *reply);
  reply->secret.reset();
  if (!value) return tl::unexpected(value.error());
  if (!*value) return failed(Exit::denied, "the agent withheld the value (mcp_release is off for this service)");
  return std::move(**value);
}

Outcome<secure::SecureBuffer> read_token_file(secure::Arena& arena, const std::string& path, std::string_view what,
                                              bool owner_only) {
  FileRules rules;
  rules.max_bytes = 4096;
  rules.min_bytes = 1;
  rules.owner_only = owner_only;
  auto token = secure::read_secret_file(arena, path, rules);
  if (!token) return failed(Exit::usage, secure::secret_file_message(token.error(), std::string(what) + " " + path));
  std::size_t n = token->size();
  while (n > 0 && (token->data()[n - 1] == '\n' || token->data()[n - 1] == '\r')) --n;
  token->truncate(n);
  if (n == 0) return failed(Exit::usage, std::string(what) + " " + path + " holds only a newline");
  return std::move(*token);
}

}  // namespace chitty::client
