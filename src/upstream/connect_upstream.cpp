#include "chitty/upstream/connect_upstream.hpp"

#include "chitty/log/log.hpp"

namespace chitty::upstream {
namespace {

[[nodiscard]] Result<std::unique_ptr<Token>> open_token(secure::Arena& arena, secure::Sealer& sealer, const std::string& file,
                                          const std::string& env) {
  if (!file.empty()) return Token::from_file(arena, sealer, file);
  return Token::from_env(arena, sealer, env);
}

}  // namespace

ConnectOptions connect_options(const config::OnePasswordConfig& o, bool backup) {
  ConnectOptions c;
  c.name = backup ? "backup" : "primary";
  c.url = backup ? o.backup_url : o.url;
  c.timeout = o.timeout;
  c.connect_timeout = o.connect_timeout;
  c.max_response_bytes = o.max_response_bytes;
  c.probe_interval = o.probe_interval;
  c.health_interval = o.health_interval;
  c.resolution_ttl = o.resolution_ttl;
  c.negative_ttl = o.negative_ttl;
  c.rate_limit_backoff = o.rate_limit_backoff;
  c.breaker.failure_threshold = o.failure_threshold;
  c.breaker.backoff = o.breaker_backoff;
  c.breaker.max_backoff = o.breaker_max_backoff;
  return c;
}

Result<std::unique_ptr<ConnectUpstream>> ConnectUpstream::open(Deps deps, const config::OnePasswordConfig& o) {
  if (o.url.empty()) return std::unique_ptr<ConnectUpstream>();
  for (const auto& url : {o.url, o.backup_url}) {
    if (url.empty()) continue;
    if (auto ok = HttpClient::check_url(url, o.allow_insecure_http); !ok) {
      return fail("upstream.onepassword: " + ok.error().message);
    }
  }
  std::unique_ptr<ConnectUpstream> u(new ConnectUpstream());
  auto token = open_token(deps.arena, deps.sealer, o.token_file, o.token_env);
  if (!token) return fail("upstream.onepassword: " + token.error().message);
  u->token_ = std::move(*token);
  HttpClientOptions ho;
  ho.ca_file = o.ca_file;
  ho.allow_insecure_http = o.allow_insecure_http;
  u->http_ = std::make_unique<HttpClient>(deps.loop, deps.tasks, deps.arena, deps.clock, ho);
  u->primary_ = std::make_unique<ConnectProvider>(deps.loop, deps.tasks, *u->http_, deps.arena, deps.clock,
                                                  *u->token_, connect_options(o, false), deps.jitter);
  if (!o.backup_url.empty()) {
    Token* backup_token = u->token_.get();
    if (!o.backup_token_file.empty() || !o.backup_token_env.empty()) {
      auto t = open_token(deps.arena, deps.sealer, o.backup_token_file, o.backup_token_env);
      if (!t) return fail("upstream.onepassword (backup): " + t.error().message);
      u->backup_token_ = std::move(*t);
      backup_token = u->backup_token_.get();
    }
    u->backup_ = std::make_unique<ConnectProvider>(deps.loop, deps.tasks, *u->http_, deps.arena, deps.clock,
                                                   *backup_token, connect_options(o, true), deps.jitter);
  }
  log::info("upstream", "1Password Connect upstream configured",
            {{"url", o.url}, {"backup_url", o.backup_url}, {"token", u->token_->describe()}});
  return u;
}

ConnectUpstream::~ConnectUpstream() { close(); }

std::vector<ConnectProvider*> ConnectUpstream::servers() const {
  std::vector<ConnectProvider*> v;
  if (primary_) v.push_back(primary_.get());  // (not yet, when open() gave up half way)
  if (backup_) v.push_back(backup_.get());
  return v;
}

void ConnectUpstream::on_change(std::function<void()> listener) {
  for (ConnectProvider* c : servers()) c->on_change(listener);
}

void ConnectUpstream::start() {
  for (ConnectProvider* c : servers()) c->start();
}

void ConnectUpstream::reconfigure(const config::OnePasswordConfig& o) {
  primary_->reconfigure(connect_options(o, false));
  primary_->reload_token();
  if (backup_) {
    backup_->reconfigure(connect_options(o, true));
    if (backup_token_) backup_->reload_token();
  }
}

void ConnectUpstream::close() {
  if (closed_) return;
  closed_ = true;
  for (ConnectProvider* c : servers()) c->close();
  if (http_) http_->close();
}

}  // namespace chitty::upstream
