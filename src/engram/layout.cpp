// Engram layout: multipliers from numpy's default_rng and the global prime walk (SPEC §2).
#include <algorithm>
#include <set>

#include "common/numpy_rng.hpp"
#include "hashmem/engram.hpp"
#include "hashmem/error.hpp"

namespace hashmem::engram {
namespace {

std::uint64_t mul_mod(std::uint64_t a, std::uint64_t b, std::uint64_t m) {
  return static_cast<std::uint64_t>(static_cast<unsigned __int128>(a) * b % m);
}

std::uint64_t pow_mod(std::uint64_t base, std::uint64_t exp, std::uint64_t m) {
  std::uint64_t result = 1;
  base %= m;
  while (exp) {
    if (exp & 1) result = mul_mod(result, base, m);
    base = mul_mod(base, base, m);
    exp >>= 1;
  }
  return result;
}

constexpr std::int64_t kInt64Max = 0x7fffffffffffffffLL;
constexpr std::int64_t kMaxColumns = 1 << 16;  // layers · (max_ngram − 1) · heads

}  // namespace

bool is_prime(std::uint64_t n) {
  // The first 12 primes as bases decide every n < 3.3·10^24, so every 64-bit n.
  static constexpr std::uint64_t kBases[] = {2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37};
  if (n < 2) return false;
  for (std::uint64_t p : kBases) {
    if (n % p == 0) return n == p;
  }
  std::uint64_t d = n - 1;
  int r = 0;
  while ((d & 1) == 0) {
    d >>= 1;
    ++r;
  }
  for (std::uint64_t a : kBases) {
    std::uint64_t x = pow_mod(a, d, n);
    if (x == 1 || x == n - 1) continue;
    bool composite = true;
    for (int i = 1; i < r; ++i) {
      x = mul_mod(x, x, n);
      if (x == n - 1) {
        composite = false;
        break;
      }
    }
    if (composite) return false;
  }
  return true;
}

void validate(const Config& c) {
  if (c.layers.empty()) throw Error("the layer list is empty: give at least one layer id");
  for (std::int64_t id : c.layers) {
    if (id < 0) throw Error("layer ids must be >= 0, got " + std::to_string(id));
  }
  {
    std::set<std::int64_t> unique(c.layers.begin(), c.layers.end());
    if (unique.size() != c.layers.size()) throw Error("layer ids must be distinct");
  }
  if (c.max_ngram < 2 || c.max_ngram > 64) {
    throw Error("max_ngram must be in [2, 64], got " + std::to_string(c.max_ngram));
  }
  if (c.heads < 1 || c.heads > 4096) throw Error("heads must be in [1, 4096], got " + std::to_string(c.heads));
  // Every (layer, order, head) is a prime to find and a table column: 64 layers of DeepSeek-V4.1's 24 columns
  // is 1,536; the bound keeps make_layout's prime walk well under a second (800 layers of 63 · 4096 columns hung;
  // found by reading the fuzz_engram_config target).
  if (static_cast<double>(c.layers.size()) * (c.max_ngram - 1) * c.heads > kMaxColumns) {
    throw Error("layers · (max_ngram - 1) · heads = " + std::to_string(c.layers.size()) + " · " +
                std::to_string(c.max_ngram - 1) + " · " + std::to_string(c.heads) + " exceeds " +
                std::to_string(kMaxColumns) + " (table columns over all layers)");
  }
  if (static_cast<int>(c.vocab_per_order.size()) != c.max_ngram - 1) {
    throw Error("vocab_per_order needs max_ngram - 1 = " + std::to_string(c.max_ngram - 1) + " entries, got " +
                std::to_string(c.vocab_per_order.size()));
  }
  // Each layer's rows (about heads × Σ vocab, all layers' primes distinct) must fit int64 with room to spare.
  const double limit = 4.0e18;
  double rows = 0;
  for (std::int64_t v : c.vocab_per_order) {
    if (v < 2) throw Error("vocab_per_order entries must be >= 2, got " + std::to_string(v));
    rows += static_cast<double>(v) * c.heads * static_cast<double>(c.layers.size());
  }
  if (rows > limit) {
    throw Error("vocab_per_order too large: the tables would need about " + std::to_string(rows) +
                " rows, beyond what int64 row ids address");
  }
  if (c.compressed_vocab < 1) {
    throw Error("compressed_vocab must be >= 1, got " + std::to_string(c.compressed_vocab));
  }
  if (c.head_dim < 0) throw Error("head_dim must be >= 0, got " + std::to_string(c.head_dim));
  if (c.pad_id >= c.compressed_vocab) {
    throw Error("pad_id " + std::to_string(c.pad_id) + " is not below compressed_vocab " +
                std::to_string(c.compressed_vocab));
  }
  if (!c.multipliers.empty()) {
    if (c.multipliers.size() != c.layers.size()) throw Error("multipliers need one list per layer");
    for (const auto& m : c.multipliers) {
      if (static_cast<int>(m.size()) != c.max_ngram) {
        throw Error("each multipliers list needs max_ngram = " + std::to_string(c.max_ngram) + " entries");
      }
      for (std::int64_t v : m) {
        if (v < 1 || v > kInt64Max / c.compressed_vocab) {
          throw Error("multiplier " + std::to_string(v) + " is out of range: with compressed_vocab " +
                      std::to_string(c.compressed_vocab) + " the mix id·multiplier would overflow int64");
        }
      }
    }
  }
  if (!c.primes.empty()) {
    if (c.primes.size() != c.layers.size()) throw Error("primes need one table per layer");
    for (const auto& per_layer : c.primes) {
      if (static_cast<int>(per_layer.size()) != c.max_ngram - 1) throw Error("primes need max_ngram - 1 orders");
      for (const auto& per_order : per_layer) {
        if (static_cast<int>(per_order.size()) != c.heads) throw Error("primes need `heads` entries per order");
        for (std::int64_t p : per_order) {
          if (p < 2) throw Error("primes must be >= 2, got " + std::to_string(p));
        }
      }
      // A layer's rows are the sum of its primes: it must fit int64 row ids like the derived ones (summing
      // 2^63 − 1 twice overflowed; found by reading the fuzz_engram_config target).
      double layer_rows = 0;
      for (const auto& per_order : per_layer) {
        for (std::int64_t p : per_order) layer_rows += static_cast<double>(p);
      }
      if (layer_rows > limit) {
        throw Error("the primes of a layer add up to about " + std::to_string(layer_rows) +
                    " rows, beyond what int64 row ids address");
      }
    }
  }
}

Layout make_layout(const Config& config) {
  validate(config);
  Layout layout;
  layout.config = config;
  std::set<std::uint64_t> seen;
  const std::int64_t m_max = kInt64Max / config.compressed_vocab;
  const std::int64_t half = std::max<std::int64_t>(1, m_max / 2);
  for (std::size_t li = 0; li < config.layers.size(); ++li) {
    LayerLayout layer;
    layer.layer_id = config.layers[li];
    if (!config.multipliers.empty()) {
      layer.multipliers = config.multipliers[li];
    } else {
      const unsigned __int128 seed =
          static_cast<unsigned __int128>(config.seed) + static_cast<unsigned __int128>(10007) * layer.layer_id;
      for (std::int64_t r : numpy_integers(seed, 0, half, static_cast<std::size_t>(config.max_ngram))) {
        layer.multipliers.push_back(2 * r + 1);
      }
    }
    if (!config.primes.empty()) {
      layer.primes = config.primes[li];
    } else {
      for (int n = 2; n <= config.max_ngram; ++n) {
        std::vector<std::int64_t> heads;
        std::uint64_t current = static_cast<std::uint64_t>(config.vocab_per_order[static_cast<std::size_t>(n - 2)] - 1);
        for (int j = 0; j < config.heads; ++j) {
          std::uint64_t candidate = current + 1;
          while (!is_prime(candidate) || seen.count(candidate)) ++candidate;
          seen.insert(candidate);
          heads.push_back(static_cast<std::int64_t>(candidate));
          current = candidate;
        }
        layer.primes.push_back(std::move(heads));
      }
    }
    std::int64_t offset = 0;
    for (const auto& per_order : layer.primes) {
      for (std::int64_t p : per_order) {
        layer.offsets.push_back(offset);
        offset += p;
      }
    }
    layer.rows = offset;
    layout.layers.push_back(std::move(layer));
  }
  return layout;
}

}  // namespace hashmem::engram
