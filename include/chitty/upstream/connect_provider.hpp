// 1Password Connect as a source (docs/upstream.md).
//
// A reference op://VAULT/ITEM[/SECTION]/FIELD — each part a name or a
// 26-character ID — is resolved the way the official SDKs do: the vault by a
// `title eq` filter, the item by a `title eq` filter in it, then the full
// item by ID; the section and field are matched by label or ID,
// case-insensitively, inside the item. Names that match more than one vault,
// item, section or field are an error that names the candidates. Name → ID
// resolutions are cached (they are not secrets), so a steady-state fetch is
// one request; a cached ID that answers 404 is resolved again, once. Unknown
// references are remembered for `negative_ttl`.
//
// Availability: every request outcome and periodic /heartbeat and /health
// probes feed a circuit breaker; answers the server gave on purpose (401,
// 403, 404, 400) do not count as failures. A 429 starts a jittered backoff
// during which requests fail fast. A 401 re-reads the token file and retries
// once; if the token is unchanged (or still refused) the provider reports
// itself unauthorized — an alert, not an outage.
//
// Answers are received into locked memory and parsed in place there; only
// the value asked for is copied out (into another SecureBuffer), and the
// answer is wiped.
//
// Thread: loop thread only.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "chitty/base/clock.hpp"
#include "chitty/loop/task_queue.hpp"
#include "chitty/loop/timer.hpp"
#include "chitty/secure/arena.hpp"
#include "chitty/upstream/breaker.hpp"
#include "chitty/upstream/http_client.hpp"
#include "chitty/upstream/provider.hpp"
#include "chitty/upstream/token.hpp"

namespace chitty::upstream {

struct ConnectOptions {
  std::string name = "primary";  // "primary" or "backup", in logs and /health
  std::string url;               // base URL, e.g. "http://127.0.0.1:8080"
  std::chrono::milliseconds timeout{2000};
  std::chrono::milliseconds connect_timeout{1000};
  std::size_t max_response_bytes = 64 * 1024 - 1;
  std::chrono::milliseconds probe_interval{5000};    // /heartbeat
  std::chrono::milliseconds health_interval{60000};  // /health (its dependencies)
  Duration resolution_ttl = std::chrono::minutes(10);
  Duration negative_ttl = std::chrono::seconds(30);
  Duration rate_limit_backoff = std::chrono::seconds(1);
  Duration rate_limit_max_backoff = std::chrono::seconds(60);
  Breaker::Options breaker;
};

// What /health and the STATUS line show of one Connect server.
struct ConnectStatus {
  enum class Health { unknown, healthy, unreachable, unauthorized, rate_limited };
  Health health = Health::unknown;
  Breaker::State breaker = Breaker::State::closed;
  std::optional<WallTime> last_success;
  std::optional<WallTime> last_failure;
  std::optional<WallTime> unavailable_since;  // first failure of the current outage
  std::string last_error;                     // why the last failure, "" when healthy
  Duration last_latency{};
  std::string server_version;                              // 1Password-Connect-Version
  std::vector<std::pair<std::string, std::string>> dependencies;  // from /health: service -> status
  std::uint64_t requests = 0;  // HTTP requests sent (probes included)
  std::uint64_t failures = 0;  // availability failures
  std::uint64_t resolutions = 0;  // vault / item lookups (not the item fetch itself)
};
std::string_view connect_health_name(ConnectStatus::Health h) noexcept;

class ConnectProvider final : public Provider {
 public:
  // `random` returns numbers in [0, 1) (jitter).
  ConnectProvider(loop::Loop& loop, loop::TaskQueue& tasks, HttpClient& http, secure::Arena& arena,
                  const Clock& clock, Token& token, ConnectOptions options, std::function<double()> random);
  ~ConnectProvider() override;
  ConnectProvider(const ConnectProvider&) = delete;
  ConnectProvider& operator=(const ConnectProvider&) = delete;

  std::string_view source() const noexcept override { return "1password"; }
  bool holds(const catalog::Entry*) const noexcept override { return true; }
  void fetch(const FetchRequest& request, FetchDone done) override;
  std::optional<std::string> resolved_key(std::string_view canonical) const override;
  bool resolves() const noexcept override { return true; }
  // Resolves the reference (fetching the item, whose values are parsed in
  // locked memory and wiped unread) to learn its all-names and all-IDs
  // forms; remembered for resolution_ttl.
  void resolve(const FetchRequest& request, ResolveDone done) override;
  std::vector<std::string> aliases(std::string_view key) const override;
  // Available while the breaker is closed and the last outcome was not an
  // availability failure (so the first failure already means fallback).
  bool available() const noexcept override;

  // Starts the probes (the first one at once).
  void start();
  // Stops the probes and abandons requests in flight (their callbacks do
  // not run). Idempotent.
  void close() noexcept;
  // Called whenever status().health or the breaker state changes.
  void on_change(std::function<void()> listener) { listener_ = std::move(listener); }
  // A reload: new timeouts, intervals and breaker settings (not the URL).
  void reconfigure(const ConnectOptions& options);
  // Re-reads the token file (SIGHUP); logs the outcome.
  void reload_token();
  // Forgets every name → ID resolution and negative entry.
  void forget_resolutions();

  const ConnectStatus& status() const noexcept { return status_; }
  const ConnectOptions& options() const noexcept { return options_; }

 private:
  struct Job;
  using JobPtr = std::shared_ptr<Job>;
  enum class Step { vault, item, vault_name, full };

  void run(const JobPtr& job);
  void request(const JobPtr& job, Step step, std::string url);
  void on_answer(const JobPtr& job, Step step, std::string url, HttpResult r);
  void on_vaults(const JobPtr& job, HttpResponse& r);
  void on_items(const JobPtr& job, HttpResponse& r);
  void on_item(const JobPtr& job, HttpResponse& r);
  void finish(const JobPtr& job, FetchResult r);
  void fail(const JobPtr& job, FetchError kind, std::string message);

  void probe();
  void on_probe(bool health_probe, HttpResult r);
  void schedule_probe();
  void availability_failure(const std::string& why);
  // `authenticated`: the answer was to a request carrying the token (a /v1
  // call), so it also says the token is accepted.
  void availability_success(Duration latency, const std::string& version, bool authenticated);
  void set_health(ConnectStatus::Health h);
  void changed();
  std::string where() const;  // "Connect (primary, http://…)"

  loop::TaskQueue& tasks_;
  HttpClient& http_;
  secure::Arena& arena_;
  const Clock& clock_;
  Token& token_;
  ConnectOptions options_;
  std::function<double()> random_;
  Breaker breaker_;
  loop::Timer probe_timer_;
  std::function<void()> listener_;
  ConnectStatus status_;
  bool last_outcome_ok_ = true;
  bool closed_ = false;
  bool probe_in_flight_ = false;
  std::uint64_t probe_job_ = 0;
  MonoTime next_health_probe_{};
  MonoTime rate_limited_until_{};
  unsigned rate_limits_in_a_row_ = 0;

  struct Resolved {
    std::string id;
    MonoTime at;
  };
  std::unordered_map<std::string, Resolved> vault_ids_;  // folded vault name -> id
  std::unordered_map<std::string, Resolved> item_ids_;   // vault id + '\n' + folded title -> id
  // canonical reference -> resolved key (heterogeneous lookup by string_view).
  // It expires like the other resolutions: a renamed item stops answering
  // to its old name once resolution_ttl has passed (while the server is
  // unavailable it is kept: the cache's fallback window bounds it then).
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
  };
  struct Keyed {
    std::string key;
    MonoTime at;
  };
  std::unordered_map<std::string, Keyed, Hash, std::equal_to<>> keys_;
  std::unordered_map<std::string, std::string> vault_names_;  // vault id -> name
  struct Remembered {
    Resolution resolution;
    MonoTime at;
  };
  std::unordered_map<std::string, Remembered> resolutions_;  // canonical reference -> its forms
  std::unordered_map<std::string, MonoTime> negative_;   // canonical reference -> until
  std::map<std::uint64_t, JobPtr> jobs_;                 // in flight, by number
  std::uint64_t next_job_ = 1;
};

// Whether `s` has the shape of a Connect ID (26 of [a-z0-9]), as every SDK
// decides "ID or name".
bool is_connect_id(std::string_view s) noexcept;

}  // namespace chitty::upstream
