#include "chitty/cache/cache.hpp"

#include <cstring>

namespace chitty::cache {

Options options_from(const config::CacheConfig& c) {
  Options o;
  o.ttl = c.ttl;
  o.fallback_window = c.fallback_window;
  o.max_entries = c.max_entries;
  o.max_locked_bytes = c.max_locked_bytes;
  for (const auto& cat : c.categories) o.category_ttl.emplace_back(cat.name, cat.ttl);
  return o;
}

std::string_view mode_name(Mode m) noexcept { return m == Mode::normal ? "normal" : "fallback"; }
std::string_view freshness_name(Freshness f) noexcept { return f == Freshness::fresh ? "fresh" : "stale"; }

std::string_view miss_name(Miss m) noexcept {
  switch (m) {
    case Miss::absent: return "absent";
    case Miss::expired: return "expired";
    case Miss::too_old: return "too_old";
    case Miss::no_memory: return "no_memory";
  }
  return "absent";
}

Cache::Cache(secure::Arena& arena, secure::Sealer& sealer, const Clock& clock, Options options)
    : arena_(arena), sealer_(sealer), clock_(clock), options_(std::move(options)) {}

Cache::~Cache() { clear(); }

Duration Cache::ttl_for(const std::string& category) const {
  for (const auto& [name, ttl] : options_.category_ttl) {
    if (name == category) return ttl;
  }
  return options_.ttl;
}

void Cache::drop(List::iterator it) {
  arena_.release(it->sealed);  // wiped
  locked_ -= it->sealed.size;
  index_.erase(it->key);
  lru_.erase(it);
}

bool Cache::evict_one() {
  if (lru_.empty()) return false;
  drop(std::prev(lru_.end()));
  ++evictions_;
  return true;
}

bool Cache::make_room(std::size_t n) {
  std::vector<secure::Block> blocks;
  std::vector<List::iterator> owners;
  blocks.reserve(lru_.size());
  owners.reserve(lru_.size());
  for (auto it = lru_.begin(); it != lru_.end(); ++it) {
    blocks.push_back(it->sealed);
    owners.push_back(it);
  }
  auto plan = arena_.room_for(n, blocks);
  if (!plan) return false;
  for (std::size_t i : *plan) {
    drop(owners[i]);
    ++evictions_;
  }
  return true;
}

tl::expected<Served, Miss> Cache::serve(const std::string& key, bool allow_stale) {
  auto found = index_.find(key);
  if (found == index_.end()) {
    ++misses_;
    return tl::unexpected(Miss::absent);
  }
  auto it = found->second;
  MonoTime now = clock_.now();
  Duration age = now - it->fetched_at;
  if (age >= options_.fallback_window) {
    // Past the window nothing may serve it, so it should not be kept either.
    drop(it);
    ++misses_;
    return tl::unexpected(Miss::too_old);
  }
  Freshness freshness = age < it->ttl ? Freshness::fresh : Freshness::stale;
  if (freshness == Freshness::stale && !allow_stale) {
    ++misses_;
    return tl::unexpected(Miss::expired);
  }
  secure::SecureBuffer value = secure::SecureBuffer::allocate(arena_, it->plaintext_size);
  if (!value) return tl::unexpected(Miss::no_memory);
  if (!sealer_.open(std::span<const std::byte>(it->sealed.data, sealer_.sealed_size(it->plaintext_size)), key,
                    reinterpret_cast<std::byte*>(value.data()))) {
    // Cannot happen short of memory corruption: forget the entry rather than
    // serve anything.
    drop(it);
    ++misses_;
    return tl::unexpected(Miss::absent);
  }
  if (!value.resize(it->plaintext_size)) return tl::unexpected(Miss::no_memory);  // (allocated to fit)
  lru_.splice(lru_.begin(), lru_, it);  // most recently used
  if (freshness == Freshness::fresh) {
    ++hits_;
  } else {
    ++stale_hits_;
  }
  Served s{std::move(value), freshness, it->source, it->fetched_wall,
           it->fetched_wall + std::chrono::duration_cast<Duration>(it->ttl), age};
  return s;
}

tl::expected<Served, Miss> Cache::get(const std::string& key) { return serve(key, mode_ == Mode::fallback); }

std::optional<Cache::Held> Cache::held(const std::string& key) const {
  auto found = index_.find(key);
  if (found == index_.end()) return std::nullopt;
  return Held{found->second->fetched_at, found->second->ttl};
}

tl::expected<Served, Miss> Cache::get_stale(const std::string& key) { return serve(key, true); }

Result<void> Cache::put(const std::string& key, std::span<const char> value, const Meta& meta) {
  std::size_t sealed_size = sealer_.sealed_size(value.size());
  if (sealed_size > secure::Arena::kMaxBlock) {
    return fail("the value is larger than a cached secret may be (" + std::to_string(value.size()) + " bytes)");
  }
  // The block's size is what counts against max_locked_bytes.
  const std::size_t block_size = secure::Arena::block_size(sealed_size);
  if (block_size > options_.max_locked_bytes) return fail("the value does not fit in cache.max_locked_bytes");
  invalidate(key);
  // The caps: the least recently used entries make way, each eviction
  // bringing the cache closer to them, and no further than they need.
  while (!lru_.empty() && index_.size() + 1 > options_.max_entries) evict_one();
  while (!lru_.empty() && locked_ + block_size > options_.max_locked_bytes) evict_one();
  secure::Block block = arena_.allocate(sealed_size, secure::Lifetime::lasting);
  if (!block) {
    // The arena, not the caps: its memory is held by values in flight, or
    // free only in pieces smaller than this. Evicting in LRU order would
    // free memory that may never join into one piece (and a burst of
    // answers would empty the cache): evict exactly the entries whose
    // memory, with the free spans around it, makes room — or none.
    if (!make_room(sealed_size)) {
      return fail("no locked memory for the value right now (answers in flight hold it); not cached");
    }
    block = arena_.allocate(sealed_size, secure::Lifetime::lasting);
    if (!block) return fail("no locked memory for the value right now; not cached");
  }
  sealer_.seal(std::as_bytes(value), key, block.data);
  Entry e;
  e.key = key;
  e.sealed = block;
  e.plaintext_size = value.size();
  e.fetched_at = clock_.now();
  e.fetched_wall = clock_.wall_now();
  e.ttl = ttl_for(meta.category);
  e.source = meta.source;
  lru_.push_front(std::move(e));
  index_[key] = lru_.begin();
  locked_ += block.size;
  return {};
}

bool Cache::invalidate(const std::string& key) {
  auto it = index_.find(key);
  if (it == index_.end()) return false;
  drop(it->second);
  return true;
}

void Cache::clear() {
  while (!lru_.empty()) drop(lru_.begin());
}

std::size_t Cache::sweep() {
  MonoTime now = clock_.now();
  std::size_t n = 0;
  for (auto it = lru_.begin(); it != lru_.end();) {
    auto next = std::next(it);
    if (now - it->fetched_at >= options_.fallback_window) {
      drop(it);
      ++n;
    }
    it = next;
  }
  return n;
}

void Cache::set_options(Options o) {
  options_ = std::move(o);
  while (index_.size() > options_.max_entries && evict_one()) {
  }
  while (locked_ > options_.max_locked_bytes && evict_one()) {
  }
}

Cache::Stats Cache::stats() const noexcept {
  return Stats{index_.size(), locked_, options_.max_locked_bytes, hits_, stale_hits_, misses_, evictions_};
}

}  // namespace chitty::cache
