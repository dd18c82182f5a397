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
// Inside (src/upstream): the requests and what they teach are here; which
// section and field of an item a reference names is the pure
// item_matcher.hpp; availability (breaker, probes, 429 backoff, status) is
// connect_health.hpp, a ConnectHealth this provider owns.
//
// Thread: loop thread only.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "chitty/base/clock.hpp"
#include "chitty/base/expiring_map.hpp"
#include "chitty/loop/task_queue.hpp"
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

  // Takes what a reload may change from `o`: everything but which server
  // this is (name and url).
  void reload_from(const ConnectOptions& o) {
    std::string keep_name = std::move(name), keep_url = std::move(url);
    *this = o;
    name = std::move(keep_name);
    url = std::move(keep_url);
  }
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

class ConnectHealth;  // src/upstream/connect_health.hpp

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
  void on_change(std::function<void()> listener);
  // A reload: new timeouts, intervals and breaker settings (not the URL).
  void reconfigure(const ConnectOptions& options);
  // Re-reads the token file (SIGHUP); logs the outcome.
  void reload_token();
  // Forgets every name → ID resolution and negative entry.
  void forget_resolutions();

  const ConnectStatus& status() const noexcept;
  const ConnectOptions& options() const noexcept { return options_; }

 private:
  struct Job;
  using JobPtr = std::shared_ptr<Job>;
  enum class Step { vault, item, vault_name, full };

  JobPtr new_job(const catalog::Reference& ref, std::string name_key);  // registered in jobs_
  void run(const JobPtr& job);
  // Fills the job's vault (Step::vault) or item (Step::item) ID: given as an
  // ID, or a name resolved earlier. False when it asked Connect instead (the
  // job goes on from the answer) or failed the job.
  bool known_id(const JobPtr& job, Step step);
  void request(const JobPtr& job, Step step, std::string url);
  void on_answer(const JobPtr& job, Step step, std::string url, HttpResult r);
  void on_status(const JobPtr& job, Step step, std::string url, HttpResponse& r);
  void malformed(const JobPtr& job, const std::string& why);  // an answer that is not what Connect sends
  // A vault or item list: the one ID the reference's name part names.
  void on_list(const JobPtr& job, HttpResponse& r, Step step);
  void on_item(const JobPtr& job, HttpResponse& r);
  void finish(const JobPtr& job, FetchResult r);
  void fail(const JobPtr& job, FetchError kind, std::string message);
  void remember_not_found(const JobPtr& job);  // for negative_ttl

  loop::TaskQueue& tasks_;
  HttpClient& http_;
  secure::Arena& arena_;
  const Clock& clock_;
  Token& token_;
  ConnectOptions options_;
  std::unique_ptr<ConnectHealth> health_;  // breaker, probes, 429 backoff, status
  bool closed_ = false;

  // What was learnt from Connect, each map bounded (the oldest entry makes
  // room) and expiring: the name → ID lookups and the forms of a reference
  // after resolution_ttl, "not found" after negative_ttl.
  template <class V>
  using Remembered = ExpiringMap<std::string, V>;
  struct NotFound {};
  Remembered<std::string> vault_ids_;    // folded vault name -> id
  Remembered<std::string> item_ids_;     // vault id + '\n' + folded title -> id
  // canonical reference -> resolved key. A renamed item stops answering to
  // its old name once resolution_ttl has passed — except while the server
  // is unavailable (resolved_key()): the cache's fallback window bounds it then.
  Remembered<std::string> keys_;
  Remembered<std::string> vault_names_;  // vault id -> name (never expires)
  Remembered<Resolution> resolutions_;   // canonical reference -> its forms
  Remembered<NotFound> negative_;        // canonical reference; each keeps the negative_ttl it was put with
  std::map<std::uint64_t, JobPtr> jobs_;  // in flight, by number
  std::uint64_t next_job_ = 1;
};

// Whether `s` has the shape of a Connect ID (26 of [a-z0-9]), as every SDK
// decides "ID or name".
bool is_connect_id(std::string_view s) noexcept;

}  // namespace chitty::upstream
