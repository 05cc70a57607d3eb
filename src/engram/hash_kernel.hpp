// The n-gram hashing kernels behind engram::hash_batch and StreamingHasher, laid out as ggml lays out its CPU
// kernels: flat functions over pointers and sizes, a scalar kernel (hash.cpp) that runs everywhere and an
// AVX-512 one (hash_avx512.cpp) beside it, chosen at compile time (the build's -march). Both compute, for
// positions [begin, end) of one sequence `row` (row[t−k] = pad for t−k < 0), out[(t−begin)·columns + c] =
// floor_mod(mix_n(t), prime[c]) + offset[c]; tests hold them equal bit for bit on random and edge-case inputs,
// and both equal hash_batch_reference.
#pragma once

#include <cstdint>
#include <vector>

#include "hashmem/engram.hpp"

namespace hashmem::engram {

// Primes from here up take the reciprocal paths (the double quotient estimate is within ±1, see hash.cpp).
inline constexpr std::int64_t kMinFastPrime = 1 << 13;
// Up to here every step of the all-double AVX-512 path is exact (hash_avx512.cpp): 2^29·p + 2^34 <= 2^52.
inline constexpr std::int64_t kMaxDoublePrime = (std::int64_t{1} << 23) - 32;
inline constexpr int kSplitBits = 34;  // mix = hi·2^34 + lo for the all-double path

// Per-layer constants in the form the kernels want.
struct HashKernel {
  int max_ngram = 0, heads = 0, columns = 0;
  std::int64_t pad = 0, compressed_vocab = 0;
  std::vector<std::uint64_t> multipliers;  // [max_ngram]
  std::vector<std::int64_t> primes;        // [columns]
  std::vector<double> inverses;            // [columns] 1/prime rounded to nearest
  std::vector<std::int64_t> offsets;       // [columns], zeros unless row ids are wanted
  bool fast = true;                        // every prime >= kMinFastPrime: the reciprocal paths are exact
  bool small_primes = true;                // every prime <= kMaxDoublePrime: the all-double path is exact
  std::vector<double> split_mod;           // [columns] 2^34 mod prime
  std::vector<double> inverses_up;         // [columns] the smallest double >= 1/prime

  // Throws Error for a layer index out of range.
  HashKernel(const Layout& layout, std::size_t layer_index, bool add_offsets);
};

// The portable kernel: integer arithmetic, the reciprocal estimate for primes >= kMinFastPrime.
void hash_positions_scalar(const HashKernel& k, const std::int64_t* row, std::int64_t begin, std::int64_t end,
                           std::int64_t* out);

#if defined(__AVX512F__) && defined(__AVX512DQ__)
inline constexpr bool kHaveAvx512Kernel = true;
#else
inline constexpr bool kHaveAvx512Kernel = false;
#endif

// The AVX-512 kernel. `non_negative`: every id of the row (and so every mix) is >= 0. `output_bytes`: the
// whole call's output (hash_batch's, across threads), from which stores bypass the cache when `out` is 64-byte
// aligned; 0 keeps them in cache. Returns false, having written nothing, when this build has no AVX-512 or the
// layer is one it does not cover (a prime below 2^13, max_ngram above 8).
bool hash_positions_avx512(const HashKernel& k, const std::int64_t* row, std::int64_t begin, std::int64_t end,
                           std::int64_t* out, bool non_negative, std::int64_t output_bytes);

}  // namespace hashmem::engram
