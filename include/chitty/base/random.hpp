// Non-secret randomness from the kernel (getrandom): identifiers, jitter.
// Keys and nonces come from the secure module, never from here.
#pragma once

#include <cstdint>

namespace chitty {

// 64 random bits from getrandom(2). Aborts if the kernel cannot provide them
// (a broken invariant on any supported kernel).
std::uint64_t random_u64() noexcept;
// A number in [0, 1) from the kernel's randomness (jitter).
inline double random_unit() noexcept { return static_cast<double>(random_u64() >> 11) * 0x1.0p-53; }

}  // namespace chitty
