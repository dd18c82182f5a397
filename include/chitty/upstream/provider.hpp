// Where secret values come from. A Provider answers fetch() asynchronously:
// the completion runs later on the loop thread, exactly once, never inside
// fetch() itself. Values arrive in secure buffers, never in std::string.
//
// Providers now: environment variables imported at start (env_provider.hpp)
// and systemd credentials (credential_provider.hpp). The 1Password Connect
// provider joins them behind the same interface.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <tl/expected.hpp>

#include "chitty/catalog/catalog.hpp"
#include "chitty/secure/secure_buffer.hpp"

namespace chitty::upstream {

enum class FetchError {
  not_found,    // this source has no value for it (env variable unset, no credential file)
  denied,       // the source refused (401/403): the secret is out of scope
  unavailable,  // the source cannot answer now (unreachable, timeout, 5xx)
  no_memory,    // no locked memory to receive the value right now
};
std::string_view fetch_error_name(FetchError e) noexcept;

struct FetchFailure {
  FetchError kind;
  std::string message;  // for people; names sources, never values
};

using FetchResult = tl::expected<secure::SecureBuffer, FetchFailure>;
using FetchDone = std::function<void(FetchResult)>;

class Provider {
 public:
  virtual ~Provider() = default;
  // The `source` this provider's values carry: "env", "systemd-credential".
  virtual std::string_view source() const noexcept = 0;
  // Whether it makes sense to ask this provider for `entry` (the catalog
  // names a source of its kind). `entry` may be null: a reference outside
  // the catalog.
  virtual bool holds(const catalog::Entry* entry) const noexcept = 0;
  // Fetches the value of `entry`. `done` runs on the loop thread after
  // fetch() has returned.
  virtual void fetch(std::shared_ptr<const catalog::Entry> entry, FetchDone done) = 0;
};

}  // namespace chitty::upstream
