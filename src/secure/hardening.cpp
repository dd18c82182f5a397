#include "chitty/secure/hardening.hpp"

#include <sys/prctl.h>
#include <sys/resource.h>

#include <cerrno>
#include <cstring>
#include <string>

#include <sodium.h>

namespace chitty::secure {

[[nodiscard]] Result<void> harden_process() {
  if (sodium_init() < 0) return fail("libsodium cannot be initialised");
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    return fail(std::string("cannot make the process non-dumpable: ") + std::strerror(errno));
  }
  rlimit none{0, 0};
  if (setrlimit(RLIMIT_CORE, &none) != 0) {
    return fail(std::string("cannot disable core dumps: ") + std::strerror(errno));
  }
  return {};
}

Result<void> harden_client_process() {
  if (sodium_init() < 0) return fail("libsodium cannot be initialised");
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    return fail(std::string("cannot make the process non-dumpable: ") + std::strerror(errno));
  }
  return {};
}

bool process_non_dumpable() noexcept { return prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0; }

}  // namespace chitty::secure
