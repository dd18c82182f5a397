#include "chitty/base/random.hpp"

#include <sys/random.h>

#include <cerrno>
#include <cstdlib>

namespace chitty {

std::uint64_t random_u64() noexcept {
  std::uint64_t v = 0;
  auto* p = reinterpret_cast<unsigned char*>(&v);
  std::size_t got = 0;
  while (got < sizeof v) {
    ssize_t n = getrandom(p + got, sizeof v - got, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      std::abort();  // getrandom exists on every kernel we support (>= 3.17)
    }
    got += static_cast<std::size_t>(n);
  }
  return v;
}

}  // namespace chitty
