// LSH attention (Reformer), forward and backward (definition in include/hashmem/attention.hpp).
//
// Per head and round: hash every position, counting-sort by (bucket, position), lay the sorted positions out
// in chunks padded to the GEMM panel width ("slots"), and run each chunk against itself and the previous chunk
// with the block kernels of exact attention, masks given by the slots' positions. Rounds are merged into the
// output as they finish (log-sum-exp weights), so memory is O(n·d) per head whatever the number of rounds.
// Backward uses the merged log-sum-exp: the output is one softmax over every (round, key) pair a query saw, so
// each round's blocks contribute P = exp(s − lse) exactly as in exact attention.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "attention/args.hpp"
#include "attention/projections.hpp"
#include "attention/tiles.hpp"
#include "common/parallel.hpp"
#include "hashmem/error.hpp"

namespace hashmem::attention {
namespace {

constexpr float kNormEps = 1e-6f;  // keys shorter than this are divided by it instead of by their length
constexpr std::int64_t kHashBlock = 256;

void check_lsh(const Dims& d, const LshOptions& o, const char* method) {
  check_self_attention(d, method);
  check_rounds(o.rounds, method);
  if (o.chunk < 1) {
    throw Error(std::string(method) + ": chunk must be >= 1, got " + std::to_string(o.chunk));
  }
  if (o.buckets != 0 && (o.buckets < 2 || o.buckets % 2 != 0 || o.buckets > (std::int64_t{1} << 30))) {
    throw Error(std::string(method) + ": buckets must be 0 (automatic) or even in [2, 2^30], got " +
                std::to_string(o.buckets));
  }
}

// What every head of a call shares: sizes, the bucket count and its factorisation, and the rotations.
struct LshPlan {
  std::int64_t n, dim, chunk, chunks, padded_chunk, slots, buckets;
  std::vector<std::int64_t> factors;  // buckets = Π factors
  std::vector<Projection> rotations;  // [round · factors.size() + f]: [dim, factors[f] / 2]

  LshPlan(const Dims& d, const LshOptions& o)
      : n(d.queries),
        dim(d.dim),
        chunk(std::min(o.chunk, d.queries)),
        chunks((n + chunk - 1) / chunk),
        padded_chunk(tiles::round_up(chunk, tiles::kPanel)),
        slots(chunks * padded_chunk),
        buckets(o.buckets) {
    if (buckets == 0) {
      buckets = 2;
      while (buckets < 2 * chunks) buckets *= 2;
    }
    // A power of two above 64 is hashed as two rotations of √b buckets each (Reformer's factorisation):
    // the same number of buckets for O(d·√b) work per key instead of O(d·b).
    if ((buckets & (buckets - 1)) == 0 && buckets > 64) {
      const int log2 = __builtin_ctzll(static_cast<unsigned long long>(buckets));
      factors = {std::int64_t{1} << (log2 / 2), std::int64_t{1} << (log2 - log2 / 2)};
    } else {
      factors = {buckets};
    }
    for (int r = 0; r < o.rounds; ++r) {
      for (std::size_t f = 0; f < factors.size(); ++f) {
        rotations.emplace_back(o.seed, static_cast<std::uint64_t>(r) * 2 + f, dim, factors[f] / 2);
      }
    }
  }

  std::int64_t rows_in_chunk(std::int64_t c) const { return std::min(chunk, n - c * chunk); }
  // The key slots chunk c attends: the previous chunk and its own.
  std::int64_t key_start(std::int64_t c) const { return c > 0 ? (c - 1) * padded_chunk : 0; }
  std::int64_t key_cols(std::int64_t c) const { return c > 0 ? 2 * padded_chunk : padded_chunk; }

  // buckets[i] of the n rows of x for `round`: argmax([xR; −xR]) per factor, combined in mixed radix.
  void hash(int round, const float* x, std::int32_t* out, tiles::Buffer<float>& projected) const {
    std::fill_n(out, n, 0);
    for (std::size_t f = 0; f < factors.size(); ++f) {
      const Projection& rotation = rotations[static_cast<std::size_t>(round) * factors.size() + f];
      const std::int64_t half = factors[f] / 2, width = rotation.padded_cols();
      projected.resize(kHashBlock * width);
      for (std::int64_t i0 = 0; i0 < n; i0 += kHashBlock) {
        const std::int64_t rows = std::min(kHashBlock, n - i0);
        rotation.apply(rows, x + i0 * dim, dim, projected.data());
        for (std::int64_t r = 0; r < rows; ++r) {
          const float* p = projected.data() + r * width;
          float best = p[0];
          std::int64_t arg = 0;
          for (std::int64_t i = 1; i < half; ++i) {
            if (p[i] > best) best = p[i], arg = i;
          }
          for (std::int64_t i = 0; i < half; ++i) {
            if (-p[i] > best) best = -p[i], arg = half + i;
          }
          out[i0 + r] = static_cast<std::int32_t>(out[i0 + r] * factors[f] + arg);
        }
      }
    }
  }

  // Stable counting sort by bucket: slot_pos[slot] = position, kPadding in the chunks' padding.
  void sort(const std::int32_t* bucket, std::int32_t* slot_pos, tiles::Buffer<std::int64_t>& counts) const {
    counts.zero(buckets + 1);
    for (std::int64_t i = 0; i < n; ++i) ++counts[bucket[i] + 1];
    for (std::int64_t b = 0; b < buckets; ++b) counts[b + 1] += counts[b];
    std::fill_n(slot_pos, slots, tiles::kPadding);
    for (std::int64_t i = 0; i < n; ++i) {
      const std::int64_t rank = counts[bucket[i]]++;
      slot_pos[rank / chunk * padded_chunk + rank % chunk] = static_cast<std::int32_t>(i);
    }
  }
};

// kn = x / max(‖x‖, eps) row by row; norms receive max(‖x‖, eps).
void normalise_rows(std::int64_t n, std::int64_t dim, const float* x, float* kn, float* norms) {
  for (std::int64_t i = 0; i < n; ++i) {
    const float norm = std::max(std::sqrt(tiles::dot(x + i * dim, x + i * dim, dim)), kNormEps);
    norms[i] = norm;
    for (std::int64_t c = 0; c < dim; ++c) kn[i * dim + c] = x[i * dim + c] / norm;
  }
}

// Rows of x in slot order (padding rows left as they are: no GEMM reads them).
void gather_rows(std::int64_t slots, std::int64_t width, const float* x, const std::int32_t* slot_pos, float* out) {
  for (std::int64_t s = 0; s < slots; ++s) {
    if (slot_pos[s] != tiles::kPadding) std::copy_n(x + slot_pos[s] * width, width, out + s * width);
  }
}

}  // namespace

void lsh_buckets(const Dims& d, const float* qk, const LshOptions& o, std::int32_t* buckets) {
  check_lsh(d, o, "lsh_buckets");
  check_pointer(qk, "qk", "lsh_buckets");
  const LshPlan plan(d, o);
  tiles::Buffer<float> projected;
  for (int r = 0; r < o.rounds; ++r) {
    for (std::int64_t h = 0; h < d.heads; ++h) {
      plan.hash(r, qk + h * d.queries * d.dim, buckets + (r * d.heads + h) * d.queries, projected);
    }
  }
}

void lsh_forward(const Dims& d, const float* qk, const float* v, float* out, float* lse, const LshOptions& o) {
  check_lsh(d, o, "lsh_forward");
  for (auto [p, name] : {std::pair{qk, "qk"}, {v, "v"}, {static_cast<const float*>(out), "out"}}) {
    check_pointer(p, name, "lsh_forward");
  }
  const LshPlan plan(d, o);
  const std::int64_t n = d.queries, dim = d.dim, dv = d.value_dim, dvp = tiles::round_up(dv, tiles::kPanel);
  const std::int64_t slots = plan.slots, pc = plan.padded_chunk;
  const float score_scale = resolve_scale(o.scale, dim) * tiles::kLog2e;
  parallel_for(d.heads, o.threads, [&](std::int64_t begin, std::int64_t end) {
    tiles::Buffer<float> kn(n * dim), norms(n), qs(slots * dim), kt(slots * dim), vp(slots * dvp), projected;
    tiles::Buffer<float> scores(pc * 2 * pc), alpha(pc), row_max(pc), row_sum(pc), acc(pc * dvp), chunk_lse(pc),
        merged_lse(n);
    tiles::Buffer<std::int32_t> bucket(n), slot_pos(slots);
    tiles::Buffer<std::int64_t> counts;
    for (std::int64_t h = begin; h < end; ++h) {
      const float* x = qk + h * n * dim;
      const float* vh = v + h * n * dv;
      float* oh = out + h * n * dv;
      float* lh = lse ? lse + h * n : merged_lse.data();
      normalise_rows(n, dim, x, kn.data(), norms.data());
      for (int r = 0; r < o.rounds; ++r) {
        plan.hash(r, x, bucket.data(), projected);
        plan.sort(bucket.data(), slot_pos.data(), counts);
        gather_rows(slots, dim, x, slot_pos.data(), qs.data());
        tiles::pack_transposed(kn.data(), dim, slot_pos.data(), slots, slots, dim, kt.data());
        tiles::pack_rows(vh, dv, slot_pos.data(), slots, slots, dv, vp.data());
        for (std::int64_t c = 0; c < plan.chunks; ++c) {
          const std::int64_t rows = plan.rows_in_chunk(c), start = plan.key_start(c);
          const tiles::RowState state{row_max.data(), row_sum.data(), acc.data(), dvp};
          const tiles::BlockMask mask{slot_pos.data() + c * pc, slot_pos.data() + start, o.causal, true};
          tiles::start_rows(rows, dvp, state);
          tiles::forward_block(rows, plan.key_cols(c), dim, dvp, qs.data() + c * pc * dim, dim,
                               tiles::Panels{kt.data() + start * dim, tiles::kPanel * dim},
                               tiles::Panels{vp.data() + start * tiles::kPanel, slots * tiles::kPanel}, score_scale,
                               &mask, state, scores.data(), alpha.data());
          tiles::finish_rows(rows, dvp, state, chunk_lse.data());
          for (std::int64_t i = 0; i < rows; ++i) {
            const std::int64_t p = slot_pos[c * pc + i];
            const float* o_round = acc.data() + i * dvp;
            float* o_total = oh + p * dv;
            if (r == 0) {
              std::copy_n(o_round, dv, o_total);
              lh[p] = chunk_lse[i];
              continue;
            }
            // Weights from the difference alone: lse near the self score (−1e5) has a coarse ulp, and
            // exp(lse − merged) would carry that rounding into the weights.
            const float diff = chunk_lse[i] - lh[p];
            const float w_round = 1.0f / (1.0f + std::exp(-diff)), w_total = 1.0f / (1.0f + std::exp(diff));
            const float merged = std::max(lh[p], chunk_lse[i]) + std::log1p(std::exp(-std::abs(diff)));
            for (std::int64_t col = 0; col < dv; ++col) o_total[col] = o_total[col] * w_total + o_round[col] * w_round;
            lh[p] = merged;
          }
        }
      }
    }
  });
}

void lsh_backward(const Dims& d, const float* qk, const float* v, const float* out, const float* lse,
                  const float* grad_out, float* grad_qk, float* grad_v, const LshOptions& o) {
  check_lsh(d, o, "lsh_backward");
  for (auto [p, name] : {std::pair{qk, "qk"},
                         {v, "v"},
                         {out, "out"},
                         {lse, "lse"},
                         {grad_out, "grad_out"},
                         {static_cast<const float*>(grad_qk), "grad_qk"},
                         {static_cast<const float*>(grad_v), "grad_v"}}) {
    check_pointer(p, name, "lsh_backward");
  }
  const LshPlan plan(d, o);
  const std::int64_t n = d.queries, dim = d.dim, dv = d.value_dim;
  const std::int64_t dp = tiles::round_up(dim, tiles::kPanel), dvp = tiles::round_up(dv, tiles::kPanel),
                     slots = plan.slots, pc = plan.padded_chunk;
  const float scale = resolve_scale(o.scale, dim), score_scale = scale * tiles::kLog2e;
  parallel_for(d.heads, o.threads, [&](std::int64_t begin, std::int64_t end) {
    tiles::Buffer<float> kn(n * dim), norms(n), lse2(n), delta(n), projected;
    tiles::Buffer<float> qs(slots * dim), dos(slots * dv), lse2s(slots), deltas(slots);
    tiles::BackwardPacks packs;
    tiles::Buffer<float> dq_s(slots * dp), dk_s(slots * dp), dv_s(slots * dvp), scratch(3 * pc * 2 * pc);
    tiles::Buffer<float> gq(n * dim), gk(n * dim), gv(n * dv);
    tiles::Buffer<std::int32_t> bucket(n), slot_pos(slots);
    tiles::Buffer<std::int64_t> counts;
    for (std::int64_t h = begin; h < end; ++h) {
      const float* x = qk + h * n * dim;
      const float* vh = v + h * n * dv;
      const float* gh = grad_out + h * n * dv;
      normalise_rows(n, dim, x, kn.data(), norms.data());
      for (std::int64_t i = 0; i < n; ++i) {
        lse2[i] = lse[h * n + i] * tiles::kLog2e;
        delta[i] = tiles::dot(gh + i * dv, out + (h * n + i) * dv, dv);
      }
      gq.zero(n * dim);
      gk.zero(n * dim);
      gv.zero(n * dv);
      for (int r = 0; r < o.rounds; ++r) {
        plan.hash(r, x, bucket.data(), projected);
        plan.sort(bucket.data(), slot_pos.data(), counts);
        gather_rows(slots, dim, x, slot_pos.data(), qs.data());
        gather_rows(slots, dv, gh, slot_pos.data(), dos.data());
        gather_rows(slots, 1, lse2.data(), slot_pos.data(), lse2s.data());
        gather_rows(slots, 1, delta.data(), slot_pos.data(), deltas.data());
        packs.pack(dim, dv, kn.data(), vh, slot_pos.data(), slots, slots, x, gh, slot_pos.data(), slots, slots);
        dq_s.zero(slots * dp);
        dk_s.zero(slots * dp);
        dv_s.zero(slots * dvp);
        for (std::int64_t c = 0; c < plan.chunks; ++c) {
          const std::int64_t rows = plan.rows_in_chunk(c), start = plan.key_start(c), q0 = c * pc;
          const tiles::BlockMask mask{slot_pos.data() + q0, slot_pos.data() + start, o.causal, true};
          const tiles::BackwardOperands op = packs.block(qs.data(), dos.data(), lse2s.data(), deltas.data(), q0, start);
          tiles::backward_block(rows, plan.key_cols(c), dim, dv, op, score_scale, &mask, dq_s.data() + q0 * dp,
                                dk_s.data() + start * dp, dv_s.data() + start * dvp, scratch.data());
        }
        for (std::int64_t s = 0; s < slots; ++s) {
          const std::int64_t p = slot_pos[s];
          if (p == tiles::kPadding) continue;
          for (std::int64_t c = 0; c < dim; ++c) {
            gq[p * dim + c] += dq_s[s * dp + c];
            gk[p * dim + c] += dk_s[s * dp + c];
          }
          for (std::int64_t c = 0; c < dv; ++c) gv[p * dv + c] += dv_s[s * dvp + c];
        }
      }
      // qk is the query itself and, normalised, the key: d(x/‖x‖) = (g − x̂ (x̂·g)) / ‖x‖.
      for (std::int64_t i = 0; i < n; ++i) {
        const float* g = gk.data() + i * dim;
        const float* kh = kn.data() + i * dim;
        const bool clamped = norms[i] <= kNormEps;
        const float along = clamped ? 0.0f : tiles::dot(kh, g, dim);
        float* dx = grad_qk + (h * n + i) * dim;
        for (std::int64_t c = 0; c < dim; ++c) dx[c] = scale * (gq[i * dim + c] + (g[c] - kh[c] * along) / norms[i]);
      }
      std::copy_n(gv.data(), n * dv, grad_v + h * n * dv);
    }
  });
}

std::vector<std::vector<std::int64_t>> lsh_attended_keys(const Dims& d, const float* qk, const LshOptions& o,
                                                         std::int64_t head, const std::vector<std::int64_t>& queries) {
  check_lsh(d, o, "lsh_attended_keys");
  if (head < 0 || head >= d.heads) throw Error("lsh_attended_keys: head " + std::to_string(head) + " out of range");
  const LshPlan plan(d, o);
  const std::int64_t n = d.queries;
  std::vector<std::vector<std::int64_t>> keys(queries.size());
  tiles::Buffer<float> projected;
  std::vector<std::int32_t> bucket(static_cast<std::size_t>(n));
  std::vector<std::int64_t> order(static_cast<std::size_t>(n)), rank(static_cast<std::size_t>(n));
  for (int r = 0; r < o.rounds; ++r) {
    plan.hash(r, qk + head * n * d.dim, bucket.data(), projected);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](std::int64_t a, std::int64_t b) { return bucket[a] < bucket[b]; });
    for (std::int64_t s = 0; s < n; ++s) rank[order[s]] = s;
    for (std::size_t qi = 0; qi < queries.size(); ++qi) {
      const std::int64_t i = queries[qi];
      if (i < 0 || i >= n) throw Error("lsh_attended_keys: query " + std::to_string(i) + " out of range");
      const std::int64_t c = rank[i] / plan.chunk;
      const std::int64_t first = std::max<std::int64_t>(0, (c - 1) * plan.chunk),
                         last = std::min(n, (c + 1) * plan.chunk);
      for (std::int64_t s = first; s < last; ++s) {
        if (!o.causal || order[s] <= i) keys[qi].push_back(order[s]);
      }
    }
  }
  return keys;
}

template <class T>
void lsh_reference_forward(const Dims& d, const float* qk, const float* v, T* out, const LshOptions& o) {
  check_lsh(d, o, "lsh_reference_forward");
  const std::int64_t n = d.queries, dim = d.dim, dv = d.value_dim;
  const T scale = static_cast<T>(resolve_scale(o.scale, dim));
  std::vector<std::int64_t> all(static_cast<std::size_t>(n));
  std::iota(all.begin(), all.end(), 0);
  for (std::int64_t h = 0; h < d.heads; ++h) {
    const auto keys = lsh_attended_keys(d, qk, o, h, all);
    const float* x = qk + h * n * dim;
    for (std::int64_t i = 0; i < n; ++i) {
      std::vector<T> s;
      T best = -std::numeric_limits<T>::infinity();
      for (std::int64_t j : keys[static_cast<std::size_t>(i)]) {
        T dot = 0, norm = 0;
        for (std::int64_t c = 0; c < dim; ++c) {
          dot += static_cast<T>(x[i * dim + c]) * static_cast<T>(x[j * dim + c]);
          norm += static_cast<T>(x[j * dim + c]) * static_cast<T>(x[j * dim + c]);
        }
        s.push_back(j == i ? static_cast<T>(tiles::kSelfScore)
                           : scale * dot / std::max(std::sqrt(norm), static_cast<T>(kNormEps)));
        best = std::max(best, s.back());
      }
      T sum = 0;
      for (auto& e : s) sum += (e = std::exp(e - best));
      T* o_row = out + (h * n + i) * dv;
      std::fill_n(o_row, dv, T(0));
      for (std::size_t t = 0; t < s.size(); ++t) {
        const std::int64_t j = keys[static_cast<std::size_t>(i)][t];
        for (std::int64_t c = 0; c < dv; ++c) o_row[c] += s[t] / sum * static_cast<T>(v[(h * n + j) * dv + c]);
      }
    }
  }
}

template void lsh_reference_forward<float>(const Dims&, const float*, const float*, float*, const LshOptions&);
template void lsh_reference_forward<double>(const Dims&, const float*, const float*, double*, const LshOptions&);

}  // namespace hashmem::attention
