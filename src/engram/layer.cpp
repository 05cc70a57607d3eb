// Engram layer forward and backward (formulas in include/hashmem/engram_layer.hpp). Projections are BLAS GEMMs
// over all tokens at once; the per-token parts (norms, gate, value, conv) are plain loops split over tokens.
// Reductions over tokens (bias, norm and conv-weight gradients) are summed in token order by one thread, so
// results do not depend on the thread count.
#include "hashmem/engram_layer.hpp"

#include <cblas.h>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "common/parallel.hpp"
#include "hashmem/error.hpp"

namespace hashmem::engram {
namespace {

constexpr double kEps1 = 1.1920928955078125e-07;  // float32 epsilon: nn.RMSNorm(eps=None) on float32
constexpr double kEps2 = 1e-5;                    // the ShortConv's RMSNorm

// C[M,N] = alpha·op(A)·op(B) + beta·C, row-major.
void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, float alpha, const float* a, std::int64_t lda,
          const float* b, std::int64_t ldb, float beta, float* c, std::int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, static_cast<int>(m),
              static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta, c,
              static_cast<int>(ldc));
}
void gemm(bool ta, bool tb, std::int64_t m, std::int64_t n, std::int64_t k, double alpha, const double* a,
          std::int64_t lda, const double* b, std::int64_t ldb, double beta, double* c, std::int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans, static_cast<int>(m),
              static_cast<int>(n), static_cast<int>(k), alpha, a, static_cast<int>(lda), b, static_cast<int>(ldb), beta, c,
              static_cast<int>(ldc));
}

template <class T>
T inv_rms(const T* x, std::int64_t n, T eps) {
  T sum = 0;
  for (std::int64_t i = 0; i < n; ++i) sum += x[i] * x[i];
  return T(1) / std::sqrt(sum / static_cast<T>(n) + eps);
}

template <class T>
T sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

// y = RMS(x)·w with inverse RMS r: given dy, adds dx and returns the per-element dw terms in dw_terms.
template <class T>
void rms_backward(const T* x, const T* w, T r, const T* dy, std::int64_t n, T* dx, T* dw_terms) {
  T dot = 0;
  for (std::int64_t i = 0; i < n; ++i) dot += w[i] * dy[i] * x[i];
  const T c = r * r * r * dot / static_cast<T>(n);
  for (std::int64_t i = 0; i < n; ++i) {
    dx[i] += r * w[i] * dy[i] - x[i] * c;
    dw_terms[i] = dy[i] * x[i] * r;
  }
}

}  // namespace

template <class T>
void check_layer(const LayerDims& d, const LayerWeights<T>& w) {
  if (d.batch < 1 || d.seq < 1 || d.hc_mult < 1 || d.hidden < 1 || d.engram_dim < 1) {
    throw Error("Engram layer dims must be >= 1 (batch, seq, hc_mult, hidden, engram_dim)");
  }
  if (d.conv && (d.kernel < 1 || d.dilation < 1)) throw Error("conv kernel and dilation must be >= 1");
  const std::int64_t G = d.hc_mult, H = d.hidden, E = d.engram_dim;
  auto need = [](const std::vector<T>& v, std::int64_t n, const char* name) {
    if (static_cast<std::int64_t>(v.size()) != n) {
      throw Error(std::string("Engram layer weight ") + name + " has " + std::to_string(v.size()) + " values, expected " +
                  std::to_string(n));
    }
  };
  need(w.key_w, d.gate ? G * H * E : 0, "key_w [G,H,E]");
  need(w.value_w, H * E, "value_w [H,E]");
  need(w.norm1, d.gate ? G * H : 0, "norm1 [G,H]");
  need(w.norm2, d.gate ? G * H : 0, "norm2 [G,H]");
  need(w.key_b, d.bias && d.gate ? G * H : 0, "key_b [G,H]");
  need(w.value_b, d.bias ? H : 0, "value_b [H]");
  need(w.conv_norm, d.conv ? G * H : 0, "conv_norm [G,H]");
  need(w.conv_w, d.conv ? G * H * d.kernel : 0, "conv_w [G*H,K]");
}

template <class T>
void layer_forward(const LayerDims& d, const LayerWeightsView<T>& w, const T* h, const T* e, T* out, LayerCache<T>* cache,
                   int threads) {
  const std::int64_t N = d.tokens(), G = d.hc_mult, H = d.hidden, E = d.engram_dim, GH = G * H;
  LayerCache<T> local;
  LayerCache<T>& c = cache ? *cache : local;
  const std::size_t gated = d.gate ? 1 : 0;
  c.key.resize(gated * static_cast<std::size_t>(N * GH));
  c.proj.resize(static_cast<std::size_t>(N * H));
  c.rk.resize(gated * static_cast<std::size_t>(N * G));
  c.rh.resize(gated * static_cast<std::size_t>(N * G));
  c.dot.resize(gated * static_cast<std::size_t>(N * G));
  c.gate.resize(static_cast<std::size_t>(N * G));
  c.rv.assign(d.conv ? static_cast<std::size_t>(N * G) : 0, T(0));
  c.y.assign(d.conv ? static_cast<std::size_t>(N * GH) : 0, T(0));
  if (d.gate) gemm(false, true, N, GH, E, T(1), e, E, w.key_w, E, T(0), c.key.data(), GH);
  gemm(false, true, N, H, E, T(1), e, E, w.value_w, E, T(0), c.proj.data(), H);
  const T inv_sqrt_h = T(1) / std::sqrt(static_cast<T>(H));
  std::vector<T> xn(d.conv ? static_cast<std::size_t>(N * GH) : 0);
  parallel_for(N, threads, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t n = begin; n < end; ++n) {
      T* key = d.gate ? c.key.data() + n * GH : nullptr;
      T* proj = c.proj.data() + n * H;
      if (d.bias) {
        if (d.gate) for (std::int64_t j = 0; j < GH; ++j) key[j] += w.key_b[j];
        for (std::int64_t i = 0; i < H; ++i) proj[i] += w.value_b[i];
      }
      for (std::int64_t g = 0; g < G; ++g) {
        const std::size_t ng = static_cast<std::size_t>(n * G + g);
        T gate = 1;
        if (d.gate) {
          const T* k = key + g * H;
          const T* hh = h + (n * G + g) * H;
          const T* w1 = w.norm1 + g * H;
          const T* w2 = w.norm2 + g * H;
          const T rk = inv_rms(k, H, T(kEps1)), rh = inv_rms(hh, H, T(kEps1));
          T dot = 0;
          for (std::int64_t i = 0; i < H; ++i) dot += (k[i] * rk * w1[i]) * (hh[i] * rh * w2[i]);
          dot *= inv_sqrt_h;
          const T s = std::sqrt(std::max(std::fabs(dot), T(1e-6))) * (dot > 0 ? T(1) : (dot < 0 ? T(-1) : T(0)));
          gate = sigmoid(s);
          c.rk[ng] = rk;
          c.rh[ng] = rh;
          c.dot[ng] = dot;
        }
        c.gate[ng] = gate;
        T* v = out + (n * G + g) * H;
        for (std::int64_t i = 0; i < H; ++i) v[i] = gate * proj[i];
        if (d.conv) {
          const T rv = inv_rms(v, H, T(kEps2));
          c.rv[ng] = rv;
          const T* wn = w.conv_norm + g * H;
          T* x = xn.data() + n * GH + g * H;
          for (std::int64_t i = 0; i < H; ++i) x[i] = v[i] * rv * wn[i];
        }
      }
    }
  });
  if (!d.conv) return;
  const std::int64_t K = d.kernel, T_ = d.seq;
  parallel_for(N, threads, [&](std::int64_t begin, std::int64_t end) {
    for (std::int64_t n = begin; n < end; ++n) {
      const std::int64_t t = n % T_;
      T* y = c.y.data() + n * GH;
      for (std::int64_t k = 0; k < K; ++k) {
        const std::int64_t shift = (K - 1 - k) * d.dilation;
        if (shift > t) continue;
        const T* x = xn.data() + (n - shift) * GH;
        for (std::int64_t ch = 0; ch < GH; ++ch) y[ch] += w.conv_w[ch * K + k] * x[ch];
      }
      T* o = out + n * GH;
      for (std::int64_t ch = 0; ch < GH; ++ch) o[ch] += y[ch] * sigmoid(y[ch]);
    }
  });
}

template <class T>
void layer_backward(const LayerDims& d, const LayerWeightsView<T>& w, const T* h, const T* e, const LayerCache<T>& c,
                    const T* grad_out, T* grad_h, T* grad_e, LayerWeights<T>* gw, int threads) {
  const std::int64_t N = d.tokens(), G = d.hc_mult, H = d.hidden, E = d.engram_dim, GH = G * H, K = d.kernel;
  const T inv_sqrt_h = T(1) / std::sqrt(static_cast<T>(H));
  auto zeros = [](std::vector<T>& v, std::size_t n) { v.assign(n, T(0)); };
  const std::size_t gated = d.gate ? 1 : 0;
  zeros(gw->key_w, gated * static_cast<std::size_t>(GH * E));
  zeros(gw->value_w, static_cast<std::size_t>(H * E));
  zeros(gw->norm1, gated * static_cast<std::size_t>(GH));
  zeros(gw->norm2, gated * static_cast<std::size_t>(GH));
  zeros(gw->key_b, d.bias ? gated * static_cast<std::size_t>(GH) : 0);
  zeros(gw->value_b, d.bias ? static_cast<std::size_t>(H) : 0);
  zeros(gw->conv_norm, d.conv ? static_cast<std::size_t>(GH) : 0);
  zeros(gw->conv_w, d.conv ? static_cast<std::size_t>(GH * K) : 0);

  // value = gate·proj, and (conv) xn = RMS(value)·conv_norm, recomputed from the cache.
  std::vector<T> dvalue(grad_out, grad_out + N * GH);
  std::vector<T> terms(static_cast<std::size_t>(N * GH));  // per-token weight-gradient terms, reduced in order
  if (d.conv) {
    std::vector<T> xn(static_cast<std::size_t>(N * GH)), dy(static_cast<std::size_t>(N * GH));
    parallel_for(N, threads, [&](std::int64_t begin, std::int64_t end) {
      for (std::int64_t n = begin; n < end; ++n) {
        for (std::int64_t g = 0; g < G; ++g) {
          const std::size_t ng = static_cast<std::size_t>(n * G + g);
          for (std::int64_t i = 0; i < H; ++i) {
            const std::size_t at = static_cast<std::size_t>(n * GH + g * H + i);
            xn[at] = c.gate[ng] * c.proj[static_cast<std::size_t>(n * H + i)] * c.rv[ng] * w.conv_norm[g * H + i];
            const T y = c.y[at], s = sigmoid(y);
            dy[at] = grad_out[at] * s * (T(1) + y * (T(1) - s));
          }
        }
      }
    });
    // conv weight: Σ over tokens in order.
    for (std::int64_t n = 0; n < N; ++n) {
      const std::int64_t t = n % d.seq;
      for (std::int64_t k = 0; k < K; ++k) {
        const std::int64_t shift = (K - 1 - k) * d.dilation;
        if (shift > t) continue;
        const T* x = xn.data() + (n - shift) * GH;
        const T* g = dy.data() + n * GH;
        for (std::int64_t ch = 0; ch < GH; ++ch) gw->conv_w[static_cast<std::size_t>(ch * K + k)] += g[ch] * x[ch];
      }
    }
    // dxn[t] = Σ_k w[:,k]·dy[t + shift_k], then the RMSNorm backward into dvalue.
    parallel_for(N, threads, [&](std::int64_t begin, std::int64_t end) {
      std::vector<T> dxn(static_cast<std::size_t>(GH)), v(static_cast<std::size_t>(H));
      for (std::int64_t n = begin; n < end; ++n) {
        const std::int64_t t = n % d.seq;
        std::fill(dxn.begin(), dxn.end(), T(0));
        for (std::int64_t k = 0; k < K; ++k) {
          const std::int64_t shift = (K - 1 - k) * d.dilation;
          if (t + shift >= d.seq) continue;
          const T* g = dy.data() + (n + shift) * GH;
          for (std::int64_t ch = 0; ch < GH; ++ch) dxn[static_cast<std::size_t>(ch)] += w.conv_w[ch * K + k] * g[ch];
        }
        for (std::int64_t g = 0; g < G; ++g) {
          const std::size_t ng = static_cast<std::size_t>(n * G + g);
          for (std::int64_t i = 0; i < H; ++i) v[static_cast<std::size_t>(i)] = c.gate[ng] * c.proj[static_cast<std::size_t>(n * H + i)];
          rms_backward(v.data(), w.conv_norm + g * H, c.rv[ng], dxn.data() + g * H, H,
                       dvalue.data() + n * GH + g * H, terms.data() + n * GH + g * H);
        }
      }
    });
    for (std::int64_t n = 0; n < N; ++n) {
      for (std::int64_t j = 0; j < GH; ++j) gw->conv_norm[static_cast<std::size_t>(j)] += terms[static_cast<std::size_t>(n * GH + j)];
    }
  }

  // value = gate·proj → dgate, dproj; gate → score → the two RMSNorms → dkey, dh.
  std::vector<T> dproj(static_cast<std::size_t>(N * H)), dkey(gated * static_cast<std::size_t>(N * GH));
  std::vector<T> terms2(gated * static_cast<std::size_t>(N * GH));
  parallel_for(N, threads, [&](std::int64_t begin, std::int64_t end) {
    std::vector<T> a(static_cast<std::size_t>(H)), b(static_cast<std::size_t>(H)), da(static_cast<std::size_t>(H)),
        db(static_cast<std::size_t>(H));
    for (std::int64_t n = begin; n < end; ++n) {
      const T* proj = c.proj.data() + n * H;
      T* dp = dproj.data() + n * H;
      for (std::int64_t g = 0; g < G; ++g) {
        const std::size_t ng = static_cast<std::size_t>(n * G + g);
        const T* dv = dvalue.data() + n * GH + g * H;
        T dgate = 0;
        for (std::int64_t i = 0; i < H; ++i) {
          dgate += dv[i] * proj[i];
          dp[i] += dv[i] * c.gate[ng];
        }
        if (!d.gate) continue;  // gate = 1: nothing flows into the key path
        const T gate = c.gate[ng], dot = c.dot[ng];
        const T ds = dgate * gate * (T(1) - gate);
        const T ddot = std::fabs(dot) > T(1e-6) ? ds / (T(2) * std::sqrt(std::fabs(dot))) : T(0);
        const T* k = c.key.data() + n * GH + g * H;
        const T* hh = h + (n * G + g) * H;
        const T* w1 = w.norm1 + g * H;
        const T* w2 = w.norm2 + g * H;
        for (std::int64_t i = 0; i < H; ++i) {
          const auto ii = static_cast<std::size_t>(i);
          a[ii] = k[i] * c.rk[ng] * w1[i];
          b[ii] = hh[i] * c.rh[ng] * w2[i];
        }
        for (std::int64_t i = 0; i < H; ++i) {
          const auto ii = static_cast<std::size_t>(i);
          da[ii] = ddot * b[ii] * inv_sqrt_h;
          db[ii] = ddot * a[ii] * inv_sqrt_h;
        }
        T* dk = dkey.data() + n * GH + g * H;
        rms_backward(k, w1, c.rk[ng], da.data(), H, dk, terms.data() + n * GH + g * H);
        if (grad_h) {
          T* dh = grad_h + (n * G + g) * H;
          std::fill(dh, dh + H, T(0));
          rms_backward(hh, w2, c.rh[ng], db.data(), H, dh, terms2.data() + n * GH + g * H);
        } else {
          std::vector<T> sink(static_cast<std::size_t>(H));
          rms_backward(hh, w2, c.rh[ng], db.data(), H, sink.data(), terms2.data() + n * GH + g * H);
        }
      }
    }
  });
  for (std::int64_t n = 0; n < N; ++n) {
    for (std::int64_t j = 0; j < GH && d.gate; ++j) {
      gw->norm1[static_cast<std::size_t>(j)] += terms[static_cast<std::size_t>(n * GH + j)];
      gw->norm2[static_cast<std::size_t>(j)] += terms2[static_cast<std::size_t>(n * GH + j)];
      if (d.bias) gw->key_b[static_cast<std::size_t>(j)] += dkey[static_cast<std::size_t>(n * GH + j)];
    }
    if (d.bias) {
      for (std::int64_t i = 0; i < H; ++i) gw->value_b[static_cast<std::size_t>(i)] += dproj[static_cast<std::size_t>(n * H + i)];
    }
  }
  if (d.gate) gemm(true, false, GH, E, N, T(1), dkey.data(), GH, e, E, T(0), gw->key_w.data(), E);
  gemm(true, false, H, E, N, T(1), dproj.data(), H, e, E, T(0), gw->value_w.data(), E);
  if (grad_e) {
    if (d.gate) gemm(false, false, N, E, GH, T(1), dkey.data(), GH, w.key_w, E, T(0), grad_e, E);
    gemm(false, false, N, E, H, T(1), dproj.data(), H, w.value_w, E, d.gate ? T(1) : T(0), grad_e, E);
  }
}

template <class T>
LayerWeightsView<T> view_of(const LayerWeights<T>& w) {
  return {w.key_w.data(), w.key_b.data(),  w.value_w.data(),   w.value_b.data(),
          w.norm1.data(), w.norm2.data(), w.conv_norm.data(), w.conv_w.data()};
}

template <class T>
void layer_forward(const LayerDims& d, const LayerWeights<T>& w, const T* h, const T* e, T* out, LayerCache<T>* cache,
                   int threads) {
  check_layer(d, w);
  layer_forward(d, view_of(w), h, e, out, cache, threads);
}

template <class T>
void layer_backward(const LayerDims& d, const LayerWeights<T>& w, const T* h, const T* e, const LayerCache<T>& cache,
                    const T* grad_out, T* grad_h, T* grad_e, LayerWeights<T>* grad_w, int threads) {
  check_layer(d, w);
  layer_backward(d, view_of(w), h, e, cache, grad_out, grad_h, grad_e, grad_w, threads);
}

template void layer_forward(const LayerDims&, const LayerWeightsView<float>&, const float*, const float*, float*,
                            LayerCache<float>*, int);
template void layer_forward(const LayerDims&, const LayerWeightsView<double>&, const double*, const double*, double*,
                            LayerCache<double>*, int);
template void layer_backward(const LayerDims&, const LayerWeightsView<float>&, const float*, const float*,
                             const LayerCache<float>&, const float*, float*, float*, LayerWeights<float>*, int);
template void layer_backward(const LayerDims&, const LayerWeightsView<double>&, const double*, const double*,
                             const LayerCache<double>&, const double*, double*, double*, LayerWeights<double>*, int);
template void check_layer(const LayerDims&, const LayerWeights<float>&);
template void check_layer(const LayerDims&, const LayerWeights<double>&);
template void layer_forward(const LayerDims&, const LayerWeights<float>&, const float*, const float*, float*,
                            LayerCache<float>*, int);
template void layer_forward(const LayerDims&, const LayerWeights<double>&, const double*, const double*, double*,
                            LayerCache<double>*, int);
template void layer_backward(const LayerDims&, const LayerWeights<float>&, const float*, const float*,
                             const LayerCache<float>&, const float*, float*, float*, LayerWeights<float>*, int);
template void layer_backward(const LayerDims&, const LayerWeights<double>&, const double*, const double*,
                             const LayerCache<double>&, const double*, double*, double*, LayerWeights<double>*, int);

LayerCase load_layer_case(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error("cannot read layer case '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  const nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) throw Error("layer case '" + path + "' is not a JSON object");
  auto bad = [&](const std::string& what) { return Error("layer case '" + path + "': " + what); };
  std::function<void(const nlohmann::json&, std::vector<double>&, const std::string&)> flatten =
      [&](const nlohmann::json& v, std::vector<double>& out, const std::string& name) {
        if (v.is_array()) {
          for (const auto& x : v) flatten(x, out, name);
        } else if (v.is_number()) {
          out.push_back(v.get<double>());
        } else {
          throw bad("\"" + name + "\" must hold numbers");
        }
      };
  auto field = [&](const nlohmann::json& obj, const char* key, const std::string& where) -> const nlohmann::json& {
    if (!obj.is_object() || !obj.contains(key)) throw bad("lacks \"" + where + key + "\"");
    return obj.at(key);
  };
  LayerCase c;
  const auto& dims = field(j, "dims", "");
  auto dim = [&](const char* key) {
    const auto& v = field(dims, key, "dims.");
    if (!v.is_number_integer() || v.get<std::int64_t>() < 1) throw bad(std::string("dims.") + key + " must be an integer >= 1");
    return v.get<std::int64_t>();
  };
  c.dims.batch = dim("batch");
  c.dims.seq = dim("seq");
  c.dims.hc_mult = dim("hc_mult");
  c.dims.hidden = dim("hidden");
  c.dims.engram_dim = dim("engram_dim");
  c.dims.kernel = dim("kernel");
  c.dims.dilation = dim("dilation");
  const auto& inputs = field(j, "inputs", "");
  flatten(field(inputs, "hidden", "inputs."), c.hidden, "inputs.hidden");
  flatten(field(inputs, "embeddings", "inputs."), c.embeddings, "inputs.embeddings");
  const auto& weights = field(j, "weights", "");
  auto& w = c.weights;
  std::pair<const char*, std::vector<double>*> names[] = {{"key_w", &w.key_w},     {"key_b", &w.key_b},
                                                          {"value_w", &w.value_w}, {"value_b", &w.value_b},
                                                          {"norm1", &w.norm1},     {"norm2", &w.norm2},
                                                          {"conv_norm", &w.conv_norm}, {"conv_w", &w.conv_w}};
  c.dims.bias = weights.contains("key_b") || weights.contains("value_b");
  c.dims.conv = weights.contains("conv_w") || weights.contains("conv_norm");
  for (auto& [name, out] : names) {
    if (weights.contains(name)) flatten(weights.at(name), *out, std::string("weights.") + name);
  }
  if (j.contains("expected")) flatten(field(j["expected"], "output", "expected."), c.expected, "expected.output");
  const LayerDims& d = c.dims;
  const std::int64_t N = d.tokens();
  if (static_cast<std::int64_t>(c.hidden.size()) != N * d.hc_mult * d.hidden) throw bad("inputs.hidden is not [B,T,G,H]");
  if (static_cast<std::int64_t>(c.embeddings.size()) != N * d.engram_dim) throw bad("inputs.embeddings is not [B,T,E]");
  if (!c.expected.empty() && static_cast<std::int64_t>(c.expected.size()) != N * d.hc_mult * d.hidden) {
    throw bad("expected.output is not [B,T,G,H]");
  }
  try {
    check_layer(d, w);
  } catch (const Error& e) {
    throw bad(e.what());
  }
  return c;
}

}  // namespace hashmem::engram
