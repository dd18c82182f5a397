#include "chitty/upstream/credential_provider.hpp"

#include <cerrno>
#include <cstdlib>

#include "chitty/base/file.hpp"
#include "chitty/secure/secret_file.hpp"
#include "complete_later.hpp"

namespace chitty::upstream {
namespace {

FetchFailure failure(FetchError kind, std::string message) { return FetchFailure{kind, std::move(message)}; }

}  // namespace

CredentialProvider::CredentialProvider(secure::Arena& arena, loop::TaskQueue& tasks,
                                       std::optional<std::string> directory)
    : arena_(arena), tasks_(tasks), directory_(std::move(directory)) {}

std::optional<std::string> CredentialProvider::directory_from_environment() {
  const char* d = std::getenv("CREDENTIALS_DIRECTORY");
  if (d == nullptr || *d == '\0') return std::nullopt;
  return std::string(d);
}

FetchResult CredentialProvider::read(const std::string& name) const {
  const std::string shown = "systemd credential \"" + name + "\"";
  if (!directory_) {
    return tl::unexpected(failure(FetchError::not_found, shown + ": no $CREDENTIALS_DIRECTORY (the unit has no LoadCredential=)"));
  }
  // The config allows only plain names; refuse anything else here too.
  if (name.empty() || name.find('/') != std::string::npos || name == "." || name == "..") {
    return tl::unexpected(failure(FetchError::not_found, shown + ": not a credential name"));
  }
  // One byte below the arena's largest block: the value's block holds the
  // file's size + 1, so a file that grew is noticed, not cut.
  auto out = secure::read_secret_file(arena_, *directory_ + "/" + name,
                                      FileRules{.max_bytes = secure::Arena::kMaxBlock - 1});
  if (!out) {
    const FileFailure& f = out.error();
    switch (f.kind) {
      case FileFailure::Kind::no_room:
        return tl::unexpected(failure(FetchError::no_memory, "no locked memory for the value right now"));
      case FileFailure::Kind::too_large:
        return tl::unexpected(failure(FetchError::unavailable,
                                      shown + ": larger than the " + std::to_string(secure::Arena::kMaxBlock / 1024) +
                                          " KiB a value may have"));
      case FileFailure::Kind::open:
        if (f.error == ENOENT || f.error == ENOTDIR) {
          return tl::unexpected(failure(FetchError::not_found, shown + ": " + f.reason()));
        }
        break;
      default: break;
    }
    return tl::unexpected(failure(FetchError::unavailable, shown + ": " + f.reason()));
  }
  if (out->size() > 0 && out->data()[out->size() - 1] == '\n') out->truncate(out->size() - 1);
  return std::move(*out);
}

void CredentialProvider::fetch(const FetchRequest& request, FetchDone done) {
  const auto& entry = request.entry;
  FetchResult r = entry && !entry->systemd_credential.empty()
                      ? read(entry->systemd_credential)
                      : tl::unexpected(failure(FetchError::not_found, "no systemd credential is configured"));
  complete_later(tasks_, std::move(done), std::move(r));
}

}  // namespace chitty::upstream
