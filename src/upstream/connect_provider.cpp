#include "chitty/upstream/connect_provider.hpp"

#include <algorithm>
#include <utility>

#include "chitty/base/text.hpp"
#include "chitty/catalog/reference.hpp"
#include "chitty/json/in_place.hpp"
#include "chitty/log/log.hpp"
#include "complete_later.hpp"
#include "connect_health.hpp"
#include "connect_text.hpp"
#include "item_matcher.hpp"

namespace chitty::upstream {
namespace {

using json::InPlace;
using json::Node;

// Entries per remembered map; a new one beyond it pushes out the oldest.
constexpr std::size_t kMaxRemembered = 20000;

[[nodiscard]] Result<InPlace> parse_body(HttpResponse& r) {
  if (!r.body) return fail("an empty answer");
  return InPlace::parse(r.body);
}

// The answer's JSON if it is a `type`; otherwise why not, as an
// availability failure ("malformed item list from Connect (not an array)").
[[nodiscard]] tl::expected<InPlace, std::string> parse_answer(HttpResponse& r, Node::Type type, std::string_view what) {
  auto doc = parse_body(r);
  if (doc && doc->root().is(type)) return std::move(*doc);
  return tl::unexpected("malformed " + std::string(what) + " from Connect (" +
                        (!doc ? doc.error().message : type == Node::Type::array ? "not an array" : "not an object") +
                        ")");
}

std::string item_key(std::string_view vault_id, std::string_view title) {
  return std::string(vault_id) + '\n' + catalog::fold_case(title);
}

}  // namespace

bool is_connect_id(std::string_view s) noexcept {
  if (s.size() != 26) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); });
}

struct ConnectProvider::Job {
  std::uint64_t number = 0;
  catalog::Reference ref;
  std::string name_key;  // ref.canonical()
  FetchDone done;
  std::string vault_id;
  std::string item_id;
  bool vault_cached = false;  // the ID came from our resolution cache (may be stale)
  bool item_cached = false;
  bool item_re_resolved = false;
  bool vault_re_resolved = false;
  bool token_retried = false;
  HttpClient::Id http = 0;
  // A resolve() job: ends with the reference's other forms, not a value.
  Provider::ResolveDone spelled;
};

ConnectProvider::ConnectProvider(loop::Loop& loop, loop::TaskQueue& tasks, HttpClient& http, secure::Arena& arena,
                                 const Clock& clock, Token& token, ConnectOptions options,
                                 std::function<double()> random)
    : tasks_(tasks), http_(http), arena_(arena), clock_(clock), token_(token), options_(std::move(options)),
      vault_ids_(clock, kMaxRemembered, options_.resolution_ttl),
      item_ids_(clock, kMaxRemembered, options_.resolution_ttl),
      keys_(clock, kMaxRemembered, options_.resolution_ttl),
      vault_names_(clock, kMaxRemembered, Remembered<std::string>::kNever),
      resolutions_(clock, kMaxRemembered, options_.resolution_ttl),
      negative_(clock, kMaxRemembered, options_.negative_ttl) {
  while (options_.url.ends_with('/')) options_.url.pop_back();
  health_ = std::make_unique<ConnectHealth>(loop, http, clock, token, options_, std::move(random));
}

ConnectProvider::~ConnectProvider() { close(); }

const ConnectStatus& ConnectProvider::status() const noexcept { return health_->status(); }
void ConnectProvider::on_change(std::function<void()> listener) { health_->on_change(std::move(listener)); }
void ConnectProvider::start() { health_->start(); }
bool ConnectProvider::available() const noexcept { return health_->available(); }

void ConnectProvider::close() noexcept {
  if (closed_) return;
  closed_ = true;
  health_->close();
  for (auto& [n, job] : jobs_) http_.cancel(job->http);
  jobs_.clear();
}

void ConnectProvider::reconfigure(const ConnectOptions& o) {
  options_.reload_from(o);
  health_->reconfigure(o);
  // A new resolution_ttl judges the resolutions already made; a remembered
  // "not found" keeps the negative_ttl it was given.
  using Apply = Remembered<std::string>::Apply;
  for (auto* m : {&vault_ids_, &item_ids_, &keys_}) m->set_ttl(o.resolution_ttl, Apply::to_all);
  resolutions_.set_ttl(o.resolution_ttl, Remembered<Resolution>::Apply::to_all);
  negative_.set_ttl(o.negative_ttl, Remembered<NotFound>::Apply::to_new);
}

void ConnectProvider::reload_token() {
  auto r = token_.reload();
  if (!r) {
    log::error("upstream", "the Connect token could not be re-read; keeping the one in use",
               {{"upstream", options_.name}, {"reason", r.error().message}});
  } else if (*r) {
    log::info("upstream", "Connect token re-read: it changed", {{"upstream", options_.name}});
  }
}

void ConnectProvider::forget_resolutions() {
  vault_ids_.clear();
  item_ids_.clear();
  keys_.clear();
  resolutions_.clear();
  negative_.clear();
}

std::optional<std::string> ConnectProvider::resolved_key(std::string_view canonical) const {
  auto found = keys_.lookup(canonical);
  if (!found.value) return std::nullopt;
  // Expired: resolved again on the next fetch (a renamed item no longer
  // answers to its old name). While the server cannot answer, the last
  // resolution stands; the cache's fallback window bounds what it reaches.
  if (!found.fresh && available()) return std::nullopt;
  return *found.value;
}

std::vector<std::string> ConnectProvider::aliases(std::string_view key) const {
  // Every spelling ever resolved to `key` that is still held, fresh or not.
  std::vector<std::string> out;
  keys_.for_each([&](const std::string& canonical, const std::string& k) {
    if (k == key) out.push_back(canonical);
  });
  resolutions_.for_each([&](const std::string& canonical, const Resolution& r) {
    if (r.key != key) return;
    out.push_back(canonical);
    out.push_back(r.names.canonical());
  });
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// ---------------------------------------------------------------------------
// Fetching

ConnectProvider::JobPtr ConnectProvider::new_job(const catalog::Reference& ref, std::string name_key) {
  auto job = std::make_shared<Job>();
  job->number = next_job_++;
  job->ref = ref;
  job->name_key = std::move(name_key);
  jobs_.emplace(job->number, job);
  return job;
}

void ConnectProvider::fetch(const FetchRequest& request, FetchDone done) {
  JobPtr job = new_job(request.ref, request.ref.canonical());
  job->done = std::move(done);
  MonoTime now = clock_.now();
  if (closed_) return fail(job, FetchError::unavailable, health_->where() + " is shutting down");
  if (!request.refresh) {
    if (auto known = negative_.lookup(job->name_key); known.value) {
      if (known.fresh) {
        return fail(job, FetchError::not_found,
                    request.ref.display() + " was not found in " + health_->where() +
                        " moments ago (answer kept for " + seconds_text(options_.negative_ttl) + ")");
      }
      negative_.erase(job->name_key);
    }
  }
  if (auto refused = health_->admit(now)) return fail(job, FetchError::unavailable, std::move(*refused));
  run(job);
}

void ConnectProvider::resolve(const FetchRequest& request, ResolveDone done) {
  std::string key = request.ref.canonical();
  if (const Resolution* known = resolutions_.find(key)) {
    tasks_.post([done = std::move(done), resolved = *known] { done(resolved); });
    return;
  }
  JobPtr job = new_job(request.ref, key);
  job->spelled = std::move(done);
  if (closed_ || health_->admit(clock_.now())) return fail(job, FetchError::unavailable, "");
  // Not found moments ago: said again without asking (a revocation of a
  // name that does not exist is tried on every fetch from the upstream).
  if (negative_.find(key)) return fail(job, FetchError::not_found, "");
  run(job);
}

bool ConnectProvider::known_id(const JobPtr& job, Step step) {
  const bool vault = step == Step::vault;
  std::string& id = vault ? job->vault_id : job->item_id;
  if (!id.empty()) return true;
  const std::string& name = vault ? job->ref.vault : job->ref.item;
  if (is_connect_id(name)) {
    id = name;
    return true;
  }
  if (const std::string* known =
          vault ? vault_ids_.find(catalog::fold_case(name)) : item_ids_.find(item_key(job->vault_id, name))) {
    id = *known;
    (vault ? job->vault_cached : job->item_cached) = true;
    return true;
  }
  if (!filterable(name)) {
    fail(job, FetchError::not_found,
         std::string(vault ? "a vault name" : "an item title") + " with a quote or backslash cannot be looked up; use its ID");
    return false;
  }
  health_->resolving();
  std::string url = options_.url + "/v1/vaults";
  if (!vault) url += "/" + percent_encode(job->vault_id) + "/items";
  request(job, step, url + title_filter(name));
  return false;
}

void ConnectProvider::run(const JobPtr& job) {
  if (!known_id(job, Step::vault) || !known_id(job, Step::item)) return;
  if (job->spelled && !vault_names_.find(job->vault_id)) {
    return request(job, Step::vault_name, options_.url + "/v1/vaults/" + percent_encode(job->vault_id));
  }
  request(job, Step::full,
          options_.url + "/v1/vaults/" + percent_encode(job->vault_id) + "/items/" + percent_encode(job->item_id));
}

void ConnectProvider::request(const JobPtr& job, Step step, std::string url) {
  secure::SecureBuffer bearer = token_.bearer();
  if (!bearer) return fail(job, FetchError::no_memory, "no locked memory for the request right now");
  HttpRequest r;
  r.url = url;
  r.authorization = &bearer;
  r.timeout = options_.timeout;
  r.connect_timeout = options_.connect_timeout;
  r.max_body = options_.max_response_bytes;
  health_->sent();
  job->http = http_.send(std::move(r), [this, job, step, url](HttpResult result) mutable {
    on_answer(job, step, std::move(url), std::move(result));
  });
  // `bearer` is wiped here: curl has its own (wiped-on-free) copy.
}

void ConnectProvider::on_answer(const JobPtr& job, Step step, std::string url, HttpResult r) {
  if (closed_) return;
  if (r) return on_status(job, step, std::move(url), *r);
  const HttpFailure& f = r.error();
  switch (f.kind) {
    case HttpError::too_large:
      return fail(job, FetchError::rejected,
                  health_->where() + ": the answer is larger than max_response_bytes (" +
                      std::to_string(options_.max_response_bytes) + ")");
    case HttpError::no_memory: return fail(job, FetchError::no_memory, f.message);
    case HttpError::tls:
      health_->failure(failure_text(f));
      return fail(job, FetchError::unavailable, health_->where() + ": TLS failed: " + f.message);
    default:
      health_->failure(failure_text(f));
      return fail(job, FetchError::unavailable, health_->where() + " is unreachable: " + f.message);
  }
}

void ConnectProvider::on_status(const JobPtr& job, Step step, std::string url, HttpResponse& res) {
  health_->answered(res.status);

  if (res.status == 200) {
    switch (step) {
      case Step::vault_name: {
        auto doc = parse_body(res);
        Node name = doc ? doc->root().get("name") : Node();
        if (!name.is(Node::Type::string)) {
          health_->failure("malformed vault from Connect");
          return fail(job, FetchError::unavailable, health_->where() + ": malformed vault");
        }
        health_->success(res.elapsed, res.connect_version, true);
        vault_names_.put(job->vault_id, std::string(name.text()));
        return run(job);
      }
      case Step::vault:
      case Step::item: return on_list(job, res, step);
      case Step::full: return on_item(job, res);
    }
    return;
  }
  const std::string where = health_->where();
  if (res.status == 401) {
    health_->success(res.elapsed, res.connect_version, false);
    if (!job->token_retried && token_.reloadable()) {
      job->token_retried = true;
      auto changed = token_.reload();
      if (changed && *changed) {
        log::info("upstream", "Connect refused the token (401) and the token file changed: retrying with the new one",
                  {{"upstream", options_.name}});
        return request(job, step, std::move(url));
      }
    }
    health_->unauthorized();
    return fail(job, FetchError::unauthorized,
                where + " refused the agent's token (401" + connect_message(res) +
                    "): it has expired or was revoked; replace the token in " + token_.describe());
  }
  if (res.status == 403) {
    health_->success(res.elapsed, res.connect_version, true);
    return fail(job, FetchError::denied,
                where + ": vault " + printable(job->vault_id, 64) + " is not in the agent's token scope (403" +
                    connect_message(res) + ")");
  }
  if (res.status == 404) {
    health_->success(res.elapsed, res.connect_version, true);
    // An ID resolved from a name earlier may no longer exist (the item, or
    // its vault, was deleted and recreated under the same name): resolve
    // that name again, once per level.
    if (step == Step::full && job->item_cached && !job->item_re_resolved) {
      job->item_re_resolved = true;
      item_ids_.erase(item_key(job->vault_id, job->ref.item));
      job->item_id.clear();
      job->item_cached = false;
      keys_.erase(job->name_key);
      return run(job);
    }
    if (step != Step::vault && job->vault_cached && !job->vault_re_resolved) {
      job->vault_re_resolved = true;
      vault_ids_.erase(catalog::fold_case(job->ref.vault));
      if (job->item_cached || !is_connect_id(job->ref.item)) {
        item_ids_.erase(item_key(job->vault_id, job->ref.item));
        job->item_id.clear();
        job->item_cached = false;
      }
      job->vault_id.clear();
      job->vault_cached = false;
      keys_.erase(job->name_key);
      return run(job);
    }
    remember_not_found(job);
    return fail(job, FetchError::not_found,
                job->ref.display() + " was not found in " + where + " (404" + connect_message(res) + ")");
  }
  if (res.status == 429) {
    Duration period = health_->rate_limited();
    return fail(job, FetchError::unavailable,
                where + " is rate limiting the agent (429); requests resume in " + seconds_text(period));
  }
  if (res.status >= 500) {
    std::string why = "HTTP " + std::to_string(res.status) + connect_message(res);
    health_->failure(why);
    return fail(job, FetchError::unavailable, where + " answered " + why);
  }
  health_->success(res.elapsed, res.connect_version, true);
  fail(job, FetchError::rejected, where + " answered HTTP " + std::to_string(res.status) + connect_message(res));
}

void ConnectProvider::malformed(const JobPtr& job, const std::string& why) {
  health_->failure(why);
  fail(job, FetchError::unavailable, health_->where() + ": " + why);
}

void ConnectProvider::on_list(const JobPtr& job, HttpResponse& r, Step step) {
  const bool vaults = step == Step::vault;
  auto doc = parse_answer(r, Node::Type::array, vaults ? "vault list" : "item list");
  if (!doc) return malformed(job, doc.error());
  health_->success(r.elapsed, r.connect_version, true);
  const std::string& vault = job->ref.vault;
  const std::string& wanted = vaults ? vault : job->ref.item;
  std::vector<std::string> ids = ids_named(doc->root(), vaults ? "name" : "title", wanted);
  if (ids.empty()) {
    remember_not_found(job);
    return fail(job, FetchError::not_found,
                vaults ? "no vault named " + quoted(vault) + " is visible to the agent's token in " + health_->where()
                       : "no item titled " + quoted(wanted) + " in vault " + quoted(vault) + " (" + health_->where() + ")");
  }
  if (ids.size() > 1) {
    std::string n = std::to_string(ids.size());
    return fail(job, FetchError::not_found,
                (vaults ? n + " vaults are named " + quoted(vault)
                        : n + " items in vault " + quoted(vault) + " are titled " + quoted(wanted)) +
                    " (" + list_ids(ids) + "); name the " + (vaults ? "vault" : "item") + " by its ID in the reference");
  }
  if (vaults) {
    vault_ids_.put(catalog::fold_case(vault), ids.front());
    vault_names_.put(ids.front(), vault);
    job->vault_id = ids.front();
  } else {
    item_ids_.put(item_key(job->vault_id, wanted), ids.front());
    job->item_id = ids.front();
  }
  run(job);
}

void ConnectProvider::on_item(const JobPtr& job, HttpResponse& r) {
  auto doc = parse_answer(r, Node::Type::object, "item");
  if (!doc) return malformed(job, doc.error());
  health_->success(r.elapsed, r.connect_version, true);
  Node item = doc->root();
  auto match = match_field(item, job->ref);
  if (!match) {
    if (match.error().unknown()) remember_not_found(job);
    return fail(job, FetchError::not_found, std::move(match.error().message));
  }
  // One key for every spelling of this secret: the IDs, verbatim.
  keys_.put(job->name_key, ids_of(*match, job->vault_id, job->item_id).id_key());
  if (job->spelled) {
    const std::string* vault_name = vault_names_.find(job->vault_id);
    Resolution resolved =
        resolution(item, *match, job->vault_id, job->item_id, vault_name ? *vault_name : job->vault_id);
    resolutions_.put(job->name_key, resolved);
    jobs_.erase(job->number);
    tasks_.post([done = std::move(job->spelled), resolved = std::move(resolved)] { done(resolved); });
    return;
  }
  auto value = field_value(*match, job->ref);  // in the locked answer buffer
  if (!value) return fail(job, FetchError::not_found, std::move(value.error().message));
  secure::SecureBuffer out = secure::SecureBuffer::allocate(arena_, std::max<std::size_t>(value->size(), 1));
  if (!out) return fail(job, FetchError::no_memory, "no locked memory for the value right now");
  if (!out.append(*value)) return fail(job, FetchError::no_memory, "no locked memory for the value right now");
  negative_.erase(job->name_key);
  finish(job, std::move(out));
  // The answer (every field of the item) is wiped when `r` dies.
}

void ConnectProvider::remember_not_found(const JobPtr& job) { negative_.put(job->name_key, NotFound{}); }

void ConnectProvider::finish(const JobPtr& job, FetchResult r) {
  jobs_.erase(job->number);
  if (job->spelled) {
    // A failed resolve() job: the reference could not be resolved, and why.
    FetchError why = r ? FetchError::unavailable : r.error().kind;
    tasks_.post([done = std::move(job->spelled), why] { done(tl::unexpected(why)); });
    return;
  }
  if (job->done) complete_later(tasks_, std::move(job->done), std::move(r));
}

void ConnectProvider::fail(const JobPtr& job, FetchError kind, std::string message) {
  finish(job, tl::unexpected(FetchFailure{kind, std::move(message)}));
}

}  // namespace chitty::upstream
