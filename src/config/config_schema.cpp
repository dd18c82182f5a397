// The agent's configuration schema: the engine's entry points, the cross-key
// rules and the default-config printer. The keys themselves (type, default,
// bounds, meaning, binding) are declared in schema.toml; docs/config.md
// documents the same table (a unit test keeps them in step).
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "chitty/catalog/reference.hpp"

#include "chitty/base/units.hpp"
#include "chitty/base/service_url.hpp"
#include "chitty/base/text.hpp"
#include "chitty/config/schema.hpp"
#include "chitty/log/log.hpp"

namespace chitty::config {
namespace {

// make_schema(): every key of the agent's configuration, generated at build
// time from schema.toml by gen_schema.py (see meson.build in this directory).
#include "config_schema.inc"

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
    // The kernel's overflow uid/gid (identity::kOverflowUid, 65534 — also
    // Debian's "nobody"): what SO_PEERCRED reports for a caller whose user
    // namespace does not map its id here, whoever it really is. The agent
    // never takes it for an identity, so a selector on it could never match.
    constexpr std::int64_t kOverflowId = 65534;
    for (auto [key, value] : {std::pair{"uid", svc.uid}, {"gid", svc.gid}}) {
      if (value && *value == kOverflowId) {
        out.push_back({at + key, std::string(key) + " 65534 is the kernel's overflow " + key +
                                     " (also \"nobody\"): callers from a user namespace that does not map their " +
                                     key + " all appear as it, so the agent never takes it for an identity and this "
                                     "selector could never match; select by unit or container (docs/identity.md)"});
      }
    }
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
    if (!svc.step_up_token_file.empty() && svc.step_up_token_file.front() != '/') {
      out.push_back({at + "step_up_token_file", "must be an absolute path"});
    }
  }
  for (std::size_t i = 0; i < c.risk.categories.size(); ++i) {
    const RiskCategory& rc = c.risk.categories[i];
    std::string at = "risk.category[" + std::to_string(i) + "].";
    for (std::size_t j = 0; j < i; ++j) {
      if (rc.name == c.risk.categories[j].name) {
        out.push_back({at + "name", "category \"" + rc.name + "\" already has its purposes"});
      }
    }
    if (rc.purposes.empty()) {
      out.push_back({at + "purposes", "list at least one purpose (a category without an entry takes any purpose)"});
    }
    for (const auto& p : rc.purposes) {
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
