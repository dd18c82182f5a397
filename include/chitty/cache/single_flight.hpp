// Single-flight: concurrent misses of one key make one fetch; everyone who
// asked meanwhile gets its outcome, in the order they asked.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

namespace chitty::cache {

template <typename Outcome>
class SingleFlight {
 public:
  using Waiter = std::function<void(const Outcome&)>;

  // Registers `waiter` for `key`. True if no fetch for `key` was running: the
  // caller must start one (and call complete() when it ends).
  bool join(const std::string& key, Waiter waiter) {
    auto [it, first] = flights_.try_emplace(key);
    it->second.push_back(std::move(waiter));
    return first;
  }

  // Delivers `outcome` to every waiter of `key` and forgets the flight.
  // Waiters may join new flights (for the same key too) from their callback.
  void complete(const std::string& key, const Outcome& outcome) {
    auto it = flights_.find(key);
    if (it == flights_.end()) return;
    std::vector<Waiter> waiters = std::move(it->second);
    flights_.erase(it);
    for (auto& w : waiters) w(outcome);
  }

  std::size_t waiting(const std::string& key) const {
    auto it = flights_.find(key);
    return it == flights_.end() ? 0 : it->second.size();
  }
  std::size_t flights() const noexcept { return flights_.size(); }

 private:
  std::unordered_map<std::string, std::vector<Waiter>> flights_;
};

}  // namespace chitty::cache
