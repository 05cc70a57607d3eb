// Engram n-gram hashing (SPEC §2). For position t of a sequence x (compressed ids, left-padded with pad_id):
//   mix_n = (x[t]·m0) ^ (x[t−1]·m1) ^ … ^ (x[t−n+1]·m_{n−1})      (int64, wrapping as numpy does)
//   hash[(n−2)·heads + j] = mix_n mod prime[n][j]                   (floor modulo, in [0, prime))
//
// This file holds the kernel constants, the scalar kernel, the entry points (hash_batch splits the batch over
// threads and picks a kernel; StreamingHasher keeps each sequence's last max_ngram−1 ids) and
// hash_batch_reference, the plain integer version every kernel is tested against. The AVX-512 kernels are in
// hash_avx512.cpp (hash_kernel.hpp describes the split).
//
// The scalar kernel's modulo for primes >= 2^13 uses a precomputed reciprocal in double: q' = floor(mix · (1/p))
// is within ±1 of the true quotient (|mix| < 2^63, so the quotient is below 2^50, and the relative error of the
// conversion, reciprocal and product is ≤ 3·2^−53: the absolute error is < 3·2^−3), and one correction each way
// on r = mix − q'·p makes it exact. Smaller primes use the integer %.
#include <cmath>

#include "common/parallel.hpp"
#include "engram/hash_kernel.hpp"
#include "hashmem/engram.hpp"
#include "hashmem/error.hpp"

namespace hashmem::engram {

HashKernel::HashKernel(const Layout& layout, std::size_t layer_index, bool add_offsets) {
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

namespace {

// Throws for an id >= compressed_vocab; returns whether every id is >= 0.
bool check_ids(const HashKernel& k, const std::int64_t* ids, std::int64_t n) {
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

// x mod p by the reciprocal estimate and one correction each way (p >= kMinFastPrime).
inline std::int64_t fast_floor_mod(std::int64_t x, std::int64_t p, double inverse) {
  const std::int64_t q = static_cast<std::int64_t>(std::floor(static_cast<double>(x) * inverse));
  std::int64_t r = static_cast<std::int64_t>(static_cast<std::uint64_t>(x) -
                                             static_cast<std::uint64_t>(q) * static_cast<std::uint64_t>(p));
  r += r < 0 ? p : 0;
  r -= r >= p ? p : 0;
  return r;
}

// Hashes positions [begin, end) of one sequence with the best kernel this build and layer allow.
void hash_positions(const HashKernel& k, const std::int64_t* row, std::int64_t begin, std::int64_t end,
                    std::int64_t* out, bool non_negative, std::int64_t output_bytes) {
  if (!hash_positions_avx512(k, row, begin, end, out, non_negative, output_bytes)) {
    hash_positions_scalar(k, row, begin, end, out);
  }
}

}  // namespace

void hash_positions_scalar(const HashKernel& k, const std::int64_t* row, std::int64_t begin, std::int64_t end,
                           std::int64_t* out) {
  const std::int64_t* primes = k.primes.data();
  const double* inverses = k.inverses.data();
  const std::int64_t* offsets = k.offsets.data();
  for (std::int64_t t = begin; t < end; ++t, out += k.columns) {
    std::uint64_t mix = static_cast<std::uint64_t>(row[t]) * k.multipliers[0];
    for (int n = 2; n <= k.max_ngram; ++n) {
      const std::int64_t x = t - (n - 1) >= 0 ? row[t - (n - 1)] : k.pad;
      mix ^= static_cast<std::uint64_t>(x) * k.multipliers[static_cast<std::size_t>(n - 1)];
      const std::int64_t signed_mix = static_cast<std::int64_t>(mix);
      for (int c = (n - 2) * k.heads; c < (n - 1) * k.heads; ++c) {
        out[c] = (k.fast ? fast_floor_mod(signed_mix, primes[c], inverses[c]) : floor_mod_exact(signed_mix, primes[c])) +
                 offsets[c];
      }
    }
  }
}

void hash_batch(const Layout& layout, std::size_t layer_index, const std::int64_t* ids, std::int64_t batch,
                std::int64_t tokens, std::int64_t* out, bool add_offsets, int threads) {
  if (batch < 0 || tokens < 0) throw Error("batch and tokens must be >= 0");
  const HashKernel k(layout, layer_index, add_offsets);
  const bool non_negative = check_ids(k, ids, batch * tokens);
  const std::int64_t total = batch * tokens;
  // Below ~64k positions a thread costs more than it saves.
  const int workers = total < (1 << 16) ? 1 : threads;
  const std::int64_t output_bytes = total * k.columns * static_cast<std::int64_t>(sizeof(std::int64_t));
  parallel_for(total, workers, [&](std::int64_t begin, std::int64_t end) {
    while (begin < end) {
      const std::int64_t b = begin / tokens, t = begin % tokens;
      const std::int64_t stop = std::min(end, (b + 1) * tokens);
      hash_positions(k, ids + b * tokens, t, t + (stop - begin), out + begin * k.columns, non_negative, output_bytes);
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
  const HashKernel& k = *kernel_;
  const bool non_negative = check_ids(k, ids, batch_ * tokens);
  const std::int64_t keep = k.max_ngram - 1;
  window_.resize(static_cast<std::size_t>(keep + tokens));
  for (std::int64_t b = 0; b < batch_; ++b) {
    std::copy(history_.begin() + b * keep, history_.begin() + (b + 1) * keep, window_.begin());
    std::copy(ids + b * tokens, ids + (b + 1) * tokens, window_.begin() + keep);
    // The window starts with real history, so positions >= keep never read the pad.
    hash_positions(k, window_.data(), keep, keep + tokens, out + b * tokens * k.columns, non_negative, 0);
    std::copy(window_.begin() + tokens, window_.begin() + tokens + keep, history_.begin() + b * keep);
  }
}

}  // namespace hashmem::engram
