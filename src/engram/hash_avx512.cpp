// The AVX-512 n-gram hashing kernels (hash_kernel.hpp says what they compute; the scalar kernel beside them is
// in hash.cpp). An order's mix is broadcast over its heads, so 8 columns (heads) are reduced per vector and the
// output [position, column] is written in order without transposes. Three kernels, fastest first:
//   hash_positions_double  heads % 8 == 0, primes in [2^13, 2^23 − 32], ids >= 0 (the demo's and the papers'
//                          layouts): double arithmetic only, every step exact, no correction;
//   hash_positions_integer heads % 8 == 0, primes >= 2^13: a reciprocal quotient estimate and one integer
//                          correction each way (any sign of id);
//   hash_positions_masked  any heads, primes >= 2^13: the integer kernel column group by column group with
//                          masked loads and stores.
// Layers with a prime below 2^13 stay on the scalar kernel.
#include "engram/hash_kernel.hpp"

#if defined(__AVX512F__) && defined(__AVX512DQ__)
#include <immintrin.h>

namespace hashmem::engram {
namespace {

// Output bytes per call from which stores bypass the cache (measured: on this VM plain stores win up to 16 MiB,
// where the output still fits the last-level cache, and lose 3x beyond it, where every line is read for
// ownership from DRAM first).
constexpr std::int64_t kStreamBytes = std::int64_t{16} << 20;

// The window of position t: window[j] = x[t−j], the pad before the sequence starts.
inline void load_window(const HashKernel& k, const std::int64_t* row, std::int64_t t, std::int64_t* window) {
  for (int j = 0; j < k.max_ngram; ++j) window[j] = t - j >= 0 ? row[t - j] : k.pad;
}

// mix_n of one position for n = 2..max_ngram into mixes[n−2].
inline void one_position_mixes(const HashKernel& k, const std::int64_t* row, std::int64_t t, std::uint64_t* mixes) {
  std::int64_t window[8];
  load_window(k, row, t, window);
  std::uint64_t mix = static_cast<std::uint64_t>(window[0]) * k.multipliers[0];
  for (int n = 1; n < k.max_ngram; ++n) {
    mix ^= static_cast<std::uint64_t>(window[n]) * k.multipliers[static_cast<std::size_t>(n)];
    mixes[n - 1] = mix;
  }
}

// Mixes of positions t..t+7 (all with full windows), eight lanes per order: mixes[n−2] = mix_n.
inline void eight_position_mixes(const HashKernel& k, const std::int64_t* row, std::int64_t t, __m512i* mixes) {
  const std::uint64_t* m = k.multipliers.data();
  __m512i mix = _mm512_mullo_epi64(_mm512_loadu_si512(row + t), _mm512_set1_epi64(static_cast<std::int64_t>(m[0])));
  for (int n = 1; n < k.max_ngram; ++n) {
    const __m512i x = _mm512_loadu_si512(row + t - n);
    mix = _mm512_xor_si512(mix, _mm512_mullo_epi64(x, _mm512_set1_epi64(static_cast<std::int64_t>(m[n]))));
    mixes[n - 1] = mix;
  }
}

// Lanes of x mod p + offset by the reciprocal estimate q = floor(x · (1/p)), within ±1 of the true quotient for
// p >= 2^13, and one correction each way. The conversion rounds toward −inf itself (floor and convert in one).
inline __m512i fast_floor_mod8(__m512i x, __m512i p, __m512d inverse, __m512i offset) {
  const __m512i q = _mm512_cvt_roundpd_epi64(_mm512_mul_pd(_mm512_cvtepi64_pd(x), inverse),
                                             _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  __m512i r = _mm512_sub_epi64(x, _mm512_mullo_epi64(q, p));
  r = _mm512_mask_add_epi64(r, _mm512_cmplt_epi64_mask(r, _mm512_setzero_si512()), r, p);
  r = _mm512_mask_sub_epi64(r, _mm512_cmpge_epi64_mask(r, p), r, p);
  return _mm512_add_epi64(r, offset);
}

template <bool Stream>
inline void store8(std::int64_t* out, __m512i v) {
  if constexpr (Stream) {
    _mm512_stream_si512(reinterpret_cast<__m512i*>(out), v);
  } else {
    _mm512_storeu_si512(out, v);
  }
}

// Heads a multiple of 8: V = columns/8 <= 6 vectors, each of one order, constants held in registers; mixes
// come eight positions at a time. Positions whose window reaches before the sequence start and the tail go one
// at a time.
template <int V>
void hash_positions_integer(const HashKernel& k, const std::int64_t* row, std::int64_t begin, std::int64_t end,
                            std::int64_t* out) {
  __m512i p[V], off[V];
  __m512d inv[V];
  int order[V];
  for (int v = 0; v < V; ++v) {
    p[v] = _mm512_loadu_si512(k.primes.data() + 8 * v);
    inv[v] = _mm512_loadu_pd(k.inverses.data() + 8 * v);
    off[v] = _mm512_loadu_si512(k.offsets.data() + 8 * v);
    order[v] = 8 * v / k.heads;
  }
  alignas(64) std::uint64_t mixes[8][8];  // [order][position in block]
  auto emit = [&](int i) {
    for (int v = 0; v < V; ++v) {
      const __m512i x = _mm512_set1_epi64(static_cast<std::int64_t>(mixes[order[v]][i]));
      _mm512_storeu_si512(out + 8 * v, fast_floor_mod8(x, p[v], inv[v], off[v]));
    }
    out += 8 * V;
  };
  std::uint64_t one[8];
  auto single = [&](std::int64_t t) {
    one_position_mixes(k, row, t, one);
    for (int n = 0; n + 1 < k.max_ngram; ++n) mixes[n][0] = one[n];
    emit(0);
  };
  std::int64_t t = begin;
  for (; t < end && t < k.max_ngram - 1; ++t) single(t);
  for (; t + 8 <= end; t += 8) {
    __m512i block[7];
    eight_position_mixes(k, row, t, block);
    for (int n = 0; n + 1 < k.max_ngram; ++n) _mm512_store_si512(mixes[n], block[n]);
    for (int i = 0; i < 8; ++i) emit(i);
  }
  for (; t < end; ++t) single(t);
}

// The all-double kernel, for primes in [2^13, 2^23 − 32] and non-negative ids (so 0 <= mix < 2^63):
//   mix = hi·2^34 + lo with hi < 2^29, lo < 2^34 (both exact doubles), c = 2^34 mod p, so
//   y = hi·c + lo ≡ mix (mod p) and y < 2^29·p + 2^34 <= 2^52: one FMA gives y exactly.
//   With u = the smallest double >= 1/p (u <= (1/p)(1 + 2^−52)) and y = k·p + r, the exact product y·u lies in
//   [k + r/p, k + r/p + y·2^−52/p) ⊂ [k, k + 1) since y·2^−52 < 1 <= p − r. So an FMA rounding y·u + 2^52
//   down yields t = 2^52 + k exactly (doubles in [2^52, 2^53) are the integers).
//   With W = 2^52·(p + 1) (exact: p + 1 <= 2^23), W − t·p = 2^52 − k·p is an integer in (0, 2^52] (k·p <= y),
//   so the FMA that computes it rounds nothing; adding y gives 2^52 + r, again exactly.
//   The result leaves the double domain by the same trick: bits(2^52 + r) = 0x4330000000000000 + r.
// Five instructions per 8 columns (FMA, FMA, FMA, add, integer subtract), all on either vector port; the
// integer kernel needs two corrections and three port-0 uops for vpmullq alone.
template <int V, bool Stream>
void hash_positions_double(const HashKernel& k, const std::int64_t* row, std::int64_t begin, std::int64_t end,
                           std::int64_t* out) {
  constexpr double kTwo52 = 4503599627370496.0;
  constexpr std::int64_t kTwo52Bits = 0x4330000000000000;
  constexpr std::uint64_t kLowMask = (std::uint64_t{1} << kSplitBits) - 1;
  const __m512d two52 = _mm512_set1_pd(kTwo52);
  __m512d c[V], p[V], inv[V], w[V];
  __m512i bias[V];
  int order[V];
  for (int v = 0; v < V; ++v) {
    c[v] = _mm512_loadu_pd(k.split_mod.data() + 8 * v);
    p[v] = _mm512_cvtepi64_pd(_mm512_loadu_si512(k.primes.data() + 8 * v));
    inv[v] = _mm512_loadu_pd(k.inverses_up.data() + 8 * v);
    w[v] = _mm512_mul_pd(_mm512_add_pd(p[v], _mm512_set1_pd(1.0)), two52);
    bias[v] = _mm512_sub_epi64(_mm512_set1_epi64(kTwo52Bits), _mm512_loadu_si512(k.offsets.data() + 8 * v));
    order[v] = 8 * v / k.heads;
  }
  alignas(64) double his[8][8], los[8][8];  // [order][position in block]: the two parts of each mix
  auto emit = [&](int i) {
    for (int v = 0; v < V; ++v) {
      const __m512d y = _mm512_fmadd_pd(_mm512_set1_pd(his[order[v]][i]), c[v], _mm512_set1_pd(los[order[v]][i]));
      const __m512d t = _mm512_fmadd_round_pd(y, inv[v], two52, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
      const __m512d shifted = _mm512_add_pd(_mm512_fnmadd_pd(t, p[v], w[v]), y);
      store8<Stream>(out + 8 * v, _mm512_sub_epi64(_mm512_castpd_si512(shifted), bias[v]));
    }
    out += 8 * V;
  };
  std::uint64_t one[8];
  auto single = [&](std::int64_t t) {
    one_position_mixes(k, row, t, one);
    for (int n = 0; n + 1 < k.max_ngram; ++n) {
      his[n][0] = static_cast<double>(one[n] >> kSplitBits);
      los[n][0] = static_cast<double>(one[n] & kLowMask);
    }
    emit(0);
  };
  std::int64_t t = begin;
  for (; t < end && t < k.max_ngram - 1; ++t) single(t);
  const __m512i low_mask = _mm512_set1_epi64(static_cast<std::int64_t>(kLowMask));
  for (; t + 8 <= end; t += 8) {
    __m512i block[7];
    eight_position_mixes(k, row, t, block);
    for (int n = 0; n + 1 < k.max_ngram; ++n) {  // (maskz_: GCC 12 warns about srli_epi64's undefined source)
      _mm512_store_pd(his[n], _mm512_cvtepi64_pd(_mm512_maskz_srli_epi64(0xff, block[n], kSplitBits)));
      _mm512_store_pd(los[n], _mm512_cvtepi64_pd(_mm512_and_si512(block[n], low_mask)));
    }
    for (int i = 0; i < 8; ++i) emit(i);
  }
  for (; t < end; ++t) single(t);
  if constexpr (Stream) _mm_sfence();
}

// Any number of heads: each order's columns in groups of 8, the last group masked (masked-off lanes see p = 0
// and inverse = 0: harmless, and never stored).
void hash_positions_masked(const HashKernel& k, const std::int64_t* row, std::int64_t begin, std::int64_t end,
                           std::int64_t* out) {
  std::uint64_t mixes[8];
  for (std::int64_t t = begin; t < end; ++t, out += k.columns) {
    one_position_mixes(k, row, t, mixes);
    for (int n = 0; n + 1 < k.max_ngram; ++n) {
      const __m512i x = _mm512_set1_epi64(static_cast<std::int64_t>(mixes[n]));
      for (int j = 0; j < k.heads; j += 8) {
        const int c = n * k.heads + j;
        const __mmask8 lanes = k.heads - j >= 8 ? 0xff : static_cast<__mmask8>((1u << (k.heads - j)) - 1);
        const __m512i p = _mm512_maskz_loadu_epi64(lanes, k.primes.data() + c);
        const __m512d inv = _mm512_maskz_loadu_pd(lanes, k.inverses.data() + c);
        const __m512i off = _mm512_maskz_loadu_epi64(lanes, k.offsets.data() + c);
        _mm512_mask_storeu_epi64(out + c, lanes, fast_floor_mod8(x, p, inv, off));
      }
    }
  }
}

template <bool Stream>
bool dispatch_double(const HashKernel& k, const std::int64_t* row, std::int64_t begin, std::int64_t end,
                     std::int64_t* out) {
  switch (k.columns / 8) {
    case 1: hash_positions_double<1, Stream>(k, row, begin, end, out); return true;
    case 2: hash_positions_double<2, Stream>(k, row, begin, end, out); return true;
    case 3: hash_positions_double<3, Stream>(k, row, begin, end, out); return true;
    case 4: hash_positions_double<4, Stream>(k, row, begin, end, out); return true;
    case 5: hash_positions_double<5, Stream>(k, row, begin, end, out); return true;
    case 6: hash_positions_double<6, Stream>(k, row, begin, end, out); return true;
    default: return false;
  }
}

bool dispatch_integer(const HashKernel& k, const std::int64_t* row, std::int64_t begin, std::int64_t end,
                      std::int64_t* out) {
  switch (k.columns / 8) {
    case 1: hash_positions_integer<1>(k, row, begin, end, out); return true;
    case 2: hash_positions_integer<2>(k, row, begin, end, out); return true;
    case 3: hash_positions_integer<3>(k, row, begin, end, out); return true;
    case 4: hash_positions_integer<4>(k, row, begin, end, out); return true;
    case 5: hash_positions_integer<5>(k, row, begin, end, out); return true;
    case 6: hash_positions_integer<6>(k, row, begin, end, out); return true;
    default: return false;
  }
}

}  // namespace

bool hash_positions_avx512(const HashKernel& k, const std::int64_t* row, std::int64_t begin, std::int64_t end,
                           std::int64_t* out, bool non_negative, std::int64_t output_bytes) {
  if (!k.fast || k.max_ngram > 8) return false;
  if (k.heads % 8 == 0) {
    if (k.small_primes && non_negative && k.pad >= 0) {
      const bool stream = reinterpret_cast<std::uintptr_t>(out) % 64 == 0 && output_bytes > kStreamBytes;
      if (stream ? dispatch_double<true>(k, row, begin, end, out) : dispatch_double<false>(k, row, begin, end, out)) {
        return true;
      }
    }
    if (dispatch_integer(k, row, begin, end, out)) return true;
  }
  hash_positions_masked(k, row, begin, end, out);
  return true;
}

}  // namespace hashmem::engram

#else  // no AVX-512 in this build: the scalar kernel does everything

namespace hashmem::engram {

bool hash_positions_avx512(const HashKernel&, const std::int64_t*, std::int64_t, std::int64_t, std::int64_t*, bool,
                           std::int64_t) {
  return false;
}

}  // namespace hashmem::engram

#endif
