// Exact attention, tiled: forward with an online softmax over key tiles, backward from the saved log-sum-exp
// (formulas and layout in include/hashmem/attention.hpp; the block kernels in tiles.hpp).
//
// Forward: work items are (head, tile of 64 queries), split over threads; a thread packs the keys and values of
// the head it works on once (Kᵀ and V panels, O(m·d)) and walks the key tiles, skipping tiles entirely above
// the causal diagonal and masking only tiles that cross it or hold padded keys. Backward: one head per thread,
// key tiles outer so dK and dV of a tile stay local while dQ accumulates over the head — each gradient is
// summed in a fixed order, so results do not depend on the thread count.
#include <algorithm>
#include <cmath>

#include "attention/args.hpp"
#include "attention/tiles.hpp"
#include "common/parallel.hpp"
#include "hashmem/error.hpp"

namespace hashmem::attention {
namespace {

using tiles::Buffer;
using tiles::kPanel;
using tiles::Panels;
using tiles::round_up;

constexpr std::int64_t kQueryTile = 64;
constexpr std::int64_t kKeyTile = 256;
// Up to this many queries (decoding), the keys are streamed row by row instead of packed into panels:
// packing costs as much as the whole product then.
constexpr std::int64_t kDecodeQueries = 4;

void check_exact(const Dims& d, const ExactOptions& o, const char* method) {
  check_dims(d, method);
  if (o.causal && d.keys < d.queries) {
    throw Error(std::string(method) + ": a causal mask needs dims.keys >= dims.queries, got keys " +
                std::to_string(d.keys) + " < queries " + std::to_string(d.queries));
  }
}

// One head's keys and values in the panel layouts of the forward GEMMs, plus the key positions (padding marked).
struct PackedHead {
  std::int64_t head = -1;
  Buffer<float> kt, v;
  Buffer<std::int32_t> key_pos;

  void pack(const Dims& d, const float* k, const float* values, std::int64_t h) {
    if (head == h) return;
    const std::int64_t mp = round_up(d.keys, kPanel), dvp = round_up(d.value_dim, kPanel);
    kt.resize(mp * d.dim);
    v.resize(mp * dvp);
    key_pos.resize(mp);
    tiles::pack_transposed(k + h * d.keys * d.dim, d.dim, nullptr, d.keys, mp, d.dim, kt.data());
    tiles::pack_rows(values + h * d.keys * d.value_dim, d.value_dim, nullptr, d.keys, mp, d.value_dim, v.data());
    for (std::int64_t j = 0; j < mp; ++j) key_pos[j] = j < d.keys ? static_cast<std::int32_t>(j) : tiles::kPadding;
    head = h;
  }
};

// Does the block [q_first, q_last] × [j0, j0 + cols) need masking (padded keys or keys after a query)?
bool needs_mask(const Dims& d, bool causal, std::int64_t q_first_pos, std::int64_t j0, std::int64_t cols) {
  return j0 + cols > d.keys || (causal && j0 + cols - 1 > q_first_pos);
}

void decode_forward(const Dims& d, const float* q, const float* k, const float* v, float* out, float* lse,
                    const ExactOptions& o, float scale) {
  const std::int64_t offset = d.keys - d.queries;
  parallel_for(d.heads * d.queries, o.threads, [&](std::int64_t begin, std::int64_t end) {
    Buffer<float> scratch(256);
    for (std::int64_t item = begin; item < end; ++item) {
      const std::int64_t h = item / d.queries, i = item % d.queries;
      const std::int64_t count = o.causal ? i + offset + 1 : d.keys;
      tiles::decode_rows(d.dim, d.value_dim, q + item * d.dim, k + h * d.keys * d.dim, v + h * d.keys * d.value_dim,
                         nullptr, count, scale, out + item * d.value_dim, lse ? lse + item : nullptr, scratch.data());
    }
  });
}

}  // namespace

void exact_forward(const Dims& d, const float* q, const float* k, const float* v, float* out, float* lse,
                   const ExactOptions& o) {
  check_exact(d, o, "exact_forward");
  for (auto [p, name] : {std::pair{q, "q"}, {k, "k"}, {v, "v"}, {static_cast<const float*>(out), "out"}}) {
    check_pointer(p, name, "exact_forward");
  }
  const float scale = resolve_scale(o.scale, d.dim);
  if (d.queries <= kDecodeQueries) {
    decode_forward(d, q, k, v, out, lse, o, scale);
    return;
  }
  const std::int64_t query_tiles = (d.queries + kQueryTile - 1) / kQueryTile;
  const std::int64_t mp = round_up(d.keys, kPanel), dvp = round_up(d.value_dim, kPanel);
  const std::int64_t offset = d.keys - d.queries;
  const float score_scale = scale * tiles::kLog2e;
  parallel_for(d.heads * query_tiles, o.threads, [&](std::int64_t begin, std::int64_t end) {
    PackedHead packed;
    Buffer<float> scores(kQueryTile * kKeyTile), alpha(kQueryTile), row_max(kQueryTile), row_sum(kQueryTile);
    Buffer<float> acc(kQueryTile * dvp), tile_lse(kQueryTile);
    Buffer<std::int32_t> query_pos(kQueryTile);
    for (std::int64_t item = begin; item < end; ++item) {
      const std::int64_t h = item / query_tiles, i0 = (item % query_tiles) * kQueryTile;
      const std::int64_t rows = std::min(kQueryTile, d.queries - i0);
      packed.pack(d, k, v, h);
      for (std::int64_t r = 0; r < rows; ++r) query_pos[r] = static_cast<std::int32_t>(i0 + r + offset);
      const tiles::RowState state{row_max.data(), row_sum.data(), acc.data(), dvp};
      tiles::start_rows(rows, dvp, state);
      const std::int64_t key_end = o.causal ? round_up(i0 + rows + offset, kPanel) : mp;
      const tiles::BlockMask mask{query_pos.data(), nullptr, o.causal, false};
      for (std::int64_t j0 = 0; j0 < key_end; j0 += kKeyTile) {
        const std::int64_t cols = std::min(kKeyTile, key_end - j0);
        tiles::BlockMask tile_mask = mask;
        tile_mask.key_pos = packed.key_pos.data() + j0;
        tiles::forward_block(rows, cols, d.dim, dvp, q + (h * d.queries + i0) * d.dim, d.dim,
                             Panels{packed.kt.data() + j0 * d.dim, kPanel * d.dim},
                             Panels{packed.v.data() + j0 * kPanel, mp * kPanel}, score_scale,
                             needs_mask(d, o.causal, i0 + offset, j0, cols) ? &tile_mask : nullptr, state,
                             scores.data(), alpha.data());
      }
      tiles::finish_rows(rows, dvp, state, tile_lse.data());
      for (std::int64_t r = 0; r < rows; ++r) {
        std::copy_n(acc.data() + r * dvp, d.value_dim, out + (h * d.queries + i0 + r) * d.value_dim);
        if (lse) lse[h * d.queries + i0 + r] = tile_lse[r];
      }
    }
  });
}

void exact_backward(const Dims& d, const float* q, const float* k, const float* v, const float* out, const float* lse,
                    const float* grad_out, float* grad_q, float* grad_k, float* grad_v, const ExactOptions& o) {
  check_exact(d, o, "exact_backward");
  for (auto [p, name] : {std::pair{q, "q"},
                         {k, "k"},
                         {v, "v"},
                         {out, "out"},
                         {lse, "lse"},
                         {grad_out, "grad_out"},
                         {static_cast<const float*>(grad_q), "grad_q"},
                         {static_cast<const float*>(grad_k), "grad_k"},
                         {static_cast<const float*>(grad_v), "grad_v"}}) {
    check_pointer(p, name, "exact_backward");
  }
  const std::int64_t n = d.queries, m = d.keys, dim = d.dim, dv = d.value_dim;
  const std::int64_t mp = round_up(m, kPanel), dp = round_up(dim, kPanel), dvp = round_up(dv, kPanel);
  const std::int64_t offset = m - n;
  const float scale = resolve_scale(o.scale, dim), score_scale = scale * tiles::kLog2e;
  parallel_for(d.heads, o.threads, [&](std::int64_t begin, std::int64_t end) {
    tiles::BackwardPacks packs;
    Buffer<float> dq(n * dp), dk(kKeyTile * dp), dvt(kKeyTile * dvp), scratch(3 * kQueryTile * kKeyTile);
    Buffer<float> lse2(n), delta(n);
    Buffer<std::int32_t> query_pos(n), key_pos(mp);
    for (std::int64_t i = 0; i < n; ++i) query_pos[i] = static_cast<std::int32_t>(i + offset);
    for (std::int64_t j = 0; j < mp; ++j) key_pos[j] = j < m ? static_cast<std::int32_t>(j) : tiles::kPadding;
    for (std::int64_t h = begin; h < end; ++h) {
      const float* qh = q + h * n * dim;
      const float* kh = k + h * m * dim;
      const float* vh = v + h * m * dv;
      const float* gh = grad_out + h * n * dv;
      for (std::int64_t i = 0; i < n; ++i) {
        delta[i] = tiles::dot(gh + i * dv, out + (h * n + i) * dv, dv);
        lse2[i] = lse[h * n + i] * tiles::kLog2e;
      }
      packs.pack(dim, dv, kh, vh, nullptr, m, mp, qh, gh, nullptr, n, n);
      dq.zero(n * dp);
      for (std::int64_t j0 = 0; j0 < mp; j0 += kKeyTile) {
        const std::int64_t cols = std::min(kKeyTile, mp - j0);
        dk.zero(cols * dp);
        dvt.zero(cols * dvp);
        const std::int64_t first_query = o.causal ? std::max<std::int64_t>(0, j0 - offset) : 0;
        for (std::int64_t i0 = first_query / kQueryTile * kQueryTile; i0 < n; i0 += kQueryTile) {
          const std::int64_t rows = std::min(kQueryTile, n - i0);
          const tiles::BlockMask mask{query_pos.data() + i0, key_pos.data() + j0, o.causal, false};
          const tiles::BackwardOperands op = packs.block(qh, gh, lse2.data(), delta.data(), i0, j0);
          tiles::backward_block(rows, cols, dim, dv, op, score_scale,
                                needs_mask(d, o.causal, i0 + offset, j0, cols) ? &mask : nullptr, dq.data() + i0 * dp,
                                dk.data(), dvt.data(), scratch.data());
        }
        for (std::int64_t j = j0; j < std::min(j0 + cols, m); ++j) {
          for (std::int64_t c = 0; c < dim; ++c) grad_k[(h * m + j) * dim + c] = dk[(j - j0) * dp + c] * scale;
          std::copy_n(dvt.data() + (j - j0) * dvp, dv, grad_v + (h * m + j) * dv);
        }
      }
      for (std::int64_t i = 0; i < n; ++i) {
        for (std::int64_t c = 0; c < dim; ++c) grad_q[(h * n + i) * dim + c] = dq[i * dp + c] * scale;
      }
    }
  });
}

}  // namespace hashmem::attention
