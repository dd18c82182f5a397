// The secret cache: values sealed in the locked arena, keyed by canonical
// reference, served fresh for their TTL and — while the upstream is
// unavailable (fallback mode) — stale up to `fallback_window` after they were
// fetched, never longer. LRU caps on entries and locked bytes; everything that
// leaves the cache is wiped. Time comes from the injected clock.
//
// Thread: loop thread only.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <list>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include <tl/expected.hpp>

#include "chitty/base/clock.hpp"
#include "chitty/base/result.hpp"
#include "chitty/config/config.hpp"
#include "chitty/secure/arena.hpp"
#include "chitty/secure/sealer.hpp"
#include "chitty/secure/secure_buffer.hpp"

namespace chitty::cache {

enum class Mode { normal, fallback };
std::string_view mode_name(Mode m) noexcept;

enum class Freshness { fresh, stale };
std::string_view freshness_name(Freshness f) noexcept;

struct Options {
  Duration ttl = std::chrono::minutes(5);
  Duration fallback_window = std::chrono::minutes(15);
  std::size_t max_entries = 10000;
  std::size_t max_locked_bytes = 6 * 1024 * 1024;
  std::vector<std::pair<std::string, Duration>> category_ttl;  // overrides ttl
};

// The options `[cache]` describes.
Options options_from(const config::CacheConfig& c);

// Where a value came from (not secret).
struct Meta {
  std::string source;    // "env", "systemd-credential", "1password"
  std::string category;  // chooses the TTL
};

// A value served from the cache: a fresh plaintext copy, owned by the caller.
struct Served {
  secure::SecureBuffer value;
  Freshness freshness;
  std::string source;
  WallTime fetched_at;
  WallTime expires_at;  // when it stops being fresh
  Duration age;
};

enum class Miss {
  absent,     // never fetched, evicted, or invalidated
  expired,    // past its TTL (normal mode) — a fetch is due; may still serve stale
  too_old,    // past the fallback window: never served again (and wiped)
  no_memory,  // no locked memory to unseal into right now
};
std::string_view miss_name(Miss m) noexcept;

class Cache {
 public:
  Cache(secure::Arena& arena, secure::Sealer& sealer, const Clock& clock, Options options);
  ~Cache();  // wipes everything
  Cache(const Cache&) = delete;
  Cache& operator=(const Cache&) = delete;

  // A value servable now: fresh in any mode; stale (TTL passed, within the
  // fallback window) only in fallback mode.
  [[nodiscard]] tl::expected<Served, Miss> get(const std::string& key);
  // A value within the fallback window whatever the mode: for when a fetch
  // just failed because the upstream is unavailable.
  [[nodiscard]] tl::expected<Served, Miss> get_stale(const std::string& key);

  // Seals and stores `value` (replacing an older one), fetched now. Evicts the
  // least recently used entries to stay within the caps. When the arena
  // itself has no room (values in flight hold it, or it is free only in
  // pieces), evicts only the entries whose memory makes room for this one,
  // and none if evicting cannot: an error then, the cache as it was (less
  // the older value of `key`).
  [[nodiscard]] Result<void> put(const std::string& key, std::span<const char> value, const Meta& meta);

  // When the value of `key` was fetched and how long it stays fresh, without
  // counting a lookup or touching the LRU order (prediction asks whether a
  // fetch ahead is needed); nullopt when none is held.
  struct Held {
    MonoTime fetched_at;
    Duration ttl;
    MonoTime fresh_until() const noexcept { return fetched_at + ttl; }
  };
  std::optional<Held> held(const std::string& key) const;

  // Forgets (and wipes) one entry; false if there was none.
  bool invalidate(const std::string& key);
  void clear();
  // Wipes every entry past its fallback window (they can never be served).
  std::size_t sweep();

  // The TTL of a value of `category` ("" for none).
  Duration ttl_for(const std::string& category) const;
  const Options& options() const noexcept { return options_; }

  void set_mode(Mode m) noexcept { mode_ = m; }
  Mode mode() const noexcept { return mode_; }
  void set_options(Options o);  // a reload; entries keep their fetch time

  struct Stats {
    std::size_t entries = 0;
    std::size_t locked_bytes = 0;
    std::size_t max_locked_bytes = 0;
    std::uint64_t hits = 0;
    std::uint64_t stale_hits = 0;
    std::uint64_t misses = 0;
    std::uint64_t evictions = 0;
  };
  Stats stats() const noexcept;

 private:
  struct Entry {
    std::string key;
    secure::Block sealed;
    std::size_t plaintext_size = 0;
    MonoTime fetched_at;
    WallTime fetched_wall;
    Duration ttl;
    std::string source;
  };
  using List = std::list<Entry>;

  [[nodiscard]] tl::expected<Served, Miss> serve(const std::string& key, bool allow_stale);
  void drop(List::iterator it);
  bool evict_one();
  // Evicts the entries whose blocks, released, give the arena room for `n`
  // bytes (the fewest bytes); false, evicting nothing, when no choice would.
  bool make_room(std::size_t n);

  secure::Arena& arena_;
  secure::Sealer& sealer_;
  const Clock& clock_;
  Options options_;
  Mode mode_ = Mode::normal;
  List lru_;  // front: most recently used
  std::unordered_map<std::string, List::iterator> index_;
  std::size_t locked_ = 0;
  std::uint64_t hits_ = 0, stale_hits_ = 0, misses_ = 0, evictions_ = 0;
};

}  // namespace chitty::cache
