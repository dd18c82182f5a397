#include "chitty/upstream/token.hpp"

#include "chitty/log/log.hpp"
#include "chitty/base/file.hpp"
#include "chitty/secure/secret_file.hpp"
#include "environment.hpp"

namespace chitty::upstream {
namespace {

constexpr std::string_view kAssociated = "upstream-token";
constexpr std::size_t kMaxToken = 16 * 1024;

}  // namespace

bool valid_token(std::string_view t) noexcept {
  if (t.empty()) return false;
  for (char c : t) {
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

Result<secure::SecureBuffer> Token::read_file() const {
  const std::string shown = "token file " + path_;
  auto buf = secure::read_secret_file(
      arena_, path_, FileRules{.max_bytes = kMaxToken, .min_bytes = 1, .owner_only = true, .owned_by_agent = true});
  if (!buf) return fail(secure::secret_file_message(buf.error(), shown));
  std::size_t got = buf->size();
  while (got > 0 && (buf->data()[got - 1] == '\n' || buf->data()[got - 1] == '\r')) --got;
  buf->truncate(got);
  if (!valid_token({buf->data(), buf->size()})) {
    return fail(shown + " does not hold a token (empty, or spaces or control characters in it)");
  }
  return std::move(*buf);
}

Result<std::unique_ptr<Token>> Token::from_file(secure::Arena& arena, secure::Sealer& sealer, std::string path) {
  std::unique_ptr<Token> t(new Token(arena, sealer));
  t->path_ = std::move(path);
  auto plain = t->read_file();
  if (!plain) return tl::unexpected(plain.error());
  t->value_ = secure::SealedValue::seal(arena, sealer, plain->bytes(), std::string(kAssociated));
  if (!t->value_) return fail("no locked memory for the upstream token");
  return t;
}

Result<std::unique_ptr<Token>> Token::from_env(secure::Arena& arena, secure::Sealer& sealer, std::string name) {
  std::unique_ptr<Token> t(new Token(arena, sealer));
  t->env_name_ = std::move(name);
  bool valid = false;
  bool set = take_environment_variable(t->env_name_, [&](std::string_view value) {
    valid = valid_token(value);
    if (valid) t->value_ = secure::SealedValue::seal(arena, sealer, value, std::string(kAssociated));
  });
  if (!set) return fail("environment variable " + t->env_name_ + " (token_env) is not set");
  if (!valid) return fail("environment variable " + t->env_name_ + " does not hold a token");
  if (!t->value_) return fail("no locked memory for the upstream token");
  return t;
}

Result<bool> Token::reload() {
  if (path_.empty()) return false;
  auto plain = read_file();
  if (!plain) return tl::unexpected(plain.error());
  switch (value_.compare(plain->bytes())) {
    case secure::Comparison::equal: return false;
    case secure::Comparison::different: break;
    case secure::Comparison::unavailable:
      return fail("no locked memory to compare the token with the old one right now");
  }
  auto fresh = secure::SealedValue::seal(arena_, sealer_, plain->bytes(), std::string(kAssociated));
  if (!fresh) return fail("no locked memory for the upstream token");
  value_ = std::move(fresh);
  return true;
}

secure::SecureBuffer Token::bearer() const noexcept {
  static constexpr std::string_view kScheme = "Bearer ";
  secure::SecureBuffer plain = value_.open();
  if (!plain) return plain;
  secure::SecureBuffer out = secure::SecureBuffer::allocate(arena_, kScheme.size() + plain.size());
  if (!out) return out;
  if (!out.append(kScheme) || !out.append({plain.data(), plain.size()})) return {};
  return out;
}

std::string Token::describe() const {
  return path_.empty() ? "environment variable " + env_name_ : "file " + path_;
}

Result<void> TokenSlot::open(const std::string& path) {
  path_ = path;
  if (path.empty()) return {};
  auto t = Token::from_file(arena_, sealer_, path);
  if (!t) return fail(key_ + ": " + t.error().message);
  token_ = std::move(*t);
  return {};
}

void TokenSlot::reload(const std::string& path) {
  if (path == path_) {
    if (!token_) return;
    if (auto r = token_->reload(); !r) {
      log::error("upstream", "a token could not be re-read; keeping the one in use",
                 {{"key", key_}, {"reason", r.error().message}});
    }
    return;
  }
  if (path.empty()) {
    token_.reset();
    path_.clear();
    log::warn("upstream", "a token is turned off (its file is no longer configured)", {{"key", key_}});
    return;
  }
  auto t = Token::from_file(arena_, sealer_, path);
  if (!t) {
    log::error("upstream", "the new token file could not be read; keeping the token in use",
               {{"key", key_}, {"file", path}, {"reason", t.error().message}});
    return;
  }
  token_ = std::move(*t);
  path_ = path;
  log::info("upstream", "token read from a new file", {{"key", key_}, {"file", path}});
}

}  // namespace chitty::upstream
