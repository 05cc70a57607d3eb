// The exact attention reference: whole score rows, the softmax and its gradient as written in a textbook, in T.
// The tests hold the tiled kernels (exact.cpp) and, through its blocks, LSH against it.
#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "attention/args.hpp"
#include "hashmem/error.hpp"

namespace hashmem::attention {
namespace {

// The probabilities of row i of head h: p[0..visible) (keys past `visible` are masked).
template <class T>
std::int64_t probabilities(const Dims& d, const T* q, const T* k, std::int64_t h, std::int64_t i, bool causal, T scale,
                           std::vector<T>& p, T* lse) {
  const std::int64_t visible = causal ? i + d.keys - d.queries + 1 : d.keys;
  p.assign(static_cast<std::size_t>(visible), T(0));
  T best = -std::numeric_limits<T>::infinity();
  for (std::int64_t j = 0; j < visible; ++j) {
    T s = 0;
    for (std::int64_t c = 0; c < d.dim; ++c) s += q[(h * d.queries + i) * d.dim + c] * k[(h * d.keys + j) * d.dim + c];
    p[static_cast<std::size_t>(j)] = s * scale;
    best = std::max(best, p[static_cast<std::size_t>(j)]);
  }
  T sum = 0;
  for (auto& x : p) sum += (x = std::exp(x - best));
  for (auto& x : p) x /= sum;
  if (lse) *lse = best + std::log(sum);
  return visible;
}

template <class T>
void check_reference(const Dims& d, const ExactOptions& o, const char* method) {
  check_dims(d, method);
  if (o.causal && d.keys < d.queries)
    throw Error(std::string(method) + ": a causal mask needs dims.keys >= dims.queries");
}

}  // namespace

template <class T>
void exact_reference_forward(const Dims& d, const T* q, const T* k, const T* v, T* out, T* lse, const ExactOptions& o) {
  check_reference<T>(d, o, "exact_reference_forward");
  const T scale = static_cast<T>(o.scale > 0 ? o.scale : 1.0 / std::sqrt(static_cast<double>(d.dim)));
  std::vector<T> p;
  for (std::int64_t h = 0; h < d.heads; ++h) {
    for (std::int64_t i = 0; i < d.queries; ++i) {
      T row_lse;
      const std::int64_t visible = probabilities(d, q, k, h, i, o.causal, scale, p, &row_lse);
      T* o_row = out + (h * d.queries + i) * d.value_dim;
      std::fill_n(o_row, d.value_dim, T(0));
      for (std::int64_t j = 0; j < visible; ++j) {
        for (std::int64_t c = 0; c < d.value_dim; ++c)
          o_row[c] += p[static_cast<std::size_t>(j)] * v[(h * d.keys + j) * d.value_dim + c];
      }
      if (lse) lse[h * d.queries + i] = row_lse;
    }
  }
}

template <class T>
void exact_reference_backward(const Dims& d, const T* q, const T* k, const T* v, const T* grad_out, T* grad_q,
                              T* grad_k, T* grad_v, const ExactOptions& o) {
  check_reference<T>(d, o, "exact_reference_backward");
  const T scale = static_cast<T>(o.scale > 0 ? o.scale : 1.0 / std::sqrt(static_cast<double>(d.dim)));
  std::fill_n(grad_q, d.heads * d.queries * d.dim, T(0));
  std::fill_n(grad_k, d.heads * d.keys * d.dim, T(0));
  std::fill_n(grad_v, d.heads * d.keys * d.value_dim, T(0));
  std::vector<T> p, dp;
  for (std::int64_t h = 0; h < d.heads; ++h) {
    for (std::int64_t i = 0; i < d.queries; ++i) {
      const std::int64_t visible = probabilities<T>(d, q, k, h, i, o.causal, scale, p, nullptr);
      const T* g = grad_out + (h * d.queries + i) * d.value_dim;
      dp.assign(static_cast<std::size_t>(visible), T(0));
      T delta = 0;
      for (std::int64_t j = 0; j < visible; ++j) {
        T s = 0;
        for (std::int64_t c = 0; c < d.value_dim; ++c) s += g[c] * v[(h * d.keys + j) * d.value_dim + c];
        dp[static_cast<std::size_t>(j)] = s;
        delta += p[static_cast<std::size_t>(j)] * s;
      }
      for (std::int64_t j = 0; j < visible; ++j) {
        const T pj = p[static_cast<std::size_t>(j)];
        const T ds = pj * (dp[static_cast<std::size_t>(j)] - delta) * scale;
        for (std::int64_t c = 0; c < d.value_dim; ++c) grad_v[(h * d.keys + j) * d.value_dim + c] += pj * g[c];
        for (std::int64_t c = 0; c < d.dim; ++c) {
          grad_q[(h * d.queries + i) * d.dim + c] += ds * k[(h * d.keys + j) * d.dim + c];
          grad_k[(h * d.keys + j) * d.dim + c] += ds * q[(h * d.queries + i) * d.dim + c];
        }
      }
    }
  }
}

template void exact_reference_forward<float>(const Dims&, const float*, const float*, const float*, float*, float*,
                                             const ExactOptions&);
template void exact_reference_forward<double>(const Dims&, const double*, const double*, const double*, double*,
                                              double*, const ExactOptions&);
template void exact_reference_backward<float>(const Dims&, const float*, const float*, const float*, const float*,
                                              float*, float*, float*, const ExactOptions&);
template void exact_reference_backward<double>(const Dims&, const double*, const double*, const double*, const double*,
                                               double*, double*, double*, const ExactOptions&);

}  // namespace hashmem::attention
