// Where secret values come from. A Provider answers fetch() asynchronously:
// the completion runs later on the loop thread, exactly once, never inside
// fetch() itself. Values arrive in secure buffers, never in std::string.
//
// Providers: environment variables imported at start (env_provider.hpp),
// systemd credentials (credential_provider.hpp) and 1Password Connect
// (connect_provider.hpp).
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <tl/expected.hpp>

#include "chitty/catalog/catalog.hpp"
#include "chitty/catalog/reference.hpp"
#include "chitty/secure/secure_buffer.hpp"

namespace chitty::upstream {

enum class FetchError {
  not_found,     // this source has no such secret (env variable unset, no credential file, 404, ambiguous name)
  denied,        // the source refused on purpose (403: vault not in the token's scope)
  unauthorized,  // the source refused the agent's own credential (401): an alert, not an outage
  unavailable,   // the source cannot answer now (unreachable, timeout, 5xx, 429, malformed answer)
  rejected,      // the source answered this request with an error that is neither (400, 413, too large)
  no_memory,     // no locked memory to receive the value right now
};
std::string_view fetch_error_name(FetchError e) noexcept;

struct FetchFailure {
  FetchError kind;
  std::string message;  // for people; names sources, never values
};

using FetchResult = tl::expected<secure::SecureBuffer, FetchFailure>;

// What to fetch: the reference (always) and the catalog entry it resolved to
// (null for a reference outside the catalog).
struct FetchRequest {
  std::shared_ptr<const catalog::Entry> entry;
  catalog::Reference ref;
  bool refresh = false;  // the client forced a refresh: skip any negative cache
};
using FetchDone = std::function<void(FetchResult)>;

// A reference resolved by a source with IDs: the same secret as its
// all-IDs and all-names forms, carried as parts (never as text parsed
// again: a title may contain '/').
struct Resolution {
  catalog::Reference ids;    // every part a Connect ID, verbatim
  catalog::Reference names;  // every part a name (a label; the ID where there is none)
  std::string key;           // ids.id_key(): what the cache keys the secret on
};

class Provider {
 public:
  virtual ~Provider() = default;
  // The `source` this provider's values carry: "env", "systemd-credential".
  virtual std::string_view source() const noexcept = 0;
  // Whether it makes sense to ask this provider for `entry` (the catalog
  // names a source of its kind). `entry` may be null: a reference outside
  // the catalog.
  virtual bool holds(const catalog::Entry* entry) const noexcept = 0;
  // Fetches the value. `done` runs on the loop thread after fetch() has
  // returned.
  virtual void fetch(const FetchRequest& request, FetchDone done) = 0;

  // The key the cache, revocations and audit use for `ref` once this source
  // has resolved it (1Password: vault/item/section/field IDs verbatim, its
  // id_key(), so that a title, an ID and another spelling are one secret);
  // nullopt until then, or for sources without such IDs. `canonical` is the
  // reference's canonical() form. A resolution is kept for the source's
  // resolution TTL, and beyond it only while the source is unavailable (then
  // the cache's fallback window bounds what it can reach).
  virtual std::optional<std::string> resolved_key(std::string_view canonical) const {
    (void)canonical;
    return std::nullopt;
  }
  // Whether requests to it can succeed now (false while its circuit breaker
  // is open). Sources without availability tracking are always available.
  virtual bool available() const noexcept { return true; }

  // Whether this source can resolve a reference to its all-IDs and
  // all-names forms (for policy globs written on the other form than the
  // request, and for revocations that must cover every spelling).
  virtual bool resolves() const noexcept { return false; }
  // Resolves `request.ref`; may ask the upstream. `done` runs later on the
  // loop thread, never inside resolve(), with the resolution or why there is
  // none: `not_found` (it names nothing: unknown or ambiguous), `denied`
  // (out of the agent's token scope), `unavailable` (cannot be told now) and
  // the other FetchErrors. Only called when resolves() is true.
  using Resolved = tl::expected<Resolution, FetchError>;
  using ResolveDone = std::function<void(Resolved)>;
  virtual void resolve(const FetchRequest& request, ResolveDone done) {
    (void)request;
    done(tl::unexpected(FetchError::unavailable));
  }
  // The canonical() forms this source knows to resolve to `key` (an
  // id_key()): the spellings clients have used for that secret.
  virtual std::vector<std::string> aliases(std::string_view key) const {
    (void)key;
    return {};
  }
};

}  // namespace chitty::upstream
