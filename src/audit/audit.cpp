#include "chitty/audit/audit.hpp"

#include <algorithm>
#include <span>

#include "chitty/base/enum_names.hpp"
#include "chitty/base/time_format.hpp"
#include "chitty/json/reader.hpp"
#include "chitty/json/writer.hpp"
#include "chitty/log/log.hpp"

namespace chitty::audit {

namespace {

constexpr std::array<std::string_view, 9> kKindNames{"decision", "revoke",    "mode",  "reload",  "start",
                                                      "stop",     "aggregate", "alert", "prefetch"};
constexpr std::array<std::string_view, 4> kDecisionNames{"allow", "deny", "error", "none"};
static_assert(names_every(kKindNames, Kind::prefetch) && names_every(kDecisionNames, Decision::none));

}  // namespace

std::string_view kind_name(Kind k) noexcept { return name_of(kKindNames, k); }

std::string_view decision_name(Decision d) noexcept { return name_of(kDecisionNames, d); }

Result<void> MemoryRecorder::record(const Event& event) {
  if (capacity_ == 0) return fail("the audit recorder holds no events");
  if (events_.size() == capacity_) events_.pop_front();
  events_.push_back(event);
  ++recorded_;
  events_.back().seq = recorded_;
  return {};
}

std::vector<Event> MemoryRecorder::query(const Query& q) const {
  std::vector<Event> out;
  for (auto it = events_.rbegin(); it != events_.rend() && out.size() < q.limit; ++it) {
    if (q.service && it->service != *q.service) continue;
    if (q.since && it->at < *q.since) break;  // events are in time order
    out.push_back(*it);
  }
  std::reverse(out.begin(), out.end());
  return out;
}

std::vector<Event> MemoryRecorder::recent(std::size_t limit) const {
  std::size_t n = std::min(limit, events_.size());
  return {events_.end() - static_cast<std::ptrdiff_t>(n), events_.end()};
}

namespace {

// The event's text fields, in the order of the line; an empty one is null.
struct TextField {
  std::string_view key;
  std::string Event::*member;
};
constexpr TextField kWho[] = {{"request_id", &Event::request_id}, {"service", &Event::service}};
constexpr TextField kIdentity[] = {{"exe", &Event::exe}, {"unit", &Event::unit}, {"container", &Event::container}};
constexpr TextField kWhat[] = {{"ref", &Event::ref},     {"credential_type", &Event::credential_type},
                               {"code", &Event::code},   {"reason", &Event::reason},
                               {"cache", &Event::cache}, {"source", &Event::source},
                               {"mode", &Event::mode}};

void text_fields(json::Writer& w, const Event& e, std::span<const TextField> fields) {
  for (const TextField& f : fields) {
    const std::string& v = e.*f.member;
    w.key(f.key);
    if (v.empty()) {
      w.null();
    } else {
      w.string(v);
    }
  }
}

}  // namespace

void write_event_fields(json::Writer& w, const Event& e) {
  w.key("v").integer(1);
  w.key("id").string(e.id);
  w.key("seq").uinteger(e.seq);
  w.key("at").string(format_rfc3339_ms(e.at));
  w.key("host").string(e.host);
  w.key("kind").string(kind_name(e.kind));
  w.key("action").string(e.action);
  w.key("decision").string(decision_name(e.decision));
  text_fields(w, e, kWho);
  w.key("identity").begin_object();
  w.key("uid");
  if (e.uid >= 0) w.integer(e.uid); else w.null();
  w.key("pid");
  if (e.pid >= 0) w.integer(e.pid); else w.null();
  text_fields(w, e, kIdentity);
  w.end_object();
  text_fields(w, e, kWhat);
  w.key("latency_us").integer(e.latency_us);
  if (!e.channel.empty()) w.key("channel").string(e.channel);
  if (e.withheld) w.key("withheld").boolean(true);
  if (e.risk) {
    w.key("risk").begin_object();
    w.key("score").integer(e.risk->score);
    w.key("level").string(e.risk->level);
    w.key("decision").string(e.risk->decision);
    if (e.risk->step_up) w.key("step_up").boolean(true);
    w.key("factors").begin_array();
    for (const auto& [factor, weight] : e.risk->factors) {
      w.begin_object();
      w.key("factor").string(factor);
      w.key("weight").integer(weight);
      w.end_object();
    }
    w.end_array();
    w.end_object();
  }
  if (e.kind == Kind::start && !e.recovered_head.empty()) w.key("recovered_head").string(e.recovered_head);
  if ((e.kind == Kind::start || e.kind == Kind::revoke) && e.revocations_generation > 0) {
    w.key("revocations_generation").uinteger(e.revocations_generation);
  }
  if (e.kind == Kind::aggregate || (e.kind == Kind::prefetch && e.count != 1)) {
    w.key("count").uinteger(e.count);
    w.key("first_at").string(format_rfc3339_ms(e.first_at.value_or(e.at)));
    w.key("last_at").string(format_rfc3339_ms(e.last_at.value_or(e.at)));
    w.key("refs").begin_array();
    for (const auto& r : e.refs) w.string(r);
    w.end_array();
  }
}

std::string event_line(const Event& e, std::string_view prev_mac_hex) {
  std::string out;
  out.reserve(512);
  json::Writer w(out);
  w.begin_object();
  write_event_fields(w, e);
  w.key("prev").string(prev_mac_hex);
  w.end_object();
  return out;
}

std::optional<Event> parse_event(std::string_view line) {
  auto doc = json::parse(line);
  if (!doc || doc->type != json::Value::Type::object) return std::nullopt;
  const json::Value& o = *doc;
  auto str = [&](std::string_view key) -> std::string {
    const json::Value* v = o.find(key);
    return v != nullptr && v->type == json::Value::Type::string ? v->string : std::string();
  };
  auto num = [&](const json::Value* base, std::string_view key, std::int64_t fallback) -> std::int64_t {
    const json::Value* v = base != nullptr ? base->find(key) : nullptr;
    return v != nullptr && v->integer ? *v->integer : fallback;
  };
  Event e;
  e.id = str("id");
  e.seq = static_cast<std::uint64_t>(num(&o, "seq", 0));
  if (auto t = parse_rfc3339(str("at"))) e.at = *t;
  e.host = str("host");
  std::string kind = str("kind");
  for (std::size_t k = 0; k < kKindNames.size(); ++k) {
    if (kKindNames[k] == kind) e.kind = static_cast<Kind>(k);
  }
  e.action = str("action");
  std::string decision = str("decision");
  for (std::size_t d = 0; d < kDecisionNames.size(); ++d) {
    if (kDecisionNames[d] == decision) e.decision = static_cast<Decision>(d);
  }
  e.request_id = str("request_id");
  e.service = str("service");
  const json::Value* id = o.find("identity");
  if (id != nullptr && id->type == json::Value::Type::object) {
    e.uid = num(id, "uid", -1);
    e.pid = num(id, "pid", -1);
    const json::Value* exe = id->find("exe");
    if (exe != nullptr && exe->type == json::Value::Type::string) e.exe = exe->string;
    const json::Value* unit = id->find("unit");
    if (unit != nullptr && unit->type == json::Value::Type::string) e.unit = unit->string;
    const json::Value* container = id->find("container");
    if (container != nullptr && container->type == json::Value::Type::string) e.container = container->string;
  }
  e.ref = str("ref");
  e.credential_type = str("credential_type");
  e.code = str("code");
  e.reason = str("reason");
  e.cache = str("cache");
  e.source = str("source");
  e.mode = str("mode");
  e.latency_us = num(&o, "latency_us", 0);
  e.channel = str("channel");
  if (const json::Value* w = o.find("withheld"); w != nullptr && w->type == json::Value::Type::boolean) {
    e.withheld = w->boolean;
  }
  if (const json::Value* r = o.find("risk"); r != nullptr && r->type == json::Value::Type::object) {
    Risk risk;
    risk.score = static_cast<int>(num(r, "score", 0));
    auto text = [&](std::string_view key) {
      const json::Value* v = r->find(key);
      return v != nullptr && v->type == json::Value::Type::string ? v->string : std::string();
    };
    risk.level = text("level");
    risk.decision = text("decision");
    const json::Value* up = r->find("step_up");
    risk.step_up = up != nullptr && up->type == json::Value::Type::boolean && up->boolean;
    if (const json::Value* fs = r->find("factors"); fs != nullptr && fs->type == json::Value::Type::array) {
      for (const auto& f : fs->items) {
        const json::Value* name = f.find("factor");
        if (name == nullptr || name->type != json::Value::Type::string) continue;
        risk.factors.emplace_back(name->string, static_cast<int>(num(&f, "weight", 0)));
      }
    }
    e.risk = std::move(risk);
  }
  e.count = static_cast<std::uint64_t>(num(&o, "count", 1));
  if (auto t = parse_rfc3339(str("first_at"))) e.first_at = *t;
  if (auto t = parse_rfc3339(str("last_at"))) e.last_at = *t;
  e.recovered_head = str("recovered_head");
  e.revocations_generation = static_cast<std::uint64_t>(num(&o, "revocations_generation", 0));
  if (const json::Value* refs = o.find("refs"); refs != nullptr && refs->type == json::Value::Type::array) {
    for (const auto& r : refs->items) {
      if (r.type == json::Value::Type::string && e.refs.size() < kAggregateRefs) e.refs.push_back(r.string);
    }
  }
  return e;
}

}  // namespace chitty::audit
