// Emergency revocations on disk: <state_dir>/revocations.json, written
// atomically (a temporary file, fsync, rename, fsync of the directory)
// before a revocation is acknowledged, read at start. The file carries an
// HMAC-SHA-256 under the audit chain key, so it cannot be edited, replaced
// or emptied without the key. A file that cannot be read, does not parse,
// or whose MAC does not match stops the agent from starting (fail closed):
// it would otherwise lift revocations silently. So does a missing file when
// one is expected (the agent has run with this state directory before).
// Each save has a generation, which start and revoke audit events record:
// an older sealed copy put back (a rollback) is refused too. The operator's
// way out is `chitty-agent --accept-revocations`, which re-seals the file as
// it is (or an empty one) and says so in the audit trail
// (docs/operations.md).
#pragma once

#include <cstdint>
#include <optional>
#include <memory>
#include <string>

#include "chitty/audit/trail.hpp"
#include "chitty/base/result.hpp"
#include "chitty/broker/broker.hpp"
#include "chitty/policy/revocations.hpp"
#include "chitty/secure/mac_key.hpp"

namespace chitty::app {

class RevocationStore {
 public:
  // `key` must outlive the store.
  RevocationStore(std::string state_dir, const secure::MacKey& key);

  // What load() found.
  struct Loaded {
    policy::Revocations revocations;
    bool existed = false;   // the file was there
    bool accepted = false;  // --accept-revocations re-sealed it (the MAC was not checked)
    std::uint64_t generation = 0;  // of the file read (0: none)
  };
  // The revocations in force. `recorded`: the newest generation the audit
  // trail records (start and revoke events; nullopt when it records none):
  // the file must then exist, with at least that generation — an older
  // sealed copy put back is a rollback. `accept`: the operator's
  // --accept-revocations — the MAC and the generation are not checked (the
  // file must still parse; a version 1 file of an earlier agent is taken
  // over), a missing file is an empty set, and the result is saved again,
  // sealed, with a generation past `recorded`.
  [[nodiscard]] Result<Loaded> load(std::optional<std::uint64_t> recorded, bool accept);
  // Writes `r` sealed, with the next generation; returns it.
  [[nodiscard]] Result<std::uint64_t> save(const policy::Revocations& r);
  std::uint64_t generation() const noexcept { return generation_; }
  const std::string& path() const noexcept { return path_; }

 private:
  [[nodiscard]] Result<policy::Revocations> parse(const std::string& text, std::uint64_t& generation) const;
  std::string dir_;
  std::string path_;
  const secure::MacKey& key_;
  std::uint64_t generation_ = 0;  // of the file on disk
};

// Opens the store in `state_dir`, loads the revocations in force (against
// the generation the audit trail records), puts them into `broker`, and from
// then on saves what the broker learns (each save recorded in the trail as
// a revoke-resolved event). `accept`: --accept-revocations (an alert says
// so). Errors: why the agent must not start.
[[nodiscard]] Result<std::unique_ptr<RevocationStore>> open_revocations(const std::string& state_dir, audit::Trail& trail,
                                                          broker::Broker& broker, bool accept);

}  // namespace chitty::app
