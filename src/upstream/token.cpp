#include "chitty/upstream/token.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "environment.hpp"

namespace chitty::upstream {
namespace {

constexpr std::string_view kAssociated = "upstream-token";
constexpr std::size_t kMaxToken = 16 * 1024;

std::string mode_text(mode_t m) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(m & 07777));
  return buf;
}

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
  int fd = ::open(path_.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) return fail(shown + ": " + std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail(shown + ": " + std::strerror(errno));
  if (!S_ISREG(st.st_mode)) return fail(shown + " is not a regular file");
  if ((st.st_mode & 0077) != 0) {
    return fail(shown + " is readable or writable by group or others (mode " + mode_text(st.st_mode) +
                "); chmod 0600 it (or give it with LoadCredential=)");
  }
  if (st.st_uid != ::geteuid() && st.st_uid != 0) {
    return fail(shown + " belongs to uid " + std::to_string(st.st_uid) + ", not to the agent's uid " +
                std::to_string(::geteuid()) + " or root");
  }
  if (st.st_size <= 0) return fail(shown + " is empty");
  if (static_cast<std::size_t>(st.st_size) > kMaxToken) return fail(shown + " is larger than 16 KiB");
  secure::SecureBuffer buf = secure::SecureBuffer::allocate(arena_, static_cast<std::size_t>(st.st_size) + 1);
  if (!buf) return fail("no locked memory to read " + shown);
  std::size_t got = 0;
  while (got < buf.capacity()) {
    ssize_t n = ::read(fd, buf.data() + got, buf.capacity() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return fail(shown + ": " + std::strerror(errno));
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  if (got == buf.capacity()) return fail(shown + " changed while it was read");
  while (got > 0 && (buf.data()[got - 1] == '\n' || buf.data()[got - 1] == '\r')) --got;
  buf.resize(got);
  if (!valid_token({buf.data(), buf.size()})) {
    return fail(shown + " does not hold a token (empty, or spaces or control characters in it)");
  }
  return buf;
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
  out.append(kScheme);
  out.append({plain.data(), plain.size()});
  return out;
}

std::string Token::describe() const {
  return path_.empty() ? "environment variable " + env_name_ : "file " + path_;
}

}  // namespace chitty::upstream
