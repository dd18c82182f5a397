#include "chitty/upstream/credential_provider.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

#include "complete_later.hpp"

namespace chitty::upstream {
namespace {

FetchFailure failure(FetchError kind, std::string message) { return FetchFailure{kind, std::move(message)}; }

struct Fd {
  int fd = -1;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

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
  std::string path = *directory_ + "/" + name;
  Fd f;
  f.fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (f.fd < 0) {
    int e = errno;
    FetchError kind = (e == ENOENT || e == ENOTDIR) ? FetchError::not_found : FetchError::unavailable;
    return tl::unexpected(failure(kind, shown + ": " + std::strerror(e)));
  }
  struct stat st {};
  if (::fstat(f.fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    return tl::unexpected(failure(FetchError::unavailable, shown + ": not a regular file"));
  }
  if (st.st_size < 0 || static_cast<std::size_t>(st.st_size) >= secure::Arena::kMaxBlock) {
    return tl::unexpected(failure(FetchError::unavailable,
                                  shown + ": larger than the " + std::to_string(secure::Arena::kMaxBlock / 1024) +
                                      " KiB a value may have"));
  }
  // One byte more than the file claims: a file that grew is noticed, not cut.
  std::size_t want = static_cast<std::size_t>(st.st_size) + 1;
  secure::SecureBuffer out = secure::SecureBuffer::allocate(arena_, want);
  if (!out) return tl::unexpected(failure(FetchError::no_memory, "no locked memory for the value right now"));
  std::size_t got = 0;
  while (got < out.capacity()) {
    ssize_t n = ::read(f.fd, out.data() + got, out.capacity() - got);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return tl::unexpected(failure(FetchError::unavailable, shown + ": " + std::strerror(errno)));
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  if (got == out.capacity()) {
    return tl::unexpected(failure(FetchError::unavailable, shown + ": changed while it was read"));
  }
  if (got > 0 && out.data()[got - 1] == '\n') --got;
  out.resize(got);
  return out;
}

void CredentialProvider::fetch(const FetchRequest& request, FetchDone done) {
  const auto& entry = request.entry;
  FetchResult r = entry && !entry->systemd_credential.empty()
                      ? read(entry->systemd_credential)
                      : tl::unexpected(failure(FetchError::not_found, "no systemd credential is configured"));
  complete_later(tasks_, std::move(done), std::move(r));
}

}  // namespace chitty::upstream
