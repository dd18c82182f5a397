// systemd credentials as a source: the file $CREDENTIALS_DIRECTORY/<name>
// that LoadCredential=/SetCredential= (or LoadCredentialEncrypted=) gave the
// unit. Read on each fetch straight into the locked arena; one trailing
// newline is dropped (a value written with `echo`), nothing else.
//
// Thread: loop thread only.
#pragma once

#include <optional>
#include <string>

#include "chitty/loop/task_queue.hpp"
#include "chitty/secure/arena.hpp"
#include "chitty/upstream/provider.hpp"

namespace chitty::upstream {

class CredentialProvider final : public Provider {
 public:
  // `directory`: $CREDENTIALS_DIRECTORY as the process was started with it
  // (nullopt when systemd passed none).
  CredentialProvider(secure::Arena& arena, loop::TaskQueue& tasks, std::optional<std::string> directory);

  // The directory from the environment ($CREDENTIALS_DIRECTORY), if set.
  static std::optional<std::string> directory_from_environment();

  std::string_view source() const noexcept override { return "systemd-credential"; }
  bool holds(const catalog::Entry* entry) const noexcept override {
    return entry != nullptr && !entry->systemd_credential.empty();
  }
  void fetch(const FetchRequest& request, FetchDone done) override;

  const std::optional<std::string>& directory() const noexcept { return directory_; }
  // Reads one credential now (what fetch() does before it completes).
  FetchResult read(const std::string& name) const;

 private:
  secure::Arena& arena_;
  loop::TaskQueue& tasks_;
  std::optional<std::string> directory_;
};

}  // namespace chitty::upstream
