#include "chitty/secure/vault.hpp"

namespace chitty::secure {

Result<Vault> Vault::open(std::size_t capacity, bool allow_unlocked) {
  ArenaOptions o;
  o.capacity = capacity;
  o.allow_unlocked = allow_unlocked;
  auto arena = Arena::create(o);
  if (!arena) return tl::unexpected(arena.error());
  auto sealer = Sealer::create(**arena);
  if (!sealer) return tl::unexpected(sealer.error());
  return Vault{std::move(*arena), std::move(*sealer)};
}

}  // namespace chitty::secure
