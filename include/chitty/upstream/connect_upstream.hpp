// The 1Password Connect upstream as the configuration describes it
// (`[upstream.onepassword]`): the HTTP client, the token(s), the primary
// server and the backup, built with one call; reloaded and closed as one.
//
// Thread: loop thread only.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "chitty/base/clock.hpp"
#include "chitty/base/result.hpp"
#include "chitty/config/config.hpp"
#include "chitty/loop/loop.hpp"
#include "chitty/loop/task_queue.hpp"
#include "chitty/secure/arena.hpp"
#include "chitty/secure/sealer.hpp"
#include "chitty/upstream/connect_provider.hpp"
#include "chitty/upstream/http_client.hpp"
#include "chitty/upstream/token.hpp"

namespace chitty::upstream {

// The options of the primary (`backup` false) or the backup server.
ConnectOptions connect_options(const config::OnePasswordConfig& o, bool backup);

class ConnectUpstream {
 public:
  struct Deps {
    loop::Loop& loop;
    loop::TaskQueue& tasks;
    secure::Arena& arena;
    secure::Sealer& sealer;
    const Clock& clock;
    std::function<double()> jitter;  // [0, 1)
  };
  // Builds what `o` describes; null when no `url` is set (no Connect
  // upstream). Errors name the key and the reason (a URL refused by the
  // rule, a token that cannot be read).
  [[nodiscard]] static Result<std::unique_ptr<ConnectUpstream>> open(Deps deps, const config::OnePasswordConfig& o);
  ~ConnectUpstream();
  ConnectUpstream(const ConnectUpstream&) = delete;
  ConnectUpstream& operator=(const ConnectUpstream&) = delete;

  // The primary server, then the backup (when configured).
  std::vector<ConnectProvider*> servers() const;
  const ConnectProvider& primary() const noexcept { return *primary_; }
  const ConnectProvider* backup() const noexcept { return backup_.get(); }

  // Called whenever a server's health or breaker state changes.
  void on_change(std::function<void()> listener);
  // Starts the probes.
  void start();
  // A reload: new timeouts, intervals and breaker settings (not the URLs or
  // token sources: those need a restart), and the token files re-read.
  void reconfigure(const config::OnePasswordConfig& o);
  // Stops the probes and the client; requests in flight are abandoned.
  // Idempotent.
  void close();

 private:
  ConnectUpstream() = default;
  std::unique_ptr<Token> token_;
  std::unique_ptr<Token> backup_token_;
  std::unique_ptr<HttpClient> http_;
  std::unique_ptr<ConnectProvider> primary_;
  std::unique_ptr<ConnectProvider> backup_;
  bool closed_ = false;
};

}  // namespace chitty::upstream
