// The agent's own credential for an upstream (the Connect token): read from
// a file (checked: a regular file, not readable by group or others, owned by
// the agent's uid or root) or taken once from an environment variable
// (scrubbed from the environment), and kept sealed in the arena. A file is
// re-read on SIGHUP and after the upstream answers 401; a variable cannot
// be, since it is gone from the environment after start.
//
// Thread: loop thread only.
#pragma once

#include <memory>
#include <span>
#include <string>

#include "chitty/base/result.hpp"
#include "chitty/secure/arena.hpp"
#include "chitty/secure/sealed_value.hpp"
#include "chitty/secure/sealer.hpp"
#include "chitty/secure/secure_buffer.hpp"

namespace chitty::upstream {

class Token {
 public:
  [[nodiscard]] static Result<std::unique_ptr<Token>> from_file(secure::Arena& arena, secure::Sealer& sealer, std::string path);
  [[nodiscard]] static Result<std::unique_ptr<Token>> from_env(secure::Arena& arena, secure::Sealer& sealer, std::string name);

  // Reads the file again. True if the token changed; false if unchanged or
  // not a file; an error (and the old token kept) if the file is now
  // unusable.
  [[nodiscard]] Result<bool> reload();

  // "Bearer <token>" in locked memory; empty when there is no locked memory
  // right now.
  secure::SecureBuffer bearer() const noexcept;
  // Whether `presented` is this token (constant time in its length): for a
  // token that authorises requests to the agent (the emergency token).
  // `unavailable` when there is no locked memory to compare right now: the
  // presented token is then neither right nor wrong, and must not be
  // counted as a failed attempt.
  secure::Comparison compare(std::span<const char> presented) const noexcept { return value_.compare(presented); }
  // Where it comes from, for messages: "file /run/…/op-token".
  std::string describe() const;
  bool reloadable() const noexcept { return !path_.empty(); }

 private:
  Token(secure::Arena& arena, secure::Sealer& sealer) : arena_(arena), sealer_(sealer) {}
  [[nodiscard]] Result<secure::SecureBuffer> read_file() const;

  secure::Arena& arena_;
  secure::Sealer& sealer_;
  std::string path_;      // "" for an environment variable
  std::string env_name_;
  secure::SealedValue value_;
};

// A token read from the file a configuration key names, which a reload may
// point elsewhere (the emergency token): the same path is re-read, a new
// one opened, an empty one turns the token off. On a failed reload the
// token in use stays, and the log says why. `key` names it in messages.
class TokenSlot {
 public:
  TokenSlot(secure::Arena& arena, secure::Sealer& sealer, std::string key)
      : arena_(arena), sealer_(sealer), key_(std::move(key)) {}
  // At start: an unreadable file is an error (the agent does not start).
  [[nodiscard]] Result<void> open(const std::string& path);
  // SIGHUP.
  void reload(const std::string& path);
  // Null when no file is configured.
  const Token* get() const noexcept { return token_.get(); }

 private:
  secure::Arena& arena_;
  secure::Sealer& sealer_;
  std::string key_;
  std::string path_;
  std::unique_ptr<Token> token_;
};

// A token is printable ASCII without spaces (a JWT is): anything else could
// split the Authorization header.
bool valid_token(std::string_view t) noexcept;

}  // namespace chitty::upstream
