// A bounded map whose entries go stale: facts remembered for a while (name →
// ID resolutions, "not found" answers) that must neither live forever nor
// grow without limit.
//
// Each entry remembers when it was put (from the injected Clock) and the TTL
// it is judged by; it is fresh while younger than that. Stale entries are not
// dropped by reading them: find() ignores them, lookup() still shows them
// (a caller may choose to keep using one, e.g. while its source cannot be
// asked), and they go when overwritten, erased or evicted. At most
// `capacity` entries: putting a new key into a full map evicts the one put
// longest ago — with one TTL for all, the stalest — never the whole map.
//
// Keys are looked up by anything `Hash` and `KeyEqual` accept without a
// copy: by default std::string keys are found by std::string_view.
//
// Thread: one thread at a time (the clock is read on it).
#pragma once

#include <algorithm>
#include <cstddef>
#include <functional>
#include <list>
#include <string_view>
#include <unordered_map>
#include <utility>

#include "chitty/base/clock.hpp"

namespace chitty {

// Hashes anything that converts to std::string_view, so that a map keyed by
// std::string is searched by a std::string_view without building a string.
struct TransparentStringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

template <class K, class V, class Hash = TransparentStringHash, class KeyEqual = std::equal_to<>>
class ExpiringMap {
 public:
  // A TTL for entries that never go stale by age (they still count against
  // the capacity).
  static constexpr Duration kNever = Duration::max();

  // How set_ttl() applies: to entries put from now on (each stored entry
  // keeps the TTL it was put with), or to the entries already stored too.
  enum class Apply { to_new, to_all };

  // `capacity` at least 1 (0 is taken as 1). `clock` must outlive the map.
  ExpiringMap(const Clock& clock, std::size_t capacity, Duration ttl)
      : clock_(clock), capacity_(std::max<std::size_t>(capacity, 1)), ttl_(ttl) {}
  ExpiringMap(const ExpiringMap&) = delete;
  ExpiringMap& operator=(const ExpiringMap&) = delete;

  // Inserts or replaces `key`; either way it is now the newest entry, fresh
  // for the current TTL. A new key in a full map first evicts the oldest.
  void put(K key, V value) {
    MonoTime now = clock_.now();
    if (auto it = map_.find(key); it != map_.end()) {
      it->second.value = std::move(value);
      it->second.at = now;
      it->second.ttl = ttl_;
      order_.splice(order_.end(), order_, it->second.order);
      return;
    }
    while (map_.size() >= capacity_) evict_oldest();
    auto [it, inserted] = map_.emplace(std::move(key), Entry{std::move(value), now, ttl_, {}});
    try {
      it->second.order = order_.insert(order_.end(), &it->first);
    } catch (...) {
      map_.erase(it);
      throw;
    }
  }

  // The value under `key` while it is fresh; null when absent or stale.
  template <class Q>
  const V* find(const Q& key) const {
    auto it = map_.find(key);
    if (it == map_.end() || !fresh(it->second)) return nullptr;
    return &it->second.value;
  }

  // The value under `key` however old (null when absent), and whether it is
  // still fresh.
  struct Found {
    const V* value = nullptr;
    bool fresh = false;
  };
  template <class Q>
  Found lookup(const Q& key) const {
    auto it = map_.find(key);
    if (it == map_.end()) return {};
    return {&it->second.value, fresh(it->second)};
  }

  // Removes `key`; whether it was there (fresh or not).
  template <class Q>
  bool erase(const Q& key) {
    auto it = map_.find(key);
    if (it == map_.end()) return false;
    order_.erase(it->second.order);
    map_.erase(it);
    return true;
  }

  void clear() noexcept {
    order_.clear();
    map_.clear();
  }

  // Calls f(key, value) for every entry, fresh or stale, in no set order.
  // `f` must not change the map.
  template <class F>
  void for_each(F&& f) const {
    for (const auto& [key, entry] : map_) f(key, entry.value);
  }

  void set_ttl(Duration ttl, Apply apply) {
    ttl_ = ttl;
    if (apply == Apply::to_all) {
      for (auto& [key, entry] : map_) entry.ttl = ttl;
    }
  }
  Duration ttl() const noexcept { return ttl_; }
  std::size_t size() const noexcept { return map_.size(); }
  bool empty() const noexcept { return map_.empty(); }
  std::size_t capacity() const noexcept { return capacity_; }

 private:
  struct Entry {
    V value;
    MonoTime at{};
    Duration ttl{};
    typename std::list<const K*>::iterator order{};  // its place in order_
  };

  bool fresh(const Entry& e) const noexcept { return clock_.now() - e.at < e.ttl; }

  void evict_oldest() {
    auto it = map_.find(*order_.front());
    order_.pop_front();
    map_.erase(it);
  }

  const Clock& clock_;
  std::size_t capacity_;
  Duration ttl_;
  std::unordered_map<K, Entry, Hash, KeyEqual> map_;
  std::list<const K*> order_;  // keys by the time they were put, oldest first (node keys: stable)
};

}  // namespace chitty
