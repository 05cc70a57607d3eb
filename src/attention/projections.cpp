// Seeded Gaussian projections (projections.hpp).
#include "attention/projections.hpp"

#include <cmath>
#include <random>

#include "attention/tiles.hpp"

namespace hashmem::attention {

Projection::Projection(std::uint64_t seed, std::uint64_t stream, std::int64_t dim, std::int64_t cols)
    : dim_(dim), cols_(cols), padded_cols_(tiles::round_up(cols, tiles::kPanel)) {
  // SplitMix-style mixing keeps nearby (seed, stream) pairs far apart in the generator's state.
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull ^ (stream + 0x632BE59BD9B4E019ull) * 0xBF58476D1CE4E5B9ull);
  matrix_.resize(static_cast<std::size_t>(dim * cols));
  constexpr double kTwoPi = 6.283185307179586;
  for (std::size_t i = 0; i < matrix_.size(); i += 2) {
    // Box–Muller on two uniforms in (0, 1].
    const double u1 = (static_cast<double>(rng() >> 11) + 1.0) * 0x1.0p-53;
    const double u2 = static_cast<double>(rng() >> 11) * 0x1.0p-53;
    const double r = std::sqrt(-2.0 * std::log(u1));
    matrix_[i] = static_cast<float>(r * std::cos(kTwoPi * u2));
    if (i + 1 < matrix_.size()) matrix_[i + 1] = static_cast<float>(r * std::sin(kTwoPi * u2));
  }
  packed_.resize(static_cast<std::size_t>(dim * padded_cols_));
  tiles::pack_rows(matrix_.data(), cols, nullptr, dim, dim, cols, packed_.data());
}

void Projection::apply(std::int64_t rows, const float* x, std::int64_t ldx, float* out) const {
  tiles::gemm(rows, padded_cols_, dim_, x, ldx, tiles::Panels{packed_.data(), dim_ * tiles::kPanel}, out, padded_cols_,
              false);
}

void Projection::sign_bits(std::int64_t rows, const float* x, std::int64_t ldx, std::uint64_t* out) const {
  constexpr std::int64_t kBlock = 64;
  tiles::Buffer<float> projected(kBlock * padded_cols_);
  for (std::int64_t r0 = 0; r0 < rows; r0 += kBlock) {
    const std::int64_t n = std::min(kBlock, rows - r0);
    apply(n, x + r0 * ldx, ldx, projected.data());
    for (std::int64_t r = 0; r < n; ++r) {
      std::uint64_t bits = 0;
      const float* p = projected.data() + r * padded_cols_;
      for (std::int64_t b = 0; b < cols_; ++b) bits |= static_cast<std::uint64_t>(p[b] > 0.0f) << b;
      out[r0 + r] = bits;
    }
  }
}

}  // namespace hashmem::attention
