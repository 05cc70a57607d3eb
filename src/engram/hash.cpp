// Engram n-gram hashing (SPEC §2). For position t of a sequence x (compressed ids, left-padded with pad_id):
//   mix_n = (x[t]·m0) ^ (x[t−1]·m1) ^ … ^ (x[t−n+1]·m_{n−1})      (int64, wrapping as numpy does)
//   hash[(n−2)·heads + j] = mix_n mod prime[n][j]                   (floor modulo, in [0, prime))
//
// The fast path computes 8 columns at a time with AVX-512 (an order's mix broadcast over its heads; when heads
// is a multiple of 8 the constants stay in registers and mixes come 8 positions at a time), with a scalar loop
// of the same arithmetic beside it for other CPUs. The modulo uses a precomputed reciprocal in double:
// q' = floor(mix · (1/p)) is within ±1 of the true quotient whenever p >= 2^13 (|mix| < 2^63, relative error
// of the conversion, reciprocal and product ≤ 3·2^−53, so the absolute error is < 3·2^−3), and one correction
// each way on r = mix − q'·p makes it exact. Layers with a smaller prime use the integer path.
// hash_batch_reference is the plain integer version beside it; tests hold the two equal.
#include <cmath>
#include <immintrin.h>

#include "common/parallel.hpp"
#include "hashmem/engram.hpp"
#include "hashmem/error.hpp"

namespace hashmem::engram {

constexpr std::int64_t kMinFastPrime = 1 << 13;
// Up to this every step of the all-double path is exact (see hash_positions_double): 2^29·p + 2^34 <= 2^52.
constexpr std::int64_t kMaxDoublePrime = (std::int64_t{1} << 23) - 32;
constexpr int kSplitBits = 34;  // mix = hi·2^34 + lo

// Per-layer constants in the form the kernel wants.
struct HashKernel {
  int max_ngram = 0, heads = 0, columns = 0;
  std::int64_t pad = 0, compressed_vocab = 0;
  std::vector<std::uint64_t> multipliers;  // [max_ngram]
  std::vector<std::int64_t> primes;        // [columns]
  std::vector<double> inverses;            // [columns]
  std::vector<std::int64_t> offsets;       // [columns], zeros unless row ids are wanted
  bool fast = true;           // every prime >= kMinFastPrime: the reciprocal path is exact
  bool small_primes = true;   // every prime <= kMaxDoublePrime: the all-double path is exact
  std::vector<double> split_mod;    // [columns] 2^34 mod prime
  std::vector<double> inverses_up;  // [columns] the smallest double >= 1/prime

  HashKernel(const Layout& layout, std::size_t layer_index, bool add_offsets) {
    if (layer_index >= layout.layers.size()) {
      throw Error("layer index " + std::to_string(layer_index) + " out of range (the layout has " +
                  std::to_string(layout.layers.size()) + " layers)");
    }
    const Config& c = layout.config;
    const LayerLayout& layer = layout.layers[layer_index];
    max_ngram = c.max_ngram;
    heads = c.heads;
    columns = c.columns();
    pad = c.pad_id;
    compressed_vocab = c.compressed_vocab;
    for (std::int64_t m : layer.multipliers) multipliers.push_back(static_cast<std::uint64_t>(m));
    for (const auto& per_order : layer.primes) {
      for (std::int64_t p : per_order) {
        primes.push_back(p);
        inverses.push_back(1.0 / static_cast<double>(p));
        fast &= p >= kMinFastPrime;
        small_primes &= p <= kMaxDoublePrime;
        split_mod.push_back(static_cast<double>((std::int64_t{1} << kSplitBits) % p));
        // 1/p rounded to nearest, moved up one ulp if it fell below (the FMA's sign of inv·p − 1 is exact).
        double inv = 1.0 / static_cast<double>(p);
        if (std::fma(inv, static_cast<double>(p), -1.0) < 0) inv = std::nextafter(inv, 2.0);
        inverses_up.push_back(inv);
      }
    }
    offsets.assign(static_cast<std::size_t>(columns), 0);
    if (add_offsets) offsets = layer.offsets;
  }
};

namespace {

using Kernel = HashKernel;

// Throws for an id >= compressed_vocab; returns whether every id is >= 0.
bool check_ids(const Kernel& k, const std::int64_t* ids, std::int64_t n) {
  std::int64_t max_id = -1, min_id = 0;
  for (std::int64_t i = 0; i < n; ++i) {
    max_id = std::max(max_id, ids[i]);
    min_id = std::min(min_id, ids[i]);
  }
  if (max_id < k.compressed_vocab) return min_id >= 0;
  for (std::int64_t i = 0; i < n; ++i) {
    if (ids[i] >= k.compressed_vocab) {
      throw Error("id " + std::to_string(ids[i]) + " at position " + std::to_string(i) +
                  " is not below compressed_vocab " + std::to_string(k.compressed_vocab));
    }
  }
  return min_id >= 0;
}

inline std::int64_t floor_mod_exact(std::int64_t x, std::int64_t p) {
  std::int64_t r = x % p;
  return r < 0 ? r + p : r;
}

// Mixes of one position: mixes[n-2] for n = 2..max_ngram. `window[k]` is x[t−k].
inline void position_mixes(const Kernel& k, const std::int64_t* window, std::int64_t* mixes) {
  std::uint64_t mix = static_cast<std::uint64_t>(window[0]) * k.multipliers[0];
  for (int n = 2; n <= k.max_ngram; ++n) {
    mix ^= static_cast<std::uint64_t>(window[n - 1]) * k.multipliers[static_cast<std::size_t>(n - 1)];
    mixes[n - 2] = static_cast<std::int64_t>(mix);
  }
}

// floor(x / p) as x − floor_mod(x, p) needs it: the reciprocal estimate, then one correction each way.
// (Unused where the AVX-512 kernel below replaces it; clang warns about an unused internal function, GCC does not.)
[[maybe_unused]] inline std::int64_t fast_floor_mod(std::int64_t x, std::int64_t p, double inverse) {
  const std::int64_t q = static_cast<std::int64_t>(std::floor(static_cast<double>(x) * inverse));
  std::int64_t r = static_cast<std::int64_t>(static_cast<std::uint64_t>(x) -
                                             static_cast<std::uint64_t>(q) * static_cast<std::uint64_t>(p));
  r += r < 0 ? p : 0;
  r -= r >= p ? p : 0;
  return r;
}

// The window of position t: window[j] = x[t−j], the pad before the sequence starts.
inline void load_window(const Kernel& k, const std::int64_t* row, std::int64_t t, std::int64_t* window) {
  const int n_max = k.max_ngram;
  if (t >= n_max - 1) {
    for (int j = 0; j < n_max; ++j) window[j] = row[t - j];
  } else {
    for (int j = 0; j < n_max; ++j) window[j] = t - j >= 0 ? row[t - j] : k.pad;
  }
}

#if defined(__AVX512F__) && defined(__AVX512DQ__)
#define HASHMEM_ENGRAM_AVX512 1
// The same on 8 lanes: x[i] mod p[i] + offset[i]. The conversion rounds toward −inf itself, so floor and
// convert are one instruction.
inline __m512i fast_floor_mod8(__m512i x, __m512i p, __m512d inverse, __m512i offset) {
  const __m512i q = _mm512_cvt_roundpd_epi64(_mm512_mul_pd(_mm512_cvtepi64_pd(x), inverse),
                                             _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
  __m512i r = _mm512_sub_epi64(x, _mm512_mullo_epi64(q, p));
  r = _mm512_mask_add_epi64(r, _mm512_cmplt_epi64_mask(r, _mm512_setzero_si512()), r, p);
  r = _mm512_mask_sub_epi64(r, _mm512_cmpge_epi64_mask(r, p), r, p);
  return _mm512_add_epi64(r, offset);
}

// The hot loop when every 8-column vector belongs to one order (heads a multiple of 8, so V = columns/8 <= 6
// vectors and at most 6 orders). Eight positions at a time: their mixes come from eight-wide multiplies of
// shifted loads of the row, then each position's V vectors reduce a broadcast of its order's mix, with the
// primes, reciprocals and offsets held in registers. Positions whose window reaches before the sequence start
// (t < max_ngram−1) and the tail go one at a time.
template <int V>
void hash_positions_avx512(const Kernel& k, const std::int64_t* row, std::int64_t begin, std::int64_t end,
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
  const int n_max = k.max_ngram;
  const std::uint64_t* m = k.multipliers.data();
  alignas(64) std::int64_t mixes[8][8];  // [order][position in block]
  auto emit = [&](int i) {
    for (int v = 0; v < V; ++v) {
      _mm512_storeu_si512(out + 8 * v, fast_floor_mod8(_mm512_set1_epi64(mixes[order[v]][i]), p[v], inv[v], off[v]));
    }
    out += 8 * V;
  };
  auto one = [&](std::int64_t t) {
    std::int64_t window[8];
    load_window(k, row, t, window);
    std::uint64_t mix = static_cast<std::uint64_t>(window[0]) * m[0];
    for (int n = 1; n < n_max; ++n) {
      mix ^= static_cast<std::uint64_t>(window[n]) * m[n];
      mixes[n - 1][0] = static_cast<std::int64_t>(mix);
    }
    emit(0);
  };
  std::int64_t t = begin;
  for (; t < end && t < n_max - 1; ++t) one(t);
  for (; t + 8 <= end; t += 8) {
    __m512i mix = _mm512_mullo_epi64(_mm512_loadu_si512(row + t), _mm512_set1_epi64(static_cast<std::int64_t>(m[0])));
    for (int n = 1; n < n_max; ++n) {
      const __m512i x = _mm512_loadu_si512(row + t - n);
      mix = _mm512_xor_si512(mix, _mm512_mullo_epi64(x, _mm512_set1_epi64(static_cast<std::int64_t>(m[n]))));
      _mm512_store_si512(mixes[n - 1], mix);
    }
    for (int i = 0; i < 8; ++i) emit(i);
  }
  for (; t < end; ++t) one(t);
}

// The hot loop for tables whose primes are all in [2^13, 2^23 − 32] (the demo's and the papers') and
// non-negative ids (so 0 <= mix < 2^63): double arithmetic only, every step exact, no correction:
//   mix = hi·2^34 + lo with hi < 2^29, lo < 2^34 (both exact doubles), c = 2^34 mod p, so
//   y = hi·c + lo ≡ mix (mod p) and y < 2^29·p + 2^34 <= 2^52: one FMA gives y exactly.
//   With u = the smallest double >= 1/p (u <= (1/p)(1 + 2^−52)) and y = k·p + r, the exact product y·u lies in
//   [k + r/p, k + r/p + y·2^−52/p) ⊂ [k, k + 1) since y·2^−52 < 1 <= p − r. So an FMA rounding y·u + 2^52
//   down yields 2^52 + k exactly (doubles in [2^52, 2^53) are the integers), and r = fma(−k, p, y) is exact.
//   The result leaves the double domain by the same trick: bits(r + 2^52) = 0x4330000000000000 + r.
// Six instructions per 8 columns, all on either vector port; the integer path needs two corrections and three
// port-0 uops for vpmullq alone. Tests hold it equal to the reference on random and edge-case inputs.
// Stream: `out` is 64-byte aligned and too big to stay in cache, so stores bypass it (no read for ownership).
template <int V, bool Stream>
void hash_positions_double(const Kernel& k, const std::int64_t* row, std::int64_t begin, std::int64_t end,
                           std::int64_t* out) {
  constexpr double kTwo52 = 4503599627370496.0;
  constexpr std::int64_t kTwo52Bits = 0x4330000000000000;
  constexpr std::uint64_t kLowMask = (std::uint64_t{1} << kSplitBits) - 1;
  const __m512d two52 = _mm512_set1_pd(kTwo52);
  __m512d c[V], p[V], inv[V];
  __m512i bias[V];
  int order[V];
  for (int v = 0; v < V; ++v) {
    c[v] = _mm512_loadu_pd(k.split_mod.data() + 8 * v);
    p[v] = _mm512_cvtepi64_pd(_mm512_loadu_si512(k.primes.data() + 8 * v));
    inv[v] = _mm512_loadu_pd(k.inverses_up.data() + 8 * v);
    bias[v] = _mm512_sub_epi64(_mm512_set1_epi64(kTwo52Bits), _mm512_loadu_si512(k.offsets.data() + 8 * v));
    order[v] = 8 * v / k.heads;
  }
  const int n_max = k.max_ngram;
  const std::uint64_t* m = k.multipliers.data();
  alignas(64) double his[8][8], los[8][8];  // [order][position in block]: the two parts of each mix
  auto emit = [&](int i) {
    for (int v = 0; v < V; ++v) {
      const __m512d y = _mm512_fmadd_pd(_mm512_set1_pd(his[order[v]][i]), c[v], _mm512_set1_pd(los[order[v]][i]));
      const __m512d q = _mm512_sub_pd(
          _mm512_fmadd_round_pd(y, inv[v], two52, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC), two52);
      const __m512d shifted = _mm512_add_pd(_mm512_fnmadd_pd(q, p[v], y), two52);
      const __m512i row_ids = _mm512_sub_epi64(_mm512_castpd_si512(shifted), bias[v]);
      if constexpr (Stream) {
        _mm512_stream_si512(reinterpret_cast<__m512i*>(out + 8 * v), row_ids);
      } else {
        _mm512_storeu_si512(out + 8 * v, row_ids);
      }
    }
    out += 8 * V;
  };
  auto one = [&](std::int64_t t) {
    std::int64_t window[8];
    load_window(k, row, t, window);
    std::uint64_t mix = static_cast<std::uint64_t>(window[0]) * m[0];
    for (int n = 1; n < n_max; ++n) {
      mix ^= static_cast<std::uint64_t>(window[n]) * m[n];
      his[n - 1][0] = static_cast<double>(mix >> kSplitBits);
      los[n - 1][0] = static_cast<double>(mix & kLowMask);
    }
    emit(0);
  };
  std::int64_t t = begin;
  for (; t < end && t < n_max - 1; ++t) one(t);
  const __m512i low_mask = _mm512_set1_epi64(static_cast<std::int64_t>(kLowMask));
  for (; t + 8 <= end; t += 8) {
    __m512i mix = _mm512_mullo_epi64(_mm512_loadu_si512(row + t), _mm512_set1_epi64(static_cast<std::int64_t>(m[0])));
    for (int n = 1; n < n_max; ++n) {
      const __m512i x = _mm512_loadu_si512(row + t - n);
      mix = _mm512_xor_si512(mix, _mm512_mullo_epi64(x, _mm512_set1_epi64(static_cast<std::int64_t>(m[n]))));
      _mm512_store_pd(his[n - 1], _mm512_cvtepi64_pd(_mm512_maskz_srli_epi64(0xff, mix, kSplitBits)));
      _mm512_store_pd(los[n - 1], _mm512_cvtepi64_pd(_mm512_and_si512(mix, low_mask)));
    }
    for (int i = 0; i < 8; ++i) emit(i);
  }
  for (; t < end; ++t) one(t);
  if constexpr (Stream) _mm_sfence();
}

template <bool Stream>
bool dispatch_double(const Kernel& k, const std::int64_t* row, std::int64_t begin, std::int64_t end,
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
#endif

// Columns of one position from its mixes: column c = (n−2)·heads + j takes mixes[n−2] mod primes[c].
inline void position_columns(const Kernel& k, const std::int64_t* mixes, std::int64_t* out) {
  const int heads = k.heads, columns = k.columns;
  const std::int64_t* primes = k.primes.data();
  const double* inverses = k.inverses.data();
  const std::int64_t* offsets = k.offsets.data();
  if (!k.fast) {
    for (int c = 0; c < columns; ++c) out[c] = floor_mod_exact(mixes[c / heads], primes[c]) + offsets[c];
    return;
  }
#ifdef HASHMEM_ENGRAM_AVX512
  for (int n = 0; n < k.max_ngram - 1; ++n) {
    const __m512i x = _mm512_set1_epi64(mixes[n]);
    for (int j = 0; j < heads; j += 8) {
      const int c = n * heads + j;
      const __mmask8 lanes = heads - j >= 8 ? 0xff : static_cast<__mmask8>((1u << (heads - j)) - 1);
      const __m512i p = _mm512_maskz_loadu_epi64(lanes, primes + c);
      const __m512d inv = _mm512_maskz_loadu_pd(lanes, inverses + c);
      const __m512i off = _mm512_maskz_loadu_epi64(lanes, offsets + c);
      // Masked-off lanes see p = 0 and inverse = 0: harmless, and never stored.
      _mm512_mask_storeu_epi64(out + c, lanes, fast_floor_mod8(x, p, inv, off));
    }
  }
#else
  for (int c = 0; c < columns; ++c) out[c] = fast_floor_mod(mixes[c / heads], primes[c], inverses[c]) + offsets[c];
#endif
}

// Hashes positions [begin, end) of one sequence `row` (x[t−k] = pad for t−k < 0) into out [end−begin, columns].
// `non_negative`: every id of the row is >= 0 (then 0 <= mix < 2^63, as validate() bounds the multipliers).
// `stream`: out is 64-byte aligned and the whole output is larger than a core's L2.
void hash_positions(const Kernel& k, const std::int64_t* row, std::int64_t begin, std::int64_t end,
                    std::int64_t* out, bool non_negative, bool stream) {
#ifdef HASHMEM_ENGRAM_AVX512
  if (k.fast && k.small_primes && non_negative && k.pad >= 0 && k.heads % 8 == 0) {
    if (stream ? dispatch_double<true>(k, row, begin, end, out) : dispatch_double<false>(k, row, begin, end, out)) {
      return;
    }
  }
  if (k.fast && k.heads % 8 == 0) {
    switch (k.columns / 8) {
      case 1: return hash_positions_avx512<1>(k, row, begin, end, out);
      case 2: return hash_positions_avx512<2>(k, row, begin, end, out);
      case 3: return hash_positions_avx512<3>(k, row, begin, end, out);
      case 4: return hash_positions_avx512<4>(k, row, begin, end, out);
      case 5: return hash_positions_avx512<5>(k, row, begin, end, out);
      case 6: return hash_positions_avx512<6>(k, row, begin, end, out);
      default: break;
    }
  }
#else
  (void)non_negative;
  (void)stream;
#endif
  std::int64_t window[64], mixes[64];
  for (std::int64_t t = begin; t < end; ++t) {
    load_window(k, row, t, window);
    position_mixes(k, window, mixes);
    position_columns(k, mixes, out + (t - begin) * k.columns);
  }
}

}  // namespace

void hash_batch(const Layout& layout, std::size_t layer_index, const std::int64_t* ids, std::int64_t batch,
                std::int64_t tokens, std::int64_t* out, bool add_offsets, int threads) {
  if (batch < 0 || tokens < 0) throw Error("batch and tokens must be >= 0");
  const Kernel k(layout, layer_index, add_offsets);
  const bool non_negative = check_ids(k, ids, batch * tokens);
  const std::int64_t total = batch * tokens;
  // Below ~64k positions a thread costs more than it saves.
  const int workers = total < (1 << 16) ? 1 : threads;
  // Outputs bigger than L2 go around the cache when aligned: it halves their memory traffic.
  const bool stream = reinterpret_cast<std::uintptr_t>(out) % 64 == 0 &&
                      total * k.columns * static_cast<std::int64_t>(sizeof(std::int64_t)) >= (std::int64_t{2} << 20);
  parallel_for(total, workers, [&](std::int64_t begin, std::int64_t end) {
    while (begin < end) {
      const std::int64_t b = begin / tokens, t = begin % tokens;
      const std::int64_t stop = std::min(end, (b + 1) * tokens);
      hash_positions(k, ids + b * tokens, t, t + (stop - begin), out + begin * k.columns, non_negative, stream);
      begin = stop;
    }
  });
}

void hash_batch_reference(const Layout& layout, std::size_t layer_index, const std::int64_t* ids,
                          std::int64_t batch, std::int64_t tokens, std::int64_t* out, bool add_offsets) {
  const Config& c = layout.config;
  const LayerLayout& layer = layout.layers.at(layer_index);
  const std::int64_t columns = c.columns();
  for (std::int64_t b = 0; b < batch; ++b) {
    for (std::int64_t t = 0; t < tokens; ++t) {
      if (ids[b * tokens + t] >= c.compressed_vocab) throw Error("id not below compressed_vocab");
      std::uint64_t mix = 0;
      for (int n = 1; n <= c.max_ngram; ++n) {
        const std::int64_t x = t - (n - 1) >= 0 ? ids[b * tokens + t - (n - 1)] : c.pad_id;
        mix ^= static_cast<std::uint64_t>(x) * static_cast<std::uint64_t>(layer.multipliers[static_cast<std::size_t>(n - 1)]);
        if (n < 2) continue;
        for (int j = 0; j < c.heads; ++j) {
          const std::int64_t column = (n - 2) * c.heads + j;
          const std::int64_t p = layer.primes[static_cast<std::size_t>(n - 2)][static_cast<std::size_t>(j)];
          std::int64_t r = static_cast<std::int64_t>(mix) % p;
          if (r < 0) r += p;
          out[(b * tokens + t) * columns + column] = r + (add_offsets ? layer.offsets[static_cast<std::size_t>(column)] : 0);
        }
      }
    }
  }
}

StreamingHasher::StreamingHasher(const Layout& layout, std::size_t layer_index, std::int64_t batch, bool add_offsets)
    : kernel_(std::make_unique<HashKernel>(layout, layer_index, add_offsets)), batch_(batch) {
  if (batch < 1) throw Error("batch must be >= 1, got " + std::to_string(batch));
  reset();
}

StreamingHasher::~StreamingHasher() = default;

void StreamingHasher::reset() {
  history_.assign(static_cast<std::size_t>(batch_ * (kernel_->max_ngram - 1)), kernel_->pad);
}

void StreamingHasher::push(const std::int64_t* ids, std::int64_t tokens, std::int64_t* out) {
  if (tokens < 0) throw Error("tokens must be >= 0");
  if (tokens == 0) return;
  const Kernel& k = *kernel_;
  const bool non_negative = check_ids(k, ids, batch_ * tokens);
  const std::int64_t keep = k.max_ngram - 1;
  window_.resize(static_cast<std::size_t>(keep + tokens));
  for (std::int64_t b = 0; b < batch_; ++b) {
    std::copy(history_.begin() + b * keep, history_.begin() + (b + 1) * keep, window_.begin());
    std::copy(ids + b * tokens, ids + (b + 1) * tokens, window_.begin() + keep);
    // The window starts with real history, so positions >= keep never read the pad.
    hash_positions(k, window_.data(), keep, keep + tokens, out + b * tokens * k.columns, non_negative, false);
    std::copy(window_.begin() + tokens, window_.begin() + tokens + keep, history_.begin() + b * keep);
  }
}

}  // namespace hashmem::engram
