// The agent's configuration schema: every key, its type, default, bounds and
// meaning. docs/config.md documents the same table (a unit test keeps them in
// step).
#include <array>
#include <map>
#include <set>
#include <string>

#include "chitty/catalog/reference.hpp"

#include "chitty/base/units.hpp"
#include "chitty/base/service_url.hpp"
#include "chitty/base/text.hpp"
#include "chitty/config/schema.hpp"
#include "chitty/log/log.hpp"

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
           restart_only(member(&A::socket))},
          {"socket_mode", Kind::FileMode, "\"0660\"", 0, 0777, {},
           "Permission bits of the socket file. Bits for others need socket_world_accessible = true.",
           restart_only(member(&A::socket_mode))},
          {"socket_group", Kind::String, "\"\"", 0, 64, {},
           "Group (name or numeric id) that owns the socket file; empty keeps the agent's own group.",
           restart_only(member(&A::socket_group))},
          {"socket_world_accessible", Kind::Boolean, "false", 0, 0, {},
           "Allow a socket_mode that lets every local user connect (policy still decides what they get).",
           restart_only(member(&A::socket_world_accessible))},
          {"state_dir", Kind::Path, "\"/var/lib/chitty-agent\"", 0, 4000, {},
           "Directory for durable state. Locked (flock) so two agents never share it; created 0700 if missing.",
           restart_only(member(&A::state_dir))},
          {"log_level", Kind::Enum, "\"info\"", 0, 0, kLogLevels,
           "Least severe level that is logged: debug, info, warning, error.", member(&A::log_level)},
          {"max_connections", Kind::Integer, "1024", 1, 65536, {},
           "Connections open at once, all clients together. At it, the oldest idle keep-alive connection is closed "
           "to make room; with none idle, new connections get 503 and are closed.",
           member(&A::max_connections)},
          {"max_connections_per_uid", Kind::Integer, "128", 1, 65536, {},
           "Connections open at once from one uid (SO_PEERCRED). At it, that uid's oldest idle connection is "
           "closed to make room; with none idle, new connections get 429 and are closed. Keep it well below "
           "max_connections, so that a few uids cannot hold every slot.",
           member(&A::max_connections_per_uid)},
          {"reserved_service_connections", Kind::Integer, "64", 0, 32768, {},
           "Of max_connections, the slots only callers matching a [[service]] (other than a default rule) may "
           "take. At most half of max_connections is held back. When only these are left, another caller gets "
           "in only in place of an idle connection, else 503.",
           member(&A::reserved_service_connections)},
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
          {"max_secret_responses_per_connection", Kind::Integer, "4", 1, 64, {},
           "Answers holding a secret that one connection may have waiting to be written; further requests wait. "
           "Bounds the plaintext a client can pin by pipelining without reading.",
           member(&A::max_secret_responses_per_connection)},
          {"unknown_caller_rate_limit", Kind::String, "\"30/h\"", 0, 64, {},
           "Requests per period that callers matching no [[service]] share (all of them together); each is "
           "refused anyway, and this bounds how fast they can fill the audit trail. COUNT/PERIOD.",
           member(&A::unknown_caller_rate_limit)},
      },
      [](void* root) -> void* { return &static_cast<Config*>(root)->agent; },
  });

  using C = CacheConfig;
  s.tables.push_back(Table{
      "cache",
      false,
      "How long values are served, and how much locked memory they may take.",
      {
          {"ttl", Kind::Duration, "\"5m\"", kSecond, 24 * 60 * kMinute, {},
           "How long a fetched value is served as fresh (X-Cache: HIT).", member(&C::ttl)},
          {"fallback_window", Kind::Duration, "\"15m\"", kSecond, 24 * 60 * kMinute, {},
           "While the upstream is unavailable, how long after it was fetched a value is still served (marked "
           "STALE). Past it the request fails closed.",
           member(&C::fallback_window)},
          {"max_entries", Kind::Integer, "10000", 1, 1'000'000, {},
           "Cached values at most; the least recently used are evicted (and wiped).", member(&C::max_entries)},
          {"max_locked_bytes", Kind::Size, "\"6MiB\"", 64 * kKiB, 1024 * kMiB, {},
           "Locked memory for sealed cached values; the least recently used are evicted (and wiped) to stay "
           "below it.",
           restart_only(member(&C::max_locked_bytes))},
          {"transient_locked_bytes", Kind::Size, "\"1MiB\"", 64 * kKiB, 64 * kMiB, {},
           "Locked memory for plaintext in flight (values being served). The agent locks max_locked_bytes + "
           "transient_locked_bytes at start; RLIMIT_MEMLOCK must allow it.",
           restart_only(member(&C::transient_locked_bytes))},
          {"allow_unlocked_memory", Kind::Boolean, "false", 0, 0, {},
           "Start even when the memory cannot be locked (it may then be swapped). Off: refuse to start.",
           restart_only(member(&C::allow_unlocked_memory))},
      },
      [](void* root) -> void* { return &static_cast<Config*>(root)->cache; },
  });
  s.tables.push_back(Table{
      "cache.category",
      true,
      "A TTL for the credentials of one catalog category (overrides cache.ttl).",
      {
          {"name", Kind::String, "", 0, 128, {}, "The category, as in [[credential]] category.",
           member(&CategoryTtl::name), true},
          {"ttl", Kind::Duration, "", kSecond, 24 * 60 * kMinute, {}, "The TTL for that category.",
           member(&CategoryTtl::ttl), true},
      },
      [](void* root) -> void* {
        auto& v = static_cast<Config*>(root)->cache.categories;
        v.emplace_back();
        return &v.back();
      },
  });
  using O = OnePasswordConfig;
  s.tables.push_back(Table{
      "upstream.onepassword",
      false,
      "The 1Password Connect server secrets are fetched from (docs/upstream.md). Without a url the fallback "
      "sources are the only ones.",
      {
          {"url", Kind::String, "\"\"", 0, 2048, {},
           "Base URL of the Connect server (http://127.0.0.1:8080). Plain http only to a loopback address unless "
           "allow_insecure_http. Empty: no Connect upstream.",
           restart_only(member(&O::url))},
          {"token_file", Kind::String, "\"\"", 0, 4000, {},
           "File holding the Connect token (not readable by group or others; LoadCredential= is ideal). Re-read on "
           "SIGHUP and after a 401.",
           restart_only(member(&O::token_file))},
          {"token_env", Kind::String, "\"\"", 0, 128, {},
           "Environment variable holding the Connect token instead: taken once at start and scrubbed from the "
           "environment.",
           restart_only(member(&O::token_env))},
          {"backup_url", Kind::String, "\"\"", 0, 2048, {},
           "A second Connect server, tried when the first is unavailable and before the env/systemd-credential "
           "fallbacks. Empty: none.",
           restart_only(member(&O::backup_url))},
          {"backup_token_file", Kind::String, "\"\"", 0, 4000, {},
           "The backup server's token file; empty: the same token as the primary.", restart_only(member(&O::backup_token_file))},
          {"backup_token_env", Kind::String, "\"\"", 0, 128, {},
           "The backup server's token as an environment variable (taken once, scrubbed).",
           restart_only(member(&O::backup_token_env))},
          {"ca_file", Kind::String, "\"\"", 0, 4000, {},
           "CA bundle that signs the Connect servers' certificates (https); empty: the system's.",
           restart_only(member(&O::ca_file))},
          {"allow_insecure_http", Kind::Boolean, "false", 0, 0, {},
           "Allow plain http to a host that is not loopback (the token and every secret cross the network "
           "unencrypted).",
           restart_only(member(&O::allow_insecure_http))},
          {"timeout", Kind::Duration, "\"2s\"", 100, 60 * kSecond, {},
           "Time a request to Connect may take, connection included.", member(&O::timeout)},
          {"connect_timeout", Kind::Duration, "\"1s\"", 100, 60 * kSecond, {},
           "Time to establish a connection to Connect.", member(&O::connect_timeout)},
          {"max_response_bytes", Kind::Size, "\"63KiB\"", kKiB, 64 * kKiB - 1, {},
           "Largest answer accepted from Connect (an item with all its fields); received into locked memory.",
           member(&O::max_response_bytes)},
          {"services_vault", Kind::String, "\"ChittyOS Services\"", 1, 256, {},
           "Vault of service tokens: service-token/{target} defaults to op://<services_vault>/<target>/service_token.",
           member(&O::services_vault)},
          {"integrations_vault", Kind::String, "\"ChittyOS Integrations\"", 1, 256, {},
           "Vault of integration keys: integration-key/{integration} defaults to "
           "op://<integrations_vault>/<integration>/api_key.",
           member(&O::integrations_vault)},
          {"probe_interval", Kind::Duration, "\"5s\"", 100, 10 * kMinute, {},
           "How often /heartbeat is probed (and, while the circuit is open, the earliest retry).",
           member(&O::probe_interval)},
          {"health_interval", Kind::Duration, "\"60s\"", kSecond, 60 * kMinute, {},
           "How often /health is read instead (server version, dependency states).", member(&O::health_interval)},
          {"failure_threshold", Kind::Integer, "2", 1, 100, {},
           "Consecutive availability failures (unreachable, timeout, 5xx, malformed answer) that open the circuit.",
           member(&O::failure_threshold)},
          {"breaker_backoff", Kind::Duration, "\"1s\"", 100, 10 * kMinute, {},
           "First wait before a trial request once the circuit opens; doubled each time it reopens, jittered "
           "±25%.",
           member(&O::breaker_backoff)},
          {"breaker_max_backoff", Kind::Duration, "\"30s\"", 100, 60 * kMinute, {},
           "Longest wait between trials while Connect stays unreachable.", member(&O::breaker_max_backoff)},
          {"resolution_ttl", Kind::Duration, "\"10m\"", kSecond, 24 * 60 * kMinute, {},
           "How long a vault or item name's resolution to an ID is reused (a 404 on a reused ID resolves again).",
           member(&O::resolution_ttl)},
          {"negative_ttl", Kind::Duration, "\"30s\"", 0, 60 * kMinute, {},
           "How long an unknown reference is answered 404 without asking Connect again (a refresh asks anyway).",
           member(&O::negative_ttl)},
          {"rate_limit_backoff", Kind::Duration, "\"1s\"", 100, 10 * kMinute, {},
           "First pause after a 429 (Connect sends no Retry-After); doubled on each further 429 up to 60s, "
           "jittered.",
           member(&O::rate_limit_backoff)},
      },
      [](void* root) -> void* { return &static_cast<Config*>(root)->onepassword; },
  });
  s.tables.push_back(Table{
      "fallback",
      false,
      "Sources used when the upstream cannot answer (and, without an upstream, the only sources).",
      {
          {"env", Kind::Boolean, "true", 0, 0, {},
           "Serve a credential's `env` variable, imported once at start and scrubbed from the environment.",
           member(&FallbackConfig::env)},
          {"systemd_credentials", Kind::Boolean, "true", 0, 0, {},
           "Serve a credential's `systemd_credential` from $CREDENTIALS_DIRECTORY (LoadCredential=).",
           member(&FallbackConfig::systemd_credentials)},
      },
      [](void* root) -> void* { return &static_cast<Config*>(root)->fallback; },
  });
  using K = CredentialConfig;
  s.tables.push_back(Table{
      "credential",
      true,
      "The catalog: credential types, their references and their fallbacks.",
      {
          {"type", Kind::String, "", 0, 128, {}, "The credential type clients ask for (\"openai_api_key\").",
           member(&K::type), true},
          {"ref", Kind::String, "", 0, 1024, {}, "Its secret reference, op://VAULT/ITEM[/SECTION]/FIELD.",
           member(&K::ref), true},
          {"env", Kind::String, "\"\"", 0, 128, {},
           "Environment variable holding the value (fallback source); empty for none.", member(&K::env)},
          {"systemd_credential", Kind::String, "\"\"", 0, 128, {},
           "Credential name under $CREDENTIALS_DIRECTORY (fallback source); empty for none.",
           member(&K::systemd_credential)},
          {"category", Kind::String, "\"\"", 0, 128, {},
           "Category (\"service\", \"integration\", ...): chooses a [[cache.category]] TTL.",
           member(&K::category)},
          {"target", Kind::String, "\"\"", 0, 128, {},
           "The service or integration it belongs to (for service-token/ and integration-key/).",
           member(&K::target)},
      },
      [](void* root) -> void* {
        auto& v = static_cast<Config*>(root)->credentials;
        v.emplace_back();
        return &v.back();
      },
  });
  using S = ServiceConfig;
  s.tables.push_back(Table{
      "service",
      true,
      "Who may read what (docs/policy.md): selectors on the caller's kernel identity (all given must match; first "
      "service that matches wins), and what it may read.",
      {
          {"name", Kind::String, "", 0, 128, {}, "The service's name (audit, context.service).", member(&S::name),
           true},
          {"uid", Kind::Integer, "", 0, 4294967294LL, {},
           "Selector: the caller's uid (SO_PEERCRED), as established by the agent (docs/identity.md).",
           member(&S::uid)},
          {"gid", Kind::Integer, "", 0, 4294967294LL, {}, "Selector: the caller's primary gid (SO_PEERCRED).",
           member(&S::gid)},
          {"unit", Kind::String, "\"\"", 0, 256, {},
           "Selector: the caller's systemd unit (\"chitty-ops.service\"), from its cgroup.", member(&S::unit)},
          {"container", Kind::String, "\"\"", 0, 128, {},
           "Selector: the caller's container id (the full id, or a prefix of at least 12 characters).",
           member(&S::container)},
          {"exe", Kind::String, "\"\"", 0, 4000, {},
           "Selector: the caller's executable, an absolute path (verified through /proc/PID/exe).",
           member(&S::exe)},
          {"default", Kind::Boolean, "false", 0, 0, {},
           "A rule without selectors that every caller not matched earlier falls into (put it last). Without it, "
           "such callers get nothing.",
           member(&S::is_default)},
          {"allow", Kind::StringList, "[]", 0, 0, {},
           "What it may read: \"type:NAME\" for catalog types, op:// references, and globs (* within a part, "
           "** across parts).",
           member(&S::allow)},
          {"purposes", Kind::StringList, "[]", 0, 0, {},
           "The purposes it may state (context.purpose / ?purpose=); when non-empty a request must state one of "
           "them.",
           member(&S::purposes)},
          {"rate_limit", Kind::String, "\"100/h\"", 0, 64, {},
           "Requests per period (a token bucket: COUNT/PERIOD, e.g. \"100/h\", \"10/m\"); beyond it 429 with "
           "Retry-After.",
           member(&S::rate_limit)},
          {"admin", Kind::Boolean, "false", 0, 0, {},
           "May use the admin routes (insights, audit).", member(&S::admin)},
      },
      [](void* root) -> void* {
        auto& v = static_cast<Config*>(root)->services;
        v.emplace_back();
        return &v.back();
      },
  });
  using U = AuditConfig;
  static constexpr std::array<std::string_view, 2> kSinkFormats{"ndjson", "journal-export"};
  s.tables.push_back(Table{
      "audit",
      false,
      "The audit trail (docs/audit.md): every decision chained with a keyed MAC into a durable spool in the state "
      "directory, shipped to a sink.",
      {
          {"durable", Kind::Boolean, "true", 0, 0, {},
           "Keep events in the spool (false: in memory only, lost at restart — for benchmarks and development).",
           restart_only(member(&U::durable))},
          {"chain_key_file", Kind::String, "\"\"", 0, 4000, {},
           "File with the chain key (at least 32 bytes; private; LoadCredential= is ideal). Empty: a key is "
           "generated into <state_dir>/audit-chain.key (beside the spool: weaker).",
           restart_only(member(&U::chain_key_file))},
          {"sink", Kind::String, "\"\"", 0, 2048, {},
           "URL events are POSTed to in batches. Empty: no shipping; the spool is the record, and at its cap the agent "
           "fails closed.",
           restart_only(member(&U::sink))},
          {"sink_format", Kind::Enum, "\"ndjson\"", 0, 0, kSinkFormats,
           "ndjson (one event per line: Vector, Fluent Bit, Logstash HTTP inputs) or journal-export "
           "(systemd-journal-remote's /upload).",
           restart_only(member(&U::sink_format))},
          {"token_file", Kind::String, "\"\"", 0, 4000, {},
           "File with a bearer token for the sink (private). Empty: no Authorization header.",
           restart_only(member(&U::token_file))},
          {"allow_insecure_http", Kind::Boolean, "false", 0, 0, {},
           "Allow plain http to a sink that is not on loopback.", restart_only(member(&U::allow_insecure_http))},
          {"ca_file", Kind::String, "\"\"", 0, 4000, {}, "CA bundle for an https sink; empty: the system's.",
           restart_only(member(&U::ca_file))},
          {"max_spool_bytes", Kind::Size, "\"256MiB\"", kMiB, 64 * 1024 * kMiB, {},
           "The spool's cap. Past it every request is refused (audit_unavailable) until the sink takes the backlog.",
           restart_only(member(&U::max_spool_bytes))},
          {"reserve_bytes", Kind::Size, "\"16MiB\"", 64 * kKiB, 1024 * kMiB, {},
           "The last part of the cap kept for allowed decisions and state events: once in it, refusals are only "
           "counted (aggregate events), so refused callers cannot fill it.",
           restart_only(member(&U::reserve_bytes))},
          {"segment_bytes", Kind::Size, "\"8MiB\"", 64 * kKiB, 1024 * kMiB, {},
           "Size at which a spool segment is closed and a new one begun.", restart_only(member(&U::segment_bytes))},
          {"fsync_interval", Kind::Duration, "\"200ms\"", 1, 10 * kSecond, {},
           "The longest an event waits in the page cache before fsync (the loss window on power failure; a "
           "crash of the process loses nothing).",
           restart_only(member(&U::fsync_interval))},
          {"fsync_events", Kind::Integer, "256", 1, 1'000'000, {},
           "Events after which the spool is fsynced sooner (off the loop); 1: every event synced before its answer.",
           restart_only(member(&U::fsync_events))},
          {"batch_events", Kind::Integer, "500", 1, 100'000, {}, "Events per batch sent to the sink at most.",
           restart_only(member(&U::batch_events))},
          {"batch_bytes", Kind::Size, "\"1MiB\"", 4 * kKiB, 64 * kMiB, {}, "Bytes per batch at most.",
           restart_only(member(&U::batch_bytes))},
          {"ship_interval", Kind::Duration, "\"200ms\"", 0, 60 * kSecond, {},
           "How long new events gather before a batch goes (0: at once).", restart_only(member(&U::ship_interval))},
          {"sink_timeout", Kind::Duration, "\"5s\"", 100, 10 * kMinute, {}, "Time one batch may take.",
           restart_only(member(&U::sink_timeout))},
          {"retry_backoff", Kind::Duration, "\"1s\"", 10, 10 * kMinute, {},
           "Wait before the first retry of a failed batch; doubled each failure in a row, jittered 50–150%.",
           restart_only(member(&U::retry_backoff))},
          {"retry_max_backoff", Kind::Duration, "\"60s\"", 10, 60 * kMinute, {}, "Longest wait between retries.",
           restart_only(member(&U::retry_max_backoff))},
          {"aggregate_window", Kind::Duration, "\"10s\"", kSecond, 10 * kMinute, {},
           "Refusals of one caller (uid), code and action within this window: the first is recorded in full, the "
           "rest counted into one aggregate event written when the window ends.",
           restart_only(member(&U::aggregate_window))},
          {"aggregate_keys", Kind::Integer, "64", 1, 100'000, {},
           "Callers (uid, code, action) whose refusals are counted one by one at once; beyond them refusals are "
           "counted per code and action only. Bounds what refused callers can write: at most 2 x aggregate_keys "
           "+ (codes x actions) events per aggregate_window.",
           restart_only(member(&U::aggregate_keys))},
          {"journal_mirror", Kind::Boolean, "true", 0, 0, {},
           "Under systemd, mirror every event to the journal with CHITTY_* fields.", restart_only(member(&U::journal_mirror))},
      },
      [](void* root) -> void* { return &static_cast<Config*>(root)->audit; },
  });
  s.tables.push_back(Table{
      "emergency",
      false,
      "Emergency revocation (docs/api.md): who holds the token may revoke and clear.",
      {
          {"token_file", Kind::String, "\"\"", 0, 4000, {},
           "File with the emergency token (as the Connect token: private, LoadCredential= is ideal). Empty: the "
           "emergency routes answer 401.",
           member(&EmergencyConfig::token_file)},
      },
      [](void* root) -> void* { return &static_cast<Config*>(root)->emergency; },
  });
  return s;
}

bool valid_name(std::string_view s) {
  if (s.empty() || s == "." || s == "..") return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-' ||
              c == '.';
    if (!ok) return false;
  }
  return true;
}

bool valid_env_name(std::string_view s) {
  if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

const Schema& agent_schema() {
  static const Schema schema = make_schema();
  return schema;
}

std::string_view reload_name(Reload r) noexcept { return r == Reload::restart ? "restart" : "at once"; }

Binding restart_only(Binding b) {
  b.reload = Reload::restart;
  return b;
}

std::vector<Change> changes(const Schema& schema, void* running, void* next) {
  std::vector<Change> out;
  for (const Table& t : schema.tables) {
    if (t.is_array) continue;  // arrays (services, credentials) are replaced whole, and apply at once
    const void* a = t.element(running);
    const void* b = t.element(next);
    for (const Key& k : t.keys) {
      if (!k.bind.same || k.bind.same(a, b)) continue;
      out.push_back({std::string(t.name) + "." + std::string(k.name), k.bind.show(a), k.bind.show(b), k.reload()});
    }
  }
  return out;
}

std::vector<Change> hold_restart_keys(const Schema& schema, void* running, void* next) {
  std::vector<Change> held;
  for (const Table& t : schema.tables) {
    if (t.is_array) continue;
    const void* a = t.element(running);
    void* b = t.element(next);
    for (const Key& k : t.keys) {
      if (k.reload() != Reload::restart || !k.bind.same || k.bind.same(a, b)) continue;
      held.push_back({std::string(t.name) + "." + std::string(k.name), k.bind.show(a), k.bind.show(b), Reload::restart});
      k.bind.copy(b, a);
    }
  }
  return held;
}

std::string ReloadPlan::keys(const std::vector<Change>& changes) {
  std::string out;
  for (const auto& c : changes) out += (out.empty() ? "" : " ") + c.key;
  return out;
}

ReloadPlan plan_reload(const Config& running, Config& next) {
  ReloadPlan plan;
  auto& from = const_cast<Config&>(running);  // read only: the schema's accessors take void*
  for (auto& c : changes(agent_schema(), &from, &next)) {
    if (c.reload == Reload::live) plan.applied.push_back(std::move(c));
  }
  plan.held = hold_restart_keys(agent_schema(), &from, &next);
  for (const auto& c : plan.held) {
    log::warn("app", "setting changed in the file but needs a restart; keeping the running value",
              {{"key", c.key}, {"running", c.running}, {"file", c.next}});
  }
  return plan;
}

std::vector<Problem> validate(const Config& c) {
  std::vector<Problem> out;
  const AgentConfig& a = c.agent;
  if ((a.socket_mode & 0007) != 0 && !a.socket_world_accessible) {
    out.push_back({"agent.socket_mode", "socket_mode " + format_mode(a.socket_mode) +
                                            " lets every local user connect; use 0660 (owner and group), or "
                                            "set agent.socket_world_accessible = true if that is intended"});
  }
  if ((a.socket_mode & 0222) == 0) {
    out.push_back({"agent.socket_mode", "socket_mode " + format_mode(a.socket_mode) +
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

  const CacheConfig& cache = c.cache;
  if (cache.fallback_window < cache.ttl) {
    out.push_back({"cache.fallback_window", "fallback_window (" + format_duration(cache.fallback_window) +
                                                ") is shorter than ttl (" + format_duration(cache.ttl) + ")"});
  }
  for (std::size_t i = 0; i < cache.categories.size(); ++i) {
    for (std::size_t j = 0; j < i; ++j) {
      if (cache.categories[i].name == cache.categories[j].name) {
        out.push_back({"cache.category[" + std::to_string(i) + "].name",
                       "category \"" + cache.categories[i].name + "\" already has a TTL"});
      }
    }
  }

  const OnePasswordConfig& op = c.onepassword;
  auto check_url = [&](const char* key, const std::string& url) {
    if (url.empty()) return;
    if (auto ok = check_service_url(url, op.allow_insecure_http, true, "the token and every secret"); !ok) {
      out.push_back({std::string("upstream.onepassword.") + key, ok.error().message});
    }
  };
  check_url("url", op.url);
  check_url("backup_url", op.backup_url);
  if (!op.url.empty()) {
    if (op.token_file.empty() == op.token_env.empty()) {
      out.push_back({"upstream.onepassword.url", "set exactly one of token_file and token_env for the Connect token"});
    }
  } else if (!op.backup_url.empty()) {
    out.push_back({"upstream.onepassword.backup_url", "backup_url needs url (the primary server)"});
  }
  if (!op.backup_token_file.empty() && !op.backup_token_env.empty()) {
    out.push_back({"upstream.onepassword.backup_token_file", "set at most one of backup_token_file and backup_token_env"});
  }
  for (auto [key, path] : {std::pair{"token_file", &op.token_file}, {"backup_token_file", &op.backup_token_file},
                           {"ca_file", &op.ca_file}}) {
    if (!path->empty() && path->front() != '/') {
      out.push_back({std::string("upstream.onepassword.") + key, "must be an absolute path"});
    }
  }
  for (auto [key, name] : {std::pair{"token_env", &op.token_env}, {"backup_token_env", &op.backup_token_env}}) {
    if (!name->empty() && !valid_env_name(*name)) {
      out.push_back({std::string("upstream.onepassword.") + key, "\"" + *name + "\" is not an environment variable name"});
    }
  }
  if (op.breaker_max_backoff < op.breaker_backoff) {
    out.push_back({"upstream.onepassword.breaker_max_backoff", "breaker_max_backoff is shorter than breaker_backoff"});
  }

  std::set<std::string> types;
  for (std::size_t i = 0; i < c.credentials.size(); ++i) {
    const CredentialConfig& k = c.credentials[i];
    std::string at = "credential[" + std::to_string(i) + "].";
    // (A missing required key is reported by the loader; nothing to add.)
    if (k.type.empty()) {
    } else if (!valid_name(k.type)) {
      out.push_back({at + "type", "type \"" + k.type + "\" must be letters, digits, '_', '-' or '.'"});
    } else if (!types.insert(k.type).second) {
      out.push_back({at + "type", "type \"" + k.type + "\" is defined twice"});
    }
    if (!k.ref.empty()) {
      if (auto r = catalog::parse_reference(k.ref); !r) out.push_back({at + "ref", r.error().message});
    }
    if (!k.env.empty() && !valid_env_name(k.env)) {
      out.push_back({at + "env", "\"" + k.env + "\" is not an environment variable name"});
    }
    if (!k.systemd_credential.empty() && !valid_name(k.systemd_credential)) {
      out.push_back({at + "systemd_credential",
                     "\"" + k.systemd_credential + "\" is not a credential name (letters, digits, '_', '-', '.')"});
    }
  }

  std::set<std::string> names;
  std::map<std::string, std::string> selector_sets;  // selectors -> the first service with them
  std::string default_service;
  for (std::size_t i = 0; i < c.services.size(); ++i) {
    const ServiceConfig& svc = c.services[i];
    std::string at = "service[" + std::to_string(i) + "].";
    if (!names.insert(svc.name).second) out.push_back({at + "name", "service \"" + svc.name + "\" is defined twice"});
    std::string selectors;
    if (svc.uid) selectors += "uid=" + std::to_string(*svc.uid) + " ";
    if (svc.gid) selectors += "gid=" + std::to_string(*svc.gid) + " ";
    if (!svc.unit.empty()) selectors += "unit=" + svc.unit + " ";
    if (!svc.container.empty()) selectors += "container=" + svc.container + " ";
    if (!svc.exe.empty()) selectors += "exe=" + svc.exe + " ";
    if (!default_service.empty()) {
      out.push_back({at + "name", "service \"" + svc.name + "\" comes after the default service \"" +
                                      default_service + "\", which matches every caller first"});
    }
    if (svc.is_default) {
      if (!selectors.empty()) {
        out.push_back({at + "default", "a default service matches every caller; it cannot also have selectors"});
      }
      default_service = svc.name;
    } else if (selectors.empty()) {
      out.push_back({at + "name", "service \"" + svc.name +
                                      "\" has no selector: set uid, gid, unit, container or exe (or default = true "
                                      "for a rule that matches every other caller)"});
    } else if (auto [it, fresh] = selector_sets.emplace(selectors, svc.name); !fresh) {
      out.push_back({at + "name", "service \"" + svc.name + "\" has the same selectors as \"" + it->second +
                                      "\", which comes first and always wins"});
    }
    if (!svc.exe.empty() && svc.exe.front() != '/') out.push_back({at + "exe", "exe must be an absolute path"});
    if (!svc.container.empty() && svc.container.size() < 12) {
      out.push_back({at + "container", "a container id prefix needs at least 12 characters"});
    }
    if (auto r = parse_rate(svc.rate_limit); !r) out.push_back({at + "rate_limit", r.error().message});
    for (const auto& rule : svc.allow) {
      if (rule.rfind("type:", 0) == 0) {
        if (types.count(rule.substr(5)) == 0) {
          out.push_back({at + "allow", "\"" + rule + "\" names no [[credential]] type"});
        }
      } else if (auto g = catalog::Glob::parse(rule); !g) {
        out.push_back({at + "allow", "\"" + rule + "\": " + g.error().message});
      }
    }
    for (const auto& p : svc.purposes) {
      if (p.empty() || p.size() > 64) out.push_back({at + "purposes", "a purpose is 1 to 64 characters"});
    }
  }
  if (auto r = parse_rate(a.unknown_caller_rate_limit); !r) {
    out.push_back({"agent.unknown_caller_rate_limit", r.error().message});
  }
  const AuditConfig& au = c.audit;
  if (au.reserve_bytes >= au.max_spool_bytes) {
    out.push_back({"audit.reserve_bytes", "reserve_bytes must be smaller than max_spool_bytes"});
  }
  if (au.retry_max_backoff < au.retry_backoff) {
    out.push_back({"audit.retry_max_backoff", "retry_max_backoff is shorter than retry_backoff"});
  }
  if (!au.sink.empty()) {
    if (auto ok = check_service_url(au.sink, au.allow_insecure_http, false, "the audit trail"); !ok) {
      out.push_back({"audit.sink", ok.error().message});
    }
  }
  for (auto [key, path] : {std::pair{"chain_key_file", &au.chain_key_file}, {"token_file", &au.token_file},
                           {"ca_file", &au.ca_file}}) {
    if (!path->empty() && path->front() != '/') out.push_back({std::string("audit.") + key, "must be an absolute path"});
  }
  if (!c.emergency.token_file.empty() && c.emergency.token_file.front() != '/') {
    out.push_back({"emergency.token_file", "must be an absolute path"});
  }
  return out;
}

std::string default_config_toml() {
  std::string out =
      "# chitty-agent configuration: every key at its default.\n"
      "# Reference: docs/config.md. Check a file with: chitty-agent --check-config FILE\n";
  for (const auto& t : agent_schema().tables) {
    // Array tables have no default elements: they are shown commented out, as
    // a template to copy.
    const std::string lead = t.is_array ? "# " : "";
    out += "\n# " + std::string(t.doc) + "\n";
    out += lead + (t.is_array ? "[[" + std::string(t.name) + "]]\n" : "[" + std::string(t.name) + "]\n");
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
      if (k.required) out += "; required";
      if (!k.required && k.default_toml.empty()) out += "; optional";
      out += "\n";
      if (k.default_toml.empty()) {
        out += "# " + std::string(k.name) + " = ...\n";
      } else {
        out += lead + std::string(k.name) + " = " + std::string(k.default_toml) + "\n";
      }
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

[[nodiscard]] Result<std::shared_ptr<const catalog::Catalog>> catalog_from(const Config& c) {
  std::vector<catalog::EntrySpec> specs;
  for (const auto& k : c.credentials) {
    specs.push_back({k.type, k.ref, c.fallback.env ? k.env : "",
                     c.fallback.systemd_credentials ? k.systemd_credential : "", k.category, k.target});
  }
  auto built = catalog::Catalog::build(specs);
  if (!built) return tl::unexpected(built.error());
  return std::make_shared<const catalog::Catalog>(std::move(*built));
}

std::vector<std::string> catalog_env_names(const Config& c) {
  std::vector<std::string> names;
  for (const auto& k : c.credentials) {
    if (!k.env.empty()) names.push_back(k.env);
  }
  return names;
}

}  // namespace chitty::config
