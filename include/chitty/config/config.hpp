// The agent's configuration as plain structs, filled from TOML through a
// declared schema (schema.hpp). Nothing outside the config module sees TOML.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "chitty/base/result.hpp"
#include "chitty/catalog/catalog.hpp"

#include "chitty/log/log.hpp"

namespace chitty::config {

using std::chrono::milliseconds;

// [agent]: the socket, the state directory, and every limit a client can push
// against. Defaults and bounds live in the schema table (src/config/schema.toml)
// and are documented in docs/config.md.
struct AgentConfig {
  std::string socket;
  std::uint32_t socket_mode = 0;
  std::string socket_group;
  bool socket_world_accessible = false;
  std::string state_dir;
  log::Level log_level = log::Level::info;

  std::uint32_t max_connections = 0;
  std::uint32_t max_connections_per_uid = 0;
  std::uint32_t reserved_service_connections = 0;  // slots only [[service]] callers may take
  std::uint64_t max_header_bytes = 0;
  std::uint32_t max_headers = 0;
  std::uint64_t max_uri_bytes = 0;
  std::uint64_t max_body_bytes = 0;
  std::uint32_t max_requests_per_connection = 0;
  std::uint32_t max_pipelined_requests = 0;

  milliseconds idle_timeout{0};
  milliseconds header_timeout{0};
  milliseconds body_timeout{0};
  milliseconds write_timeout{0};
  milliseconds shutdown_timeout{0};
  std::uint32_t max_secret_responses_per_connection = 0;
  std::string unknown_caller_rate_limit;  // the bucket callers matching no [[service]] share
};

// [[cache.category]]: a TTL for the credentials of one catalog category.
struct CategoryTtl {
  std::string name;
  milliseconds ttl{0};
};

// [cache]: how long values are served, and how much locked memory they take.
struct CacheConfig {
  milliseconds ttl{0};
  milliseconds fallback_window{0};
  std::uint32_t max_entries = 0;
  std::uint64_t max_locked_bytes = 0;
  std::uint64_t transient_locked_bytes = 0;
  bool allow_unlocked_memory = false;
  std::vector<CategoryTtl> categories;
};

// [upstream.onepassword]: the 1Password Connect server (docs/upstream.md).
struct OnePasswordConfig {
  std::string url;  // "" = no Connect upstream
  std::string token_file;
  std::string token_env;
  std::string backup_url;  // tried when the primary is unavailable, before the env fallback
  std::string backup_token_file;  // "" = the primary's token
  std::string backup_token_env;
  std::string ca_file;
  bool allow_insecure_http = false;
  milliseconds timeout{0};
  milliseconds connect_timeout{0};
  std::uint64_t max_response_bytes = 0;
  std::string services_vault;
  std::string integrations_vault;
  milliseconds probe_interval{0};
  milliseconds health_interval{0};
  std::uint32_t failure_threshold = 0;
  milliseconds breaker_backoff{0};
  milliseconds breaker_max_backoff{0};
  milliseconds resolution_ttl{0};
  milliseconds negative_ttl{0};
  milliseconds rate_limit_backoff{0};
  bool operator==(const OnePasswordConfig&) const = default;
};

// [fallback]: sources used when the upstream cannot answer.
struct FallbackConfig {
  bool env = true;
  bool systemd_credentials = true;
  bool operator==(const FallbackConfig&) const = default;
};

// [[credential]]: the catalog (SPEC §3 and the seed's migration table).
struct CredentialConfig {
  std::string type;
  std::string ref;
  std::string env;                 // environment variable with the value; "" for none
  std::string systemd_credential;  // name under $CREDENTIALS_DIRECTORY; "" for none
  std::string category;
  std::string target;
  bool operator==(const CredentialConfig&) const = default;
};

// [[service]]: who may read what (docs/policy.md). A caller is the first
// service whose every given selector matches an established fact of its
// identity; a service without selectors must say `default = true`.
struct ServiceConfig {
  std::string name;
  std::optional<std::int64_t> uid;
  std::optional<std::int64_t> gid;
  std::string unit;       // systemd unit ("chitty-ops.service"); "" = no selector
  std::string container;  // container id (full, or a prefix of at least 12 characters)
  std::string exe;        // absolute executable path
  bool is_default = false;
  std::vector<std::string> allow;     // "type:NAME" or op:// references and globs
  std::vector<std::string> purposes;  // empty = any purpose (none required)
  std::string rate_limit;             // "100/h"
  bool admin = false;
  bool mcp_release = false;        // values may be released over MCP (docs/mcp.md)
  std::string step_up_token_file;  // "" = no step-up token: step-up band requests are refused
};

// [audit]: the durable spool and its sink (docs/audit.md).
struct AuditConfig {
  bool durable = true;            // false: in memory only (benchmarks, development)
  std::string chain_key_file;     // "" = a key generated into the state directory
  std::string sink;               // "" = no shipping (the spool is the record)
  std::string sink_format;        // "ndjson" | "journal-export"
  std::string token_file;         // bearer token for the sink
  bool allow_insecure_http = false;
  std::string ca_file;
  std::uint64_t max_spool_bytes = 0;
  std::uint64_t reserve_bytes = 0;
  std::uint64_t segment_bytes = 0;
  milliseconds fsync_interval{0};
  std::uint32_t fsync_events = 0;
  std::uint32_t batch_events = 0;
  std::uint64_t batch_bytes = 0;
  milliseconds ship_interval{0};
  milliseconds sink_timeout{0};
  milliseconds retry_backoff{0};
  milliseconds retry_max_backoff{0};
  milliseconds aggregate_window{0};
  std::uint32_t aggregate_keys = 0;
  bool journal_mirror = true;
  bool operator==(const AuditConfig&) const = default;
};

// [emergency]: emergency revocation.
struct EmergencyConfig {
  std::string token_file;  // "" = emergency revocation is disabled
  bool operator==(const EmergencyConfig&) const = default;
};

// [predict]: prediction and prefetching (docs/prediction.md). Defaults and
// bounds in the schema.
struct PredictConfig {
  bool enabled = false;
  std::int64_t refresh_at_percent = 0;
  std::int64_t refresh_jitter_percent = 0;
  milliseconds startup_window{0};
  milliseconds coaccess_window{0};
  std::int64_t coaccess_min_count = 0;
  std::int64_t coaccess_min_percent = 0;
  std::int64_t period_tolerance_percent = 0;
  milliseconds periodic_lead{0};
  std::int64_t max_prefetches_per_minute = 0;
  std::int64_t max_prefetches_per_service_per_minute = 0;
  std::int64_t upstream_reads_per_hour = 0;
  milliseconds save_interval{0};
  std::int64_t audit_events_per_minute = 0;
  bool operator==(const PredictConfig&) const = default;
};

// [risk.weights]: points per factor (docs/risk.md), in risk::Factor order.
struct RiskWeights {
  std::int64_t identity_partial = 0;
  std::int64_t service_mismatch = 0;
  std::int64_t purpose_not_allowed = 0;
  std::int64_t first_access = 0;
  std::int64_t new_references = 0;
  std::int64_t new_executable = 0;
  std::int64_t new_unit = 0;
  std::int64_t new_uid = 0;
  std::int64_t unusual_hour = 0;
  std::int64_t unusual_hour_activity = 0;
  std::int64_t burst = 0;
  std::int64_t enumeration = 0;
  std::int64_t recently_revoked = 0;
  bool operator==(const RiskWeights&) const = default;
};

// [[risk.category]]: the purposes a catalog category may be read for.
struct RiskCategory {
  std::string name;
  std::vector<std::string> purposes;
  bool operator==(const RiskCategory&) const = default;
};

// [risk]: scoring (docs/risk.md).
struct RiskConfig {
  bool enabled = false;
  milliseconds learning_period{0};
  std::int64_t learning_requests = 0;
  milliseconds enumeration_window{0};
  std::int64_t enumeration_refs = 0;
  std::int64_t enumeration_failures = 0;
  milliseconds novelty_window{0};
  std::int64_t novelty_refs = 0;
  milliseconds odd_hours_window{0};
  std::int64_t odd_hours_requests = 0;
  std::int64_t burst_min = 0;
  std::int64_t burst_factor_percent = 0;
  std::int64_t unusual_hour_percent = 0;
  milliseconds hours_learning_period{0};
  milliseconds revoked_within{0};
  milliseconds save_interval{0};
  RiskWeights weights;
  std::vector<RiskCategory> categories;
  bool operator==(const RiskConfig&) const = default;
};

struct Config {
  AgentConfig agent;
  CacheConfig cache;
  OnePasswordConfig onepassword;
  FallbackConfig fallback;
  std::vector<CredentialConfig> credentials;
  std::vector<ServiceConfig> services;
  AuditConfig audit;
  EmergencyConfig emergency;
  PredictConfig predict;
  RiskConfig risk;
  std::string source;  // the file it came from, or "<built-in defaults>"
};

// One problem found while loading, located in the file (line and column are
// 1-based; 0 when the problem is not tied to a position, e.g. unreadable file).
struct Diagnostic {
  std::string file;
  std::uint32_t line = 0;
  std::uint32_t column = 0;
  std::string message;

  // "FILE:LINE:COLUMN: message" (or "FILE: message" without a position).
  std::string to_string() const;
};

using LoadResult = tl::expected<Config, std::vector<Diagnostic>>;

// The built-in configuration: every key at its default. Used when the agent is
// started without --config.
Config defaults();

// Reads and validates a TOML file. Every problem is reported, not only the
// first: syntax errors (TOML stops at the first one), unknown keys (with a
// suggestion), wrong types, out-of-range values and cross-key conflicts.
LoadResult load_file(const std::string& path);

// The same for text already in memory; `source_name` is used in diagnostics.
LoadResult load_string(std::string_view text, std::string_view source_name);

// A problem found by the cross-key checks, attributed to one key so that the
// loader can point at its line.
struct Problem {
  std::string key;  // dotted: "agent.socket_mode"
  std::string message;
};

// Cross-key checks on a complete Config (also applied to defaults + command
// line overrides). Returns the problems, empty when valid.
std::vector<Problem> validate(const Config& c);

// A commented TOML document listing every key with its default, type, bounds
// and meaning: `chitty-agent --print-default-config`.
std::string default_config_toml();

// The credential catalog a configuration describes: its [[credential]]
// sections, with the fallback sources `[fallback]` allows. The validation
// has accepted it already, so an error here is a bug; it is reported.
[[nodiscard]] Result<std::shared_ptr<const catalog::Catalog>> catalog_from(const Config& c);
// Every environment variable the [[credential]] sections name, whether or
// not environment fallbacks are on (they are scrubbed either way).
std::vector<std::string> catalog_env_names(const Config& c);

}  // namespace chitty::config
