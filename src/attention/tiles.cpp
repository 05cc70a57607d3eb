// GEMM over packed panels, packing, and the forward/backward attention block (tiles.hpp).
//
// The GEMM is a register-blocked micro-kernel: kRows rows of A times one panel (two vectors wide) of B, all
// accumulators in registers, A broadcast one element at a time. With AVX-512 that is 8 × 2 zmm accumulators,
// 16 FMAs per 2 panel loads and 8 broadcasts: close to the FMA ports' peak while the panel (K × 128 bytes)
// streams from L1/L2. It replaces sgemm calls because OpenBLAS would split each small tile over its own thread
// pool, fighting the threads we already run tiles on.
#include "attention/tiles.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <utility>

#include "hashmem/attention.hpp"

namespace hashmem::attention {
namespace {

std::atomic<std::int64_t> workspace_now{0}, workspace_peak{0};

}  // namespace

void reset_peak_workspace() { workspace_peak.store(workspace_now.load()); }
std::int64_t peak_workspace_bytes() { return workspace_peak.load(); }

namespace tiles {
namespace {

using simd::kLanes;
using simd::Vec;

template <int R>
void micro_kernel(std::int64_t k, const float* a, std::int64_t lda, const float* b, float* c, std::int64_t ldc,
                  bool accumulate, const float* row_scale) {
  Vec acc0[R], acc1[R];
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) acc0[r] = acc1[r] = simd::broadcast(0.0f);
  for (std::int64_t p = 0; p < k; ++p) {
    const Vec b0 = simd::load(b + p * kPanel), b1 = simd::load(b + p * kPanel + kLanes);
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const Vec x = simd::broadcast(a[r * lda + p]);
      acc0[r] = simd::fma(x, b0, acc0[r]);
      acc1[r] = simd::fma(x, b1, acc1[r]);
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    float* row = c + r * ldc;
    if (accumulate) {
      const Vec s = simd::broadcast(row_scale ? row_scale[r] : 1.0f);
      acc0[r] = simd::fma(simd::load(row), s, acc0[r]);
      acc1[r] = simd::fma(simd::load(row + kLanes), s, acc1[r]);
    }
    simd::store(row, acc0[r]);
    simd::store(row + kLanes, acc1[r]);
  }
}

using MicroKernel = void (*)(std::int64_t, const float*, std::int64_t, const float*, float*, std::int64_t, bool,
                             const float*);

template <std::size_t... R>
constexpr auto make_kernels(std::index_sequence<R...>) {
  return std::array<MicroKernel, sizeof...(R)>{&micro_kernel<static_cast<int>(R) + 1>...};
}
constexpr auto kKernels = make_kernels(std::make_index_sequence<kRows>{});

// Scales a score row to log2 units and applies the mask; returns the row's maximum.
float scale_and_mask_row(float* s, std::int64_t cols, float score_scale, const BlockMask* mask, std::int64_t row) {
  const Vec c = simd::broadcast(score_scale);
  Vec best = simd::broadcast(-std::numeric_limits<float>::infinity());
  if (!mask) {
    for (std::int64_t j = 0; j < cols; j += kLanes) {
      const Vec x = simd::load(s + j) * c;
      simd::store(s + j, x);
      best = simd::max(best, x);
    }
    return simd::reduce_max(best);
  }
  const simd::VecI qp = simd::VecI{} + mask->query_pos[row];
  const simd::VecI zero = simd::VecI{};
  const Vec minus_inf = simd::broadcast(-std::numeric_limits<float>::infinity());
  const Vec self = simd::broadcast(kSelfScore * kLog2e);
  for (std::int64_t j = 0; j < cols; j += kLanes) {
    const simd::VecI kp = simd::load_int(mask->key_pos + j);
    Vec x = simd::load(s + j) * c;
    if (mask->self_score) x = kp == qp ? self : x;
    simd::VecI masked = kp < zero;
    if (mask->causal) masked |= kp > qp;
    x = masked ? minus_inf : x;
    simd::store(s + j, x);
    best = simd::max(best, x);
  }
  return simd::reduce_max(best);
}

void transpose(std::int64_t rows, std::int64_t cols, const float* src, float* dst) {
  constexpr std::int64_t kBlock = 16;
  for (std::int64_t r0 = 0; r0 < rows; r0 += kBlock) {
    for (std::int64_t c0 = 0; c0 < cols; c0 += kBlock) {
      const std::int64_t r1 = std::min(rows, r0 + kBlock), c1 = std::min(cols, c0 + kBlock);
      for (std::int64_t r = r0; r < r1; ++r) {
        for (std::int64_t c = c0; c < c1; ++c) dst[c * rows + r] = src[r * cols + c];
      }
    }
  }
}

std::int64_t source_row(const std::int32_t* index, std::int64_t count, std::int64_t i) {
  if (i >= count) return kPadding;
  return index ? index[i] : i;
}

}  // namespace

void count_workspace(std::int64_t bytes) {
  const std::int64_t now = workspace_now.fetch_add(bytes) + bytes;
  std::int64_t peak = workspace_peak.load();
  while (now > peak && !workspace_peak.compare_exchange_weak(peak, now)) {
  }
}

void gemm(std::int64_t m, std::int64_t n, std::int64_t k, const float* a, std::int64_t lda, Panels b, float* c,
          std::int64_t ldc, bool accumulate, const float* row_scale) {
  for (std::int64_t r0 = 0; r0 < m; r0 += kRows) {
    const std::int64_t rows = std::min<std::int64_t>(kRows, m - r0);
    const MicroKernel kernel = kKernels[static_cast<std::size_t>(rows - 1)];
    for (std::int64_t p = 0; p * kPanel < n; ++p) {
      kernel(k, a + r0 * lda, lda, b.data + p * b.panel_stride, c + r0 * ldc + p * kPanel, ldc, accumulate,
             row_scale ? row_scale + r0 : nullptr);
    }
  }
}

void pack_transposed(const float* x, std::int64_t ldx, const std::int32_t* index, std::int64_t count, std::int64_t n,
                     std::int64_t k, float* dst) {
  for (std::int64_t p = 0; p * kPanel < n; ++p) {
    float* panel = dst + p * k * kPanel;
    for (std::int64_t w = 0; w < kPanel; ++w) {
      const std::int64_t row = p * kPanel + w < n ? source_row(index, count, p * kPanel + w) : kPadding;
      const float* src = row == kPadding ? nullptr : x + row * ldx;
      for (std::int64_t i = 0; i < k; ++i) panel[i * kPanel + w] = src ? src[i] : 0.0f;
    }
  }
}

void pack_rows(const float* x, std::int64_t ldx, const std::int32_t* index, std::int64_t count, std::int64_t k,
               std::int64_t n, float* dst) {
  const std::int64_t panels = (n + kPanel - 1) / kPanel;
  for (std::int64_t i = 0; i < k; ++i) {
    const std::int64_t row = source_row(index, count, i);
    const float* src = row == kPadding ? nullptr : x + row * ldx;
    for (std::int64_t p = 0; p < panels; ++p) {
      float* out = dst + (p * k + i) * kPanel;
      for (std::int64_t w = 0; w < kPanel; ++w) {
        const std::int64_t col = p * kPanel + w;
        out[w] = src && col < n ? src[col] : 0.0f;
      }
    }
  }
}

namespace {

// s = 2^(s − shift) over cols values (a multiple of kLanes); returns their sum.
float exp2_row(float* s, std::int64_t cols, float shift) {
  const Vec m = simd::broadcast(shift);
  Vec sum = simd::broadcast(0.0f);
  for (std::int64_t j = 0; j < cols; j += kLanes) {
    const Vec p = simd::exp2(simd::load(s + j) - m);
    simd::store(s + j, p);
    sum += p;
  }
  return simd::reduce_add(sum);
}

}  // namespace

void start_rows(std::int64_t rows, std::int64_t out_cols, RowState state) {
  for (std::int64_t r = 0; r < rows; ++r) {
    state.max[r] = -std::numeric_limits<float>::infinity();
    state.sum[r] = 0.0f;
    std::fill_n(state.out + r * state.ldo, out_cols, 0.0f);
  }
}

void finish_rows(std::int64_t rows, std::int64_t out_cols, RowState state, float* lse) {
  for (std::int64_t r = 0; r < rows; ++r) {
    const float sum = state.sum[r];
    const float inv = sum > 0 ? 1.0f / sum : 0.0f;
    float* o = state.out + r * state.ldo;
    for (std::int64_t c = 0; c < out_cols; ++c) o[c] *= inv;
    if (lse) lse[r] = sum > 0 ? (state.max[r] + std::log2(sum)) * kLn2 : -std::numeric_limits<float>::infinity();
  }
}

void forward_block(std::int64_t rows, std::int64_t cols, std::int64_t dim, std::int64_t value_cols, const float* q,
                   std::int64_t ldq, Panels kt, Panels v, float score_scale, const BlockMask* mask, RowState state,
                   float* scratch, float* alpha) {
  gemm(rows, cols, dim, q, ldq, kt, scratch, cols, false);
  for (std::int64_t r = 0; r < rows; ++r) {
    float* s = scratch + r * cols;
    const float new_max = std::max(state.max[r], scale_and_mask_row(s, cols, score_scale, mask, r));
    // A row with nothing visible yet keeps max −inf; subtracting 0 keeps its exponentials at 0, not NaN.
    const float shift = new_max == -std::numeric_limits<float>::infinity() ? 0.0f : new_max;
    alpha[r] = std::exp2(state.max[r] - shift);
    state.sum[r] = state.sum[r] * alpha[r] + exp2_row(s, cols, shift);
    state.max[r] = new_max;
  }
  gemm(rows, value_cols, cols, scratch, cols, v, state.out, state.ldo, true, alpha);
}

void backward_block(std::int64_t rows, std::int64_t cols, std::int64_t dim, std::int64_t value_dim,
                    const BackwardOperands& op, float score_scale, const BlockMask* mask, float* dq, float* dk,
                    float* dv, float* scratch) {
  const std::int64_t dim_cols = round_up(dim, kPanel), value_cols = round_up(value_dim, kPanel);
  float* p = scratch;
  float* dp = scratch + rows * cols;
  float* t = scratch + 2 * rows * cols;
  gemm(rows, cols, dim, op.q, op.ldq, op.kt, p, cols, false);
  for (std::int64_t r = 0; r < rows; ++r) {
    float* s = p + r * cols;
    scale_and_mask_row(s, cols, score_scale, mask, r);
    const Vec lse = simd::broadcast(op.lse2[r]);
    for (std::int64_t j = 0; j < cols; j += kLanes) simd::store(s + j, simd::exp2(simd::load(s + j) - lse));
  }
  transpose(rows, cols, p, t);
  gemm(cols, value_cols, rows, t, rows, op.dout_rows, dv, value_cols, true);
  gemm(rows, cols, value_dim, op.dout, op.lddo, op.vt, dp, cols, false);
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* pr = p + r * cols;
    float* g = dp + r * cols;
    const Vec delta = simd::broadcast(op.delta[r]);
    for (std::int64_t j = 0; j < cols; j += kLanes) {
      simd::store(g + j, simd::load(pr + j) * (simd::load(g + j) - delta));
    }
    // The self score is a constant: no gradient flows through it to q or k.
    if (mask && mask->self_score) {
      for (std::int64_t j = 0; j < cols; ++j) {
        if (mask->key_pos[j] == mask->query_pos[r]) g[j] = 0.0f;
      }
    }
  }
  gemm(rows, dim_cols, cols, dp, cols, op.k_rows, dq, dim_cols, true);
  transpose(rows, cols, dp, t);
  gemm(cols, dim_cols, rows, t, rows, op.q_rows, dk, dim_cols, true);
}

void BackwardPacks::pack(std::int64_t dim_, std::int64_t value_dim_, const float* k, const float* v,
                         const std::int32_t* key_index, std::int64_t key_count, std::int64_t key_rows_, const float* q,
                         const float* dout, const std::int32_t* query_index, std::int64_t query_count,
                         std::int64_t query_rows_) {
  dim = dim_, value_dim = value_dim_, key_rows = key_rows_, query_rows = query_rows_;
  const std::int64_t dim_cols = round_up(dim, kPanel), value_cols = round_up(value_dim, kPanel);
  kt.resize(key_rows * dim);
  vt.resize(key_rows * value_dim);
  k_rows.resize(key_rows * dim_cols);
  q_rows.resize(query_rows * dim_cols);
  dout_rows.resize(query_rows * value_cols);
  pack_transposed(k, dim, key_index, key_count, key_rows, dim, kt.data());
  pack_transposed(v, value_dim, key_index, key_count, key_rows, value_dim, vt.data());
  pack_rows(k, dim, key_index, key_count, key_rows, dim, k_rows.data());
  pack_rows(q, dim, query_index, query_count, query_rows, dim, q_rows.data());
  pack_rows(dout, value_dim, query_index, query_count, query_rows, value_dim, dout_rows.data());
}

BackwardOperands BackwardPacks::block(const float* q_a, const float* dout_a, const float* lse2, const float* delta,
                                      std::int64_t q0, std::int64_t k0) const {
  return {q_a + q0 * dim,
          dim,
          dout_a + q0 * value_dim,
          value_dim,
          Panels{kt.data() + k0 * dim, kPanel * dim},
          Panels{vt.data() + k0 * value_dim, kPanel * value_dim},
          Panels{k_rows.data() + k0 * kPanel, key_rows * kPanel},
          Panels{q_rows.data() + q0 * kPanel, query_rows * kPanel},
          Panels{dout_rows.data() + q0 * kPanel, query_rows * kPanel},
          lse2 + q0,
          delta + q0};
}

float dot(const float* a, const float* b, std::int64_t n) {
  Vec acc0 = simd::broadcast(0.0f), acc1 = simd::broadcast(0.0f);
  std::int64_t i = 0;
  for (; i + 2 * kLanes <= n; i += 2 * kLanes) {
    acc0 = simd::fma(simd::load(a + i), simd::load(b + i), acc0);
    acc1 = simd::fma(simd::load(a + i + kLanes), simd::load(b + i + kLanes), acc1);
  }
  for (; i + kLanes <= n; i += kLanes) acc0 = simd::fma(simd::load(a + i), simd::load(b + i), acc0);
  float sum = simd::reduce_add(acc0 + acc1);
  for (; i < n; ++i) sum += a[i] * b[i];
  return sum;
}

namespace {

// y = α·y + x·β over n values.
void scale_add(float* y, float alpha, const float* x, float beta, std::int64_t n) {
  const Vec a = simd::broadcast(alpha), b = simd::broadcast(beta);
  std::int64_t i = 0;
  for (; i + kLanes <= n; i += kLanes) simd::store(y + i, simd::fma(simd::load(x + i), b, simd::load(y + i) * a));
  for (; i < n; ++i) y[i] = y[i] * alpha + x[i] * beta;
}

}  // namespace

void decode_rows(std::int64_t dim, std::int64_t value_dim, const float* q, const float* k, const float* v,
                 const std::int64_t* keys, std::int64_t count, float scale, float* out, float* lse, float* scratch) {
  constexpr std::int64_t kChunk = 256;
  const float c = scale * kLog2e;
  float running_max = -std::numeric_limits<float>::infinity(), running_sum = 0.0f;
  std::fill_n(out, value_dim, 0.0f);
  for (std::int64_t j0 = 0; j0 < count; j0 += kChunk) {
    const std::int64_t n = std::min(kChunk, count - j0);
    float chunk_max = -std::numeric_limits<float>::infinity();
    for (std::int64_t j = 0; j < n; ++j) {
      const std::int64_t key = keys ? keys[j0 + j] : j0 + j;
      scratch[j] = dot(q, k + key * dim, dim) * c;
      chunk_max = std::max(chunk_max, scratch[j]);
    }
    const float new_max = std::max(running_max, chunk_max);
    const float alpha = std::exp2(running_max - new_max);
    const std::int64_t padded = round_up(n, kLanes);
    std::fill(scratch + n, scratch + padded, -std::numeric_limits<float>::infinity());
    running_sum = running_sum * alpha + exp2_row(scratch, padded, new_max);
    for (std::int64_t j = 0; j < n; ++j) {
      const std::int64_t key = keys ? keys[j0 + j] : j0 + j;
      scale_add(out, j == 0 ? alpha : 1.0f, v + key * value_dim, scratch[j], value_dim);
    }
    running_max = new_max;
  }
  const float inv = running_sum > 0 ? 1.0f / running_sum : 0.0f;
  for (std::int64_t i = 0; i < value_dim; ++i) out[i] *= inv;
  if (lse) *lse = (running_max + std::log2(running_sum)) * kLn2;
}

}  // namespace tiles
}  // namespace hashmem::attention
