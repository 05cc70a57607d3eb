// The normal init of a new table (Init::normal), specified value by value so any writer reproduces it: value k
// of a layer's tensor (k = row·dim + j) is component k mod 2 of pair k/2 of a Box–Muller stream keyed by
// (seed, layer), times stddev, as float:
//   key = mix64(seed ^ mix64(layer + 0x5151)); a = mix64(key ^ mix64(2p)), b = mix64(key ^ mix64(2p + 1))
//   u1 = ((a >> 11) + 1)·2^−53 ∈ (0, 1], u2 = (b >> 11)·2^−53, r = sqrt(−2·log u1)      (double, glibc's log)
//   pair p = (float(r·cos(2π·u2)), float(r·sin(2π·u2)))                                  (glibc's cos, sin)
// normal_pair is that definition, written plainly (the reference). normal_values produces the same floats bit
// for bit, eight pairs at a time with AVX-512 where the build has it: the integer mixing is exact in any width;
// log, sin and cos come from glibc's vector library (libmvec, within 4 ulp of the true value where the scalar
// functions are within 1) and the square root from a Newton-refined estimate (~2^−50), so the double r·cos
// (r·sin) is known to ~2^−46 relative; a value whose float
// rounding that uncertainty (taken as 2^−40) could change, or whose cos, sin or log is near a zero (relative
// accuracy of any implementation is hardest there), is recomputed by normal_pair (about 1 pair in 400).
// Tests hold normal_values equal to normal_pair on millions of pairs and the table bytes to digests of the
// first, scalar writer.
#pragma once

#include <cstddef>
#include <cstdint>

namespace hashmem::store {

// splitmix64's output function: the counter-based source of the init.
std::uint64_t mix64(std::uint64_t z);

// The stream key of a layer.
std::uint64_t normal_key(std::uint64_t seed, std::int64_t layer_id);

// Pair p of the stream `key`: two N(0, 1) floats.
void normal_pair(std::uint64_t key, std::uint64_t p, float out[2]);

// Values first .. first + count − 1 of the stream `key`, each times `stddev`, into out.
void normal_values(std::uint64_t key, std::uint64_t first, std::size_t count, float stddev, float* out);

}  // namespace hashmem::store
