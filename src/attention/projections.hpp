// Seeded random projections x·P, shared by the hashing methods: LSH's random rotations, the sign bits that bucket
// attention hashes and the SimHash signatures of signature top-k. P is drawn from (seed, stream) with mt19937_64
// and Box–Muller, so the same seed gives the same projections on every platform and standard library.
#pragma once

#include <cstdint>
#include <vector>

namespace hashmem::attention {

class Projection {
 public:
  // P [dim, cols] of standard normal values from (seed, stream).
  Projection(std::uint64_t seed, std::uint64_t stream, std::int64_t dim, std::int64_t cols);

  std::int64_t dim() const { return dim_; }
  std::int64_t cols() const { return cols_; }
  std::int64_t padded_cols() const { return padded_cols_; }  // the row width of apply's output
  const std::vector<float>& matrix() const { return matrix_; }

  // out [rows, padded_cols()] = x [rows, dim] (row stride ldx) · P; columns past cols() are 0.
  void apply(std::int64_t rows, const float* x, std::int64_t ldx, float* out) const;

  // Bit b of out[r] set iff (x_r·P)[b] > 0. REQUIRES: cols() <= 64.
  void sign_bits(std::int64_t rows, const float* x, std::int64_t ldx, std::uint64_t* out) const;

 private:
  std::int64_t dim_, cols_, padded_cols_;
  std::vector<float> matrix_;  // [dim, cols]
  std::vector<float> packed_;  // panels of the GEMM's B operand
};

}  // namespace hashmem::attention
