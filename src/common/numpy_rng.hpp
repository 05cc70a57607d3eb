// numpy's default_rng(seed).integers(low, high, size=n, dtype=int64), bit for bit:
// SeedSequence (pool of 4 × uint32, hashmix) → PCG64 (128-bit LCG, XSL-RR output) → bounded draws by
// Lemire's method: the 64-bit path when high−low−1 > 2^32−1, numpy's 32-bit path (PCG64's next_uint32, which
// hands out the low then the high half of one 64-bit output) otherwise. SPEC §2; executable reference
// ../shared/reference/numpy_default_rng.py (64-bit path). Not thread-safe; one generator per thread.
#pragma once

#include <cstdint>
#include <vector>

namespace hashmem {

class Pcg64 {
 public:
  // default_rng(seed) for a non-negative integer seed of up to 128 bits.
  explicit Pcg64(unsigned __int128 seed);

  std::uint64_t next64();
  std::uint32_t next32();  // numpy's buffered next_uint32

 private:
  unsigned __int128 state_ = 0, increment_ = 0;
  bool has_uint32_ = false;
  std::uint32_t uinteger_ = 0;
};

// default_rng(seed).integers(low, high, size=n, dtype=np.int64). REQUIRES: low < high.
std::vector<std::int64_t> numpy_integers(unsigned __int128 seed, std::int64_t low, std::int64_t high, std::size_t n);

}  // namespace hashmem
