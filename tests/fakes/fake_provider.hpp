// A Provider whose fetches the test completes by hand: it records each fetch
// and holds its completion until answer()/fail() — so a test can have a
// thousand requests waiting on one fetch, or an upstream that is down.
#pragma once

#include <stdexcept>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "chitty/secure/arena.hpp"
#include "chitty/secure/secure_buffer.hpp"
#include "chitty/upstream/provider.hpp"

namespace chitty::testing {

class FakeProvider final : public upstream::Provider {
 public:
  FakeProvider(secure::Arena& arena, std::string source, bool holds_everything = true)
      : arena_(arena), source_(std::move(source)), holds_everything_(holds_everything) {}

  std::string_view source() const noexcept override { return source_; }
  bool holds(const catalog::Entry* entry) const noexcept override {
    if (holds_everything_) return true;
    return entry != nullptr && (!entry->env.empty() || !entry->systemd_credential.empty());
  }
  void fetch(const upstream::FetchRequest& request, upstream::FetchDone done) override {
    ++fetches;
    pending_.push_back({request.entry ? request.entry->key : request.ref.canonical(), std::move(done)});
    last_request = request;
  }
  std::optional<std::string> resolved_key(std::string_view canonical) const override {
    auto it = resolved.find(std::string(canonical));
    if (it == resolved.end()) return std::nullopt;
    return it->second;
  }
  bool available() const noexcept override { return up; }
  // Resolution, when the test has set `resolving`: answered at once from
  // `resolutions` (by canonical form); nothing for an unknown reference or
  // while the provider is down.
  // With `resolve_later` the answers wait for complete_resolves(), as the
  // real provider's come on a later loop turn.
  bool resolves() const noexcept override { return resolving; }
  void resolve(const upstream::FetchRequest& request, ResolveDone done) override {
    ++resolves_asked;
    std::string canonical = request.ref.canonical();
    auto answer = [this, canonical, done = std::move(done)] {
      auto it = resolutions.find(canonical);
      if (!up) return done(tl::unexpected(upstream::FetchError::unavailable));
      if (it == resolutions.end()) return done(tl::unexpected(upstream::FetchError::not_found));
      resolved[canonical] = it->second.key;
      done(it->second);
    };
    if (resolve_later) {
      held_resolves_.push_back(std::move(answer));
    } else {
      answer();
    }
  }
  // Answers the resolutions held so far (and any they lead to).
  void complete_resolves() {
    while (!held_resolves_.empty()) {
      auto next = std::move(held_resolves_.front());
      held_resolves_.pop_front();
      next();
    }
  }
  std::size_t resolves_held() const noexcept { return held_resolves_.size(); }
  std::vector<std::string> aliases(std::string_view key) const override {
    std::vector<std::string> out;
    for (const auto& [canonical, k] : resolved) {
      if (k == key) out.push_back(canonical);
    }
    return out;
  }
  // Makes `spellings` (references) one secret with the all-IDs form `ids`
  // and the all-names form `names`: each resolves to ids.id_key().
  void same_secret(const catalog::Reference& ids, const catalog::Reference& names,
                   const std::vector<catalog::Reference>& spellings) {
    upstream::Resolution r{ids, names, ids.id_key()};
    resolutions[ids.canonical()] = r;
    resolutions[names.canonical()] = r;
    for (const auto& s : spellings) resolutions[s.canonical()] = r;
  }

  std::size_t pending() const noexcept { return pending_.size(); }
  const std::string& pending_key(std::size_t i = 0) const { return pending_[i].key; }

  // Completes the oldest pending fetch with `value`.
  void answer(std::string_view value) {
    up = true;
    secure::SecureBuffer b = secure::SecureBuffer::allocate(arena_, value.empty() ? 1 : value.size());
    if (!b.append(value)) throw std::runtime_error("FakeProvider: no locked memory for the answer");
    complete(std::move(b));
  }
  // Like the Connect provider, it reports itself unavailable after an
  // availability failure and available again after any answer.
  void fail(upstream::FetchError kind, std::string message = "fake failure") {
    up = kind != upstream::FetchError::unavailable;
    complete(tl::unexpected(upstream::FetchFailure{kind, std::move(message)}));
  }

  int fetches = 0;
  upstream::FetchRequest last_request;
  std::map<std::string, std::string> resolved;  // canonical reference -> resolved key
  std::map<std::string, upstream::Resolution> resolutions;  // canonical reference -> its forms
  bool resolving = false;
  bool resolve_later = false;
  int resolves_asked = 0;
  bool up = true;

 private:
  struct Pending {
    std::string key;
    upstream::FetchDone done;
  };
  void complete(upstream::FetchResult r) {
    Pending p = std::move(pending_.front());
    pending_.pop_front();
    p.done(std::move(r));
  }

  secure::Arena& arena_;
  std::string source_;
  bool holds_everything_;
  std::deque<Pending> pending_;
  std::deque<std::function<void()>> held_resolves_;
};

}  // namespace chitty::testing
