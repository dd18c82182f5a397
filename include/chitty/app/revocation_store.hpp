// Emergency revocations on disk: <state_dir>/revocations.json, written
// atomically (a temporary file, fsync, rename, fsync of the directory)
// before a revocation is acknowledged, read at start. The file carries an
// HMAC-SHA-256 under the audit chain key, so it cannot be edited, replaced
// or emptied without the key. A file that cannot be read, does not parse,
// or whose MAC does not match stops the agent from starting (fail closed):
// it would otherwise lift revocations silently. So does a missing file when
// one is expected (the agent has run with this state directory before).
// The operator's way out is `chitty-agent --accept-revocations`, which
// re-seals the file as it is (or an empty one) and says so in the audit
// trail (docs/operations.md).
#pragma once

#include <string>

#include "chitty/base/result.hpp"
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
  };
  // The revocations in force. `expected`: the file must exist (the agent
  // has run with this state directory before), so a missing one is an
  // error. `accept`: the operator's --accept-revocations — the MAC is not
  // checked (the file must still parse), a missing file is an empty set,
  // and the result is saved again, sealed.
  Result<Loaded> load(bool expected, bool accept) const;
  Result<void> save(const policy::Revocations& r) const;
  const std::string& path() const noexcept { return path_; }

 private:
  Result<policy::Revocations> parse(const std::string& text) const;
  std::string dir_;
  std::string path_;
  const secure::MacKey& key_;
};

}  // namespace chitty::app
