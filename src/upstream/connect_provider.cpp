#include "chitty/upstream/connect_provider.hpp"

#include <algorithm>
#include <cmath>
#include <utility>

#include "chitty/base/text.hpp"
#include "chitty/base/time_format.hpp"
#include "chitty/base/units.hpp"
#include "chitty/catalog/reference.hpp"
#include "chitty/json/in_place.hpp"
#include "chitty/log/log.hpp"
#include "complete_later.hpp"

namespace chitty::upstream {
namespace {

using json::InPlace;
using json::Node;

constexpr std::size_t kMaxRemembered = 20000;  // per resolution map; beyond it the map starts over

std::string percent_encode(std::string_view s) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : s) {
    bool unreserved = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
                      c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kHex[c >> 4];
      out += kHex[c & 15];
    }
  }
  return out;
}

// `title eq "NAME"`, encoded for the query string.
std::string title_filter(std::string_view name) { return "?filter=" + percent_encode("title eq \"" + std::string(name) + "\""); }

// Text from an upstream error body for a message: printable, bounded.
std::string printable(std::string_view s, std::size_t max = 200) {
  std::string out;
  for (char c : s.substr(0, max)) out += (c >= 0x20 && c < 0x7f) ? c : '?';
  if (s.size() > max) out += "...";
  return out;
}

std::string quoted(std::string_view s) { return "\"" + printable(s, 256) + "\""; }

// Why a request got no answer, the same words whether it was a probe or a
// fetch ("TLS: …", "timeout: …").
std::string failure_text(const HttpFailure& f) {
  if (f.kind == HttpError::tls) return "TLS: " + f.message;
  return std::string(http_error_name(f.kind)) + ": " + f.message;
}

std::string list_ids(const std::vector<std::string>& ids) {
  std::string out;
  for (const auto& id : ids) out += (out.empty() ? "" : ", ") + printable(id, 64);
  return out;
}

Result<InPlace> parse_body(HttpResponse& r) {
  if (!r.body) return fail("an empty answer");
  return InPlace::parse(r.body);
}

std::string seconds_text(Duration d) {
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(d).count();
  return format_duration(std::chrono::milliseconds(std::max<std::int64_t>(ms, 0)));
}

}  // namespace

bool is_connect_id(std::string_view s) noexcept {
  if (s.size() != 26) return false;
  return std::all_of(s.begin(), s.end(), [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'); });
}

std::string_view connect_health_name(ConnectStatus::Health h) noexcept {
  switch (h) {
    case ConnectStatus::Health::unknown: return "unknown";
    case ConnectStatus::Health::healthy: return "healthy";
    case ConnectStatus::Health::unreachable: return "unreachable";
    case ConnectStatus::Health::unauthorized: return "unauthorized";
    case ConnectStatus::Health::rate_limited: return "rate_limited";
  }
  return "unknown";
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
  // A spellings() job: ends with the reference's other forms, not a value.
  Provider::ResolveDone spelled;
};

ConnectProvider::ConnectProvider(loop::Loop& loop, loop::TaskQueue& tasks, HttpClient& http, secure::Arena& arena,
                                 const Clock& clock, Token& token, ConnectOptions options,
                                 std::function<double()> random)
    : tasks_(tasks), http_(http), arena_(arena), clock_(clock), token_(token), options_(std::move(options)),
      random_(std::move(random)), breaker_(options_.breaker, random_), probe_timer_(loop, [this] { probe(); }) {
  while (options_.url.ends_with('/')) options_.url.pop_back();
}

ConnectProvider::~ConnectProvider() { close(); }

std::string ConnectProvider::where() const { return "1Password Connect (" + options_.name + ", " + options_.url + ")"; }

void ConnectProvider::start() {
  next_health_probe_ = clock_.now();  // the first probe asks /health: version and dependencies
  probe();
}

void ConnectProvider::close() noexcept {
  if (closed_) return;
  closed_ = true;
  probe_timer_.close();
  for (auto& [n, job] : jobs_) http_.cancel(job->http);
  jobs_.clear();
}

void ConnectProvider::reconfigure(const ConnectOptions& o) {
  std::string url = options_.url;
  std::string name = options_.name;
  options_ = o;
  options_.url = url;
  options_.name = name;
  breaker_.set_options(o.breaker);
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

bool ConnectProvider::available() const noexcept {
  return breaker_.state() == Breaker::State::closed && last_outcome_ok_;
}

std::optional<std::string> ConnectProvider::resolved_key(std::string_view canonical) const {
  if (keys_.empty()) return std::nullopt;
  auto it = keys_.find(canonical);
  if (it == keys_.end()) return std::nullopt;
  // Expired: resolved again on the next fetch (a renamed item no longer
  // answers to its old name). While the server cannot answer, the last
  // resolution stands; the cache's fallback window bounds what it reaches.
  if (clock_.now() - it->second.at >= options_.resolution_ttl && available()) return std::nullopt;
  return it->second.key;
}

std::vector<std::string> ConnectProvider::aliases(std::string_view key) const {
  std::vector<std::string> out;
  for (const auto& [canonical, k] : keys_) {
    if (k.key == key) out.push_back(canonical);
  }
  for (const auto& [canonical, r] : resolutions_) {
    if (r.resolution.key != key) continue;
    out.push_back(canonical);
    out.push_back(r.resolution.names.canonical());
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

// ---------------------------------------------------------------------------
// Fetching

void ConnectProvider::fetch(const FetchRequest& request, FetchDone done) {
  auto job = std::make_shared<Job>();
  job->number = next_job_++;
  job->ref = request.ref;
  job->name_key = request.ref.canonical();
  job->done = std::move(done);
  jobs_.emplace(job->number, job);
  MonoTime now = clock_.now();
  if (closed_) return fail(job, FetchError::unavailable, where() + " is shutting down");
  if (!request.refresh) {
    if (auto it = negative_.find(job->name_key); it != negative_.end()) {
      if (now < it->second) {
        return fail(job, FetchError::not_found,
                    request.ref.display() + " was not found in " + where() + " moments ago (answer kept for " +
                        seconds_text(options_.negative_ttl) + ")");
      }
      negative_.erase(it);
    }
  }
  if (now < rate_limited_until_) {
    return fail(job, FetchError::unavailable,
                where() + " is rate limiting the agent (429); requests resume in " +
                    seconds_text(rate_limited_until_ - now));
  }
  if (!breaker_.allow(now)) {
    return fail(job, FetchError::unavailable,
                where() + " is unreachable (" + (status_.last_error.empty() ? "circuit open" : status_.last_error) +
                    "); next attempt in " + seconds_text(breaker_.retry_at() - now));
  }
  run(job);
}

void ConnectProvider::run(const JobPtr& job) {
  const catalog::Reference& ref = job->ref;
  MonoTime now = clock_.now();
  auto fresh = [&](const Resolved& r) { return now - r.at < options_.resolution_ttl; };
  auto lookup_name_ok = [&](std::string_view name) {
    return name.find('"') == std::string_view::npos && name.find('\\') == std::string_view::npos;
  };

  if (job->vault_id.empty()) {
    if (is_connect_id(ref.vault)) {
      job->vault_id = ref.vault;
    } else if (auto it = vault_ids_.find(catalog::fold_case(ref.vault)); it != vault_ids_.end() && fresh(it->second)) {
      job->vault_id = it->second.id;
      job->vault_cached = true;
    } else if (!lookup_name_ok(ref.vault)) {
      return fail(job, FetchError::not_found, "a vault name with a quote or backslash cannot be looked up; use its ID");
    } else {
      ++status_.resolutions;
      return request(job, Step::vault, options_.url + "/v1/vaults" + title_filter(ref.vault));
    }
  }
  if (job->item_id.empty()) {
    std::string key = job->vault_id + '\n' + catalog::fold_case(ref.item);
    if (is_connect_id(ref.item)) {
      job->item_id = ref.item;
    } else if (auto it = item_ids_.find(key); it != item_ids_.end() && fresh(it->second)) {
      job->item_id = it->second.id;
      job->item_cached = true;
    } else if (!lookup_name_ok(ref.item)) {
      return fail(job, FetchError::not_found, "an item title with a quote or backslash cannot be looked up; use its ID");
    } else {
      ++status_.resolutions;
      return request(job, Step::item,
                     options_.url + "/v1/vaults/" + percent_encode(job->vault_id) + "/items" + title_filter(ref.item));
    }
  }
  if (job->spelled && vault_names_.find(job->vault_id) == vault_names_.end()) {
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
  ++status_.requests;
  job->http = http_.send(std::move(r), [this, job, step, url](HttpResult result) mutable {
    on_answer(job, step, std::move(url), std::move(result));
  });
  // `bearer` is wiped here: curl has its own (wiped-on-free) copy.
}

void ConnectProvider::on_answer(const JobPtr& job, Step step, std::string url, HttpResult r) {
  if (closed_) return;
  if (!r) {
    const HttpFailure& f = r.error();
    switch (f.kind) {
      case HttpError::too_large:
        return fail(job, FetchError::rejected,
                    where() + ": the answer is larger than max_response_bytes (" +
                        std::to_string(options_.max_response_bytes) + ")");
      case HttpError::no_memory: return fail(job, FetchError::no_memory, f.message);
      case HttpError::tls:
        availability_failure(failure_text(f));
        return fail(job, FetchError::unavailable, where() + ": TLS failed: " + f.message);
      default:
        availability_failure(failure_text(f));
        return fail(job, FetchError::unavailable, where() + " is unreachable: " + f.message);
    }
  }
  HttpResponse& res = *r;
  if (res.status != 429) rate_limits_in_a_row_ = 0;
  auto error_message = [&]() -> std::string {
    if (!res.body) return "";
    auto doc = InPlace::parse(res.body);
    if (!doc) return "";
    Node m = doc->root().get("message");
    return m.is(Node::Type::string) ? ": " + printable(m.text()) : "";
  };

  if (res.status == 200) {
    switch (step) {
      case Step::vault_name: {
        auto doc = parse_body(res);
        Node name = doc ? doc->root().get("name") : Node();
        if (!name.is(Node::Type::string)) {
          availability_failure("malformed vault from Connect");
          return fail(job, FetchError::unavailable, where() + ": malformed vault");
        }
        availability_success(res.elapsed, res.connect_version, true);
        if (vault_names_.size() >= kMaxRemembered) vault_names_.clear();
        vault_names_[job->vault_id] = std::string(name.text());
        return run(job);
      }
      case Step::vault: return on_vaults(job, res);
      case Step::item: return on_items(job, res);
      case Step::full: return on_item(job, res);
    }
    return;
  }
  if (res.status == 401) {
    availability_success(res.elapsed, res.connect_version, false);
    if (!job->token_retried && token_.reloadable()) {
      job->token_retried = true;
      auto changed = token_.reload();
      if (changed && *changed) {
        log::info("upstream", "Connect refused the token (401) and the token file changed: retrying with the new one",
                  {{"upstream", options_.name}});
        return request(job, step, std::move(url));
      }
    }
    set_health(ConnectStatus::Health::unauthorized);
    return fail(job, FetchError::unauthorized,
                where() + " refused the agent's token (401" + error_message() +
                    "): it has expired or was revoked; replace the token in " + token_.describe());
  }
  if (res.status == 403) {
    availability_success(res.elapsed, res.connect_version, true);
    return fail(job, FetchError::denied,
                where() + ": vault " + printable(job->vault_id, 64) + " is not in the agent's token scope (403" +
                    error_message() + ")");
  }
  if (res.status == 404) {
    availability_success(res.elapsed, res.connect_version, true);
    // An ID resolved from a name earlier may no longer exist (the item, or
    // its vault, was deleted and recreated under the same name): resolve
    // that name again, once per level.
    if (step == Step::full && job->item_cached && !job->item_re_resolved) {
      job->item_re_resolved = true;
      item_ids_.erase(job->vault_id + '\n' + catalog::fold_case(job->ref.item));
      job->item_id.clear();
      job->item_cached = false;
      keys_.erase(job->name_key);
      return run(job);
    }
    if (step != Step::vault && job->vault_cached && !job->vault_re_resolved) {
      job->vault_re_resolved = true;
      vault_ids_.erase(catalog::fold_case(job->ref.vault));
      if (job->item_cached || !is_connect_id(job->ref.item)) {
        item_ids_.erase(job->vault_id + '\n' + catalog::fold_case(job->ref.item));
        job->item_id.clear();
        job->item_cached = false;
      }
      job->vault_id.clear();
      job->vault_cached = false;
      keys_.erase(job->name_key);
      return run(job);
    }
    negative_[job->name_key] = clock_.now() + options_.negative_ttl;
    return fail(job, FetchError::not_found,
                job->ref.display() + " was not found in " + where() + " (404" + error_message() + ")");
  }
  if (res.status == 429) {
    // Connect defines no rate-limit headers: our own jittered exponential backoff.
    ++rate_limits_in_a_row_;
    Duration period = options_.rate_limit_backoff;
    for (unsigned i = 1; i < rate_limits_in_a_row_ && period < options_.rate_limit_max_backoff; ++i) period *= 2;
    period = std::min(period, options_.rate_limit_max_backoff);
    double j = random_ ? random_() : 0.5;
    period = std::chrono::duration_cast<Duration>(period * (0.75 + 0.5 * j));
    rate_limited_until_ = clock_.now() + period;
    status_.last_error = "rate limited (429)";
    set_health(ConnectStatus::Health::rate_limited);
    return fail(job, FetchError::unavailable,
                where() + " is rate limiting the agent (429); requests resume in " + seconds_text(period));
  }
  if (res.status >= 500) {
    std::string why = "HTTP " + std::to_string(res.status) + error_message();
    availability_failure(why);
    return fail(job, FetchError::unavailable, where() + " answered " + why);
  }
  availability_success(res.elapsed, res.connect_version, true);
  fail(job, FetchError::rejected, where() + " answered HTTP " + std::to_string(res.status) + error_message());
}

void ConnectProvider::on_vaults(const JobPtr& job, HttpResponse& r) {
  auto doc = parse_body(r);
  if (!doc || !doc->root().is(Node::Type::array)) {
    std::string why = "malformed vault list from Connect (" + (doc ? std::string("not an array") : doc.error().message) + ")";
    availability_failure(why);
    return fail(job, FetchError::unavailable, where() + ": " + why);
  }
  availability_success(r.elapsed, r.connect_version, true);
  std::vector<std::string> ids;
  for (Node v : doc->root()) {
    Node name = v.get("name");
    Node id = v.get("id");
    if (!name.is(Node::Type::string) || !id.is(Node::Type::string)) continue;
    if (iequals(name.text(), job->ref.vault)) ids.emplace_back(id.text());
  }
  if (ids.empty()) {
    negative_[job->name_key] = clock_.now() + options_.negative_ttl;
    return fail(job, FetchError::not_found,
                "no vault named " + quoted(job->ref.vault) + " is visible to the agent's token in " + where());
  }
  if (ids.size() > 1) {
    return fail(job, FetchError::not_found,
                std::to_string(ids.size()) + " vaults are named " + quoted(job->ref.vault) + " (" + list_ids(ids) +
                    "); name the vault by its ID in the reference");
  }
  if (vault_ids_.size() >= kMaxRemembered) vault_ids_.clear();
  vault_ids_[catalog::fold_case(job->ref.vault)] = Resolved{ids.front(), clock_.now()};
  if (vault_names_.size() >= kMaxRemembered) vault_names_.clear();
  vault_names_[ids.front()] = job->ref.vault;
  job->vault_id = ids.front();
  run(job);
}

void ConnectProvider::on_items(const JobPtr& job, HttpResponse& r) {
  auto doc = parse_body(r);
  if (!doc || !doc->root().is(Node::Type::array)) {
    std::string why = "malformed item list from Connect (" + (doc ? std::string("not an array") : doc.error().message) + ")";
    availability_failure(why);
    return fail(job, FetchError::unavailable, where() + ": " + why);
  }
  availability_success(r.elapsed, r.connect_version, true);
  std::vector<std::string> ids;
  for (Node item : doc->root()) {
    Node title = item.get("title");
    Node id = item.get("id");
    if (!title.is(Node::Type::string) || !id.is(Node::Type::string)) continue;
    if (iequals(title.text(), job->ref.item)) ids.emplace_back(id.text());
  }
  if (ids.empty()) {
    negative_[job->name_key] = clock_.now() + options_.negative_ttl;
    return fail(job, FetchError::not_found,
                "no item titled " + quoted(job->ref.item) + " in vault " + quoted(job->ref.vault) + " (" + where() +
                    ")");
  }
  if (ids.size() > 1) {
    return fail(job, FetchError::not_found,
                std::to_string(ids.size()) + " items in vault " + quoted(job->ref.vault) + " are titled " +
                    quoted(job->ref.item) + " (" + list_ids(ids) + "); name the item by its ID in the reference");
  }
  if (item_ids_.size() >= kMaxRemembered) item_ids_.clear();
  item_ids_[job->vault_id + '\n' + catalog::fold_case(job->ref.item)] = Resolved{ids.front(), clock_.now()};
  job->item_id = ids.front();
  run(job);
}

void ConnectProvider::on_item(const JobPtr& job, HttpResponse& r) {
  auto doc = parse_body(r);
  if (!doc || !doc->root().is(Node::Type::object)) {
    std::string why = "malformed item from Connect (" + (doc ? std::string("not an object") : doc.error().message) + ")";
    availability_failure(why);
    return fail(job, FetchError::unavailable, where() + ": " + why);
  }
  availability_success(r.elapsed, r.connect_version, true);
  const catalog::Reference& ref = job->ref;
  Node item = doc->root();
  std::string item_shown = quoted(ref.item);

  // The section, when the reference names one.
  std::string section_id;
  if (ref.section) {
    std::vector<std::string> ids;
    for (Node s : item.get("sections")) {
      Node id = s.get("id");
      Node label = s.get("label");
      bool match = (id.is(Node::Type::string) && iequals(id.text(), *ref.section)) ||
                   (label.is(Node::Type::string) && iequals(label.text(), *ref.section));
      if (match && id.is(Node::Type::string)) ids.emplace_back(id.text());
    }
    if (ids.empty()) {
      negative_[job->name_key] = clock_.now() + options_.negative_ttl;
      return fail(job, FetchError::not_found, "item " + item_shown + " has no section " + quoted(*ref.section));
    }
    if (ids.size() > 1) {
      return fail(job, FetchError::not_found,
                  std::to_string(ids.size()) + " sections of item " + item_shown + " match " + quoted(*ref.section) +
                      " (" + list_ids(ids) + "); name the section by its ID");
    }
    section_id = ids.front();
  }

  // The field: by ID or label, within the section named; without a
  // section, among the fields outside every section only — a three-part
  // reference never reaches into a section (docs/policy.md), so a rule
  // op://V/*/F grants top-level fields only. A field that exists only in a
  // section is a 404 that names the four-part form.
  struct Candidate {
    Node node;
    std::string id;
    std::string section;
  };
  std::vector<Candidate> top, in_sections;
  for (Node f : item.get("fields")) {
    Node id = f.get("id");
    Node label = f.get("label");
    Node sec = f.get("section").get("id");
    std::string fsec = sec.is(Node::Type::string) ? std::string(sec.text()) : std::string();
    bool match = (id.is(Node::Type::string) && iequals(id.text(), ref.field)) ||
                 (label.is(Node::Type::string) && iequals(label.text(), ref.field));
    if (!match) continue;
    Candidate c{f, id.is(Node::Type::string) ? std::string(id.text()) : std::string(label.text()), fsec};
    if (ref.section) {
      if (fsec == section_id) top.push_back(c);
    } else if (fsec.empty()) {
      top.push_back(c);
    } else {
      in_sections.push_back(c);
    }
  }
  std::vector<Candidate>& found = top;
  if (found.empty()) {
    negative_[job->name_key] = clock_.now() + options_.negative_ttl;
    if (!in_sections.empty()) {
      // Say where it is: the four-part form (by the section's label, else its ID).
      std::string forms;
      for (const auto& c : in_sections) {
        std::string section = c.section;
        for (Node sec : item.get("sections")) {
          Node id = sec.get("id");
          Node label = sec.get("label");
          if (id.is(Node::Type::string) && id.text() == c.section && label.is(Node::Type::string) &&
              !label.text().empty() && label.text().find('/') == std::string_view::npos) {
            section = std::string(label.text());
          }
        }
        forms += (forms.empty() ? "" : ", ") +
                 printable(catalog::Reference{ref.vault, ref.item, section, ref.field}.display(), 300) + " (section " +
                 printable(c.section, 64) + ")";
      }
      return fail(job, FetchError::not_found,
                  "item " + item_shown + " has no top-level field " + quoted(ref.field) +
                      "; a three-part reference does not reach into sections. It is in a section: use " + forms);
    }
    return fail(job, FetchError::not_found,
                "item " + item_shown + " has no field " + quoted(ref.field) +
                    (ref.section ? " in section " + quoted(*ref.section) : std::string()));
  }
  if (found.size() > 1) {
    std::vector<std::string> ids;
    for (const auto& c : found) ids.push_back(c.section.empty() ? c.id : c.section + "/" + c.id);
    return fail(job, FetchError::not_found,
                std::to_string(found.size()) + " fields of item " + item_shown + " match " + quoted(ref.field) + " (" +
                    list_ids(ids) + "); name the section, or the field by its ID");
  }
  const Candidate& field = found.front();
  // One key for every spelling of this secret: the IDs, verbatim.
  catalog::Reference ids{job->vault_id, job->item_id,
                         field.section.empty() ? std::nullopt : std::optional<std::string>(field.section), field.id};
  std::string key = ids.id_key();
  if (keys_.size() >= kMaxRemembered) keys_.clear();
  keys_[job->name_key] = Keyed{key, clock_.now()};
  if (job->spelled) {
    // The all-names form, built from parts: a title or label may contain '/'.
    std::optional<std::string> section_label;
    if (!field.section.empty()) {
      section_label = field.section;
      for (Node sec : item.get("sections")) {
        Node id = sec.get("id");
        Node label = sec.get("label");
        if (id.is(Node::Type::string) && id.text() == field.section && label.is(Node::Type::string) &&
            !label.text().empty()) {
          section_label = std::string(label.text());
        }
      }
    }
    Node title = item.get("title");
    Node label = field.node.get("label");
    auto vault_name = vault_names_.find(job->vault_id);
    catalog::Reference names{
        vault_name != vault_names_.end() ? vault_name->second : job->vault_id,
        title.is(Node::Type::string) && !title.text().empty() ? std::string(title.text()) : job->item_id,
        section_label,
        label.is(Node::Type::string) && !label.text().empty() ? std::string(label.text()) : field.id};
    Resolution resolved{std::move(ids), std::move(names), std::move(key)};
    if (resolutions_.size() >= kMaxRemembered) resolutions_.clear();
    resolutions_[job->name_key] = Remembered{resolved, clock_.now()};
    jobs_.erase(job->number);
    tasks_.post([done = std::move(job->spelled), resolved = std::move(resolved)] { done(resolved); });
    return;
  }
  Node value = field.node.get("value");
  if (!value.is(Node::Type::string)) {
    return fail(job, FetchError::not_found, "field " + quoted(ref.field) + " of item " + item_shown + " has no value");
  }
  std::string_view text = value.text();  // in the locked answer buffer
  secure::SecureBuffer out = secure::SecureBuffer::allocate(arena_, std::max<std::size_t>(text.size(), 1));
  if (!out) return fail(job, FetchError::no_memory, "no locked memory for the value right now");
  out.append(text);
  negative_.erase(job->name_key);
  finish(job, std::move(out));
  // The answer (every field of the item) is wiped when `r` dies.
}

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

void ConnectProvider::resolve(const FetchRequest& request, ResolveDone done) {
  std::string key = request.ref.canonical();
  auto cached = resolutions_.find(key);
  if (cached != resolutions_.end() && clock_.now() - cached->second.at < options_.resolution_ttl) {
    tasks_.post([done = std::move(done), resolved = cached->second.resolution] { done(resolved); });
    return;
  }
  auto job = std::make_shared<Job>();
  job->number = next_job_++;
  job->ref = request.ref;
  job->name_key = key;
  job->spelled = std::move(done);
  jobs_.emplace(job->number, job);
  MonoTime now = clock_.now();
  if (closed_ || now < rate_limited_until_ || !breaker_.allow(now)) {
    return fail(job, FetchError::unavailable, "");
  }
  // Not found moments ago: said again without asking (a revocation of a
  // name that does not exist is tried on every fetch from the upstream).
  if (auto it = negative_.find(key); it != negative_.end() && now < it->second) {
    return fail(job, FetchError::not_found, "");
  }
  run(job);
}

void ConnectProvider::fail(const JobPtr& job, FetchError kind, std::string message) {
  finish(job, tl::unexpected(FetchFailure{kind, std::move(message)}));
}

// ---------------------------------------------------------------------------
// Availability

void ConnectProvider::availability_failure(const std::string& why) {
  MonoTime now = clock_.now();
  Breaker::State before = breaker_.state();
  bool was_ok = last_outcome_ok_;
  last_outcome_ok_ = false;
  ++status_.failures;
  status_.last_failure = clock_.wall_now();
  status_.last_error = why;
  if (!status_.unavailable_since) status_.unavailable_since = clock_.wall_now();
  breaker_.failure(now);
  if (was_ok) log::warn("upstream", "Connect request failed", {{"upstream", options_.name}, {"reason", why}});
  if (breaker_.state() == Breaker::State::open && before != Breaker::State::open) {
    log::warn("upstream", "Connect unreachable: circuit open",
              {{"upstream", options_.name},
               {"url", options_.url},
               {"retry_in", seconds_text(breaker_.retry_at() - now)},
               {"reason", why}});
    schedule_probe();  // the trial goes out when the backoff ends
  }
  set_health(ConnectStatus::Health::unreachable);
  if (before != breaker_.state() || was_ok) changed();
}

void ConnectProvider::availability_success(Duration latency, const std::string& version, bool authenticated) {
  Breaker::State before = breaker_.state();
  bool was_ok = last_outcome_ok_;
  last_outcome_ok_ = true;
  status_.last_success = clock_.wall_now();
  status_.last_latency = latency;
  status_.unavailable_since.reset();
  if (!version.empty()) status_.server_version = version;
  breaker_.success(clock_.now());
  if (!was_ok || before != Breaker::State::closed) {
    log::info("upstream", "Connect reachable again", {{"upstream", options_.name}, {"url", options_.url}});
  }
  ConnectStatus::Health h = status_.health;
  if (h == ConnectStatus::Health::unknown || h == ConnectStatus::Health::unreachable ||
      h == ConnectStatus::Health::rate_limited || (authenticated && h == ConnectStatus::Health::unauthorized)) {
    status_.last_error.clear();
    set_health(ConnectStatus::Health::healthy);
  }
  if (before != breaker_.state() || !was_ok) changed();
}

void ConnectProvider::set_health(ConnectStatus::Health h) {
  if (status_.health == h) return;
  ConnectStatus::Health before = status_.health;
  status_.health = h;
  if (h == ConnectStatus::Health::unauthorized) {
    log::error("upstream", "ALERT: Connect refuses the agent's token (401); it has expired or was revoked",
               {{"upstream", options_.name}, {"url", options_.url}, {"token", token_.describe()}});
  } else if (before == ConnectStatus::Health::unauthorized && h == ConnectStatus::Health::healthy) {
    log::info("upstream", "Connect accepts the agent's token again", {{"upstream", options_.name}});
  } else if (h == ConnectStatus::Health::rate_limited) {
    log::warn("upstream", "Connect is rate limiting the agent (429): backing off", {{"upstream", options_.name}});
  }
  changed();
}

void ConnectProvider::changed() {
  status_.breaker = breaker_.state();
  if (listener_) listener_();
}

void ConnectProvider::probe() {
  if (closed_ || probe_in_flight_) return;
  MonoTime now = clock_.now();
  if (!breaker_.allow(now)) return schedule_probe();
  bool health = now >= next_health_probe_;
  HttpRequest r;
  r.url = options_.url + (health ? "/health" : "/heartbeat");
  r.timeout = options_.timeout;
  r.connect_timeout = options_.connect_timeout;
  r.max_body = options_.max_response_bytes;
  ++status_.requests;
  probe_in_flight_ = true;
  auto id = http_.send(std::move(r), [this, health](HttpResult result) { on_probe(health, std::move(result)); });
  // Remembered as a job so that close() cancels it.
  auto job = std::make_shared<Job>();
  job->number = next_job_++;
  job->http = id;
  jobs_.emplace(job->number, job);
  probe_job_ = job->number;
}

void ConnectProvider::on_probe(bool health, HttpResult r) {
  if (closed_) return;
  probe_in_flight_ = false;
  jobs_.erase(probe_job_);
  if (!r) {
    availability_failure(failure_text(r.error()));
  } else if (r->status != 200) {
    availability_failure("HTTP " + std::to_string(r->status) + " from " + (health ? "/health" : "/heartbeat"));
  } else {
    if (health) {
      next_health_probe_ = clock_.now() + options_.health_interval;
      if (r->body) {
        if (auto doc = InPlace::parse(r->body)) {
          status_.dependencies.clear();
          for (Node d : doc->root().get("dependencies")) {
            Node service = d.get("service");
            Node state = d.get("status");
            if (service.is(Node::Type::string) && state.is(Node::Type::string) && status_.dependencies.size() < 16) {
              status_.dependencies.emplace_back(printable(service.text(), 64), printable(state.text(), 64));
            }
          }
          Node version = doc->root().get("version");
          if (version.is(Node::Type::string)) status_.server_version = printable(version.text(), 32);
        }
      }
    }
    availability_success(r->elapsed, r->connect_version, false);
  }
  schedule_probe();
}

void ConnectProvider::schedule_probe() {
  if (closed_ || probe_in_flight_) return;
  std::chrono::milliseconds delay = options_.probe_interval;
  if (breaker_.state() == Breaker::State::open) delay = std::max(until(clock_.now(), breaker_.retry_at()), std::chrono::milliseconds(1));
  probe_timer_.start(delay);
}

}  // namespace chitty::upstream
