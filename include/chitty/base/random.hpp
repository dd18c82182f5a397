// Non-secret randomness from the kernel (getrandom): identifiers, jitter.
// Keys and nonces come from the secure module, never from here.
#pragma once

#include <cstdint>

namespace chitty {

// 64 random bits from getrandom(2). Aborts if the kernel cannot provide them
// (a broken invariant on any supported kernel).
std::uint64_t random_u64() noexcept;

}  // namespace chitty
