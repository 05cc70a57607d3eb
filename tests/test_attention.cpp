// Attention: the tiled exact kernel, LSH, hash buckets and signature top-k, each against its plain reference.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <xxhash.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>
#include <set>

#include "hashmem/attention.hpp"
#include "hashmem/error.hpp"
#include "hashmem/sha256.hpp"
#include "test_util.hpp"

namespace hashmem::attention {
namespace {

std::vector<float> random_vector(std::int64_t n, std::uint64_t seed, float sd = 1.0f) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, sd);
  std::vector<float> x(static_cast<std::size_t>(n));
  for (auto& v : x) v = normal(rng);
  return x;
}

std::vector<double> to_double(const std::vector<float>& x) { return {x.begin(), x.end()}; }

// max |a − b| / (1 + max |b|)
template <class A, class B>
double relative_error(const std::vector<A>& a, const std::vector<B>& b) {
  double worst = 0, scale = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    worst = std::max(worst, std::abs(static_cast<double>(a[i]) - static_cast<double>(b[i])));
    scale = std::max(scale, std::abs(static_cast<double>(b[i])));
  }
  return worst / (1 + scale);
}

// Relative L2 error ‖a − b‖ / ‖b‖.
template <class A, class B>
double relative_l2(const std::vector<A>& a, const std::vector<B>& b) {
  double num = 0, den = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double diff = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    num += diff * diff;
    den += static_cast<double>(b[i]) * static_cast<double>(b[i]);
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

// "n7_d5_causal": a parameterised test's name from its sizes.
std::string case_name(std::initializer_list<std::pair<const char*, std::int64_t>> sizes, bool causal) {
  std::string name;
  for (const auto& [label, value] : sizes) {
    name.append(label).append(std::to_string(value)).append("_");
  }
  return name.append(causal ? "causal" : "full");
}

struct Problem {
  Dims dims;
  std::vector<float> q, k, v;
};

Problem random_problem(std::int64_t heads, std::int64_t n, std::int64_t m, std::int64_t d, std::int64_t dv,
                       std::uint64_t seed, float sd = 1.0f) {
  Problem p;
  p.dims = {heads, n, m, d, dv};
  p.q = random_vector(heads * n * d, seed, sd);
  p.k = random_vector(heads * m * d, seed + 1, sd);
  p.v = random_vector(heads * m * dv, seed + 2);
  return p;
}

// Clustered tokens: each is one of `clusters` unit directions times `radius` plus Gaussian noise, the layout
// where LSH works (similar keys hash together). label[t] is the cluster of token t.
struct Clustered {
  std::vector<float> x;
  std::vector<std::int64_t> label;
};

Clustered clustered_tokens(std::int64_t heads, std::int64_t n, std::int64_t d, std::int64_t clusters, float radius,
                           float noise, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> centres(static_cast<std::size_t>(clusters * d));
  for (auto& c : centres) c = normal(rng);
  for (std::int64_t c = 0; c < clusters; ++c) {
    double norm = 0;
    for (std::int64_t i = 0; i < d; ++i) norm += centres[c * d + i] * centres[c * d + i];
    for (std::int64_t i = 0; i < d; ++i) centres[c * d + i] *= radius / static_cast<float>(std::sqrt(norm));
  }
  Clustered out;
  out.x.resize(static_cast<std::size_t>(heads * n * d));
  for (std::int64_t t = 0; t < heads * n; ++t) {
    const std::int64_t c = static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(clusters));
    out.label.push_back(c);
    for (std::int64_t i = 0; i < d; ++i) out.x[t * d + i] = centres[c * d + i] + noise * normal(rng);
  }
  return out;
}

std::vector<float> clustered(std::int64_t heads, std::int64_t n, std::int64_t d, std::int64_t clusters, float radius,
                             float noise, std::uint64_t seed) {
  return clustered_tokens(heads, n, d, clusters, radius, noise, seed).x;
}

// ---- exact ----

struct ExactCase {
  std::int64_t n, m, d;
  bool causal;
};

class AttentionExact : public ::testing::TestWithParam<ExactCase> {};

TEST_P(AttentionExact, ForwardAndBackwardMatchTheDoubleReference) {
  const auto c = GetParam();
  const std::int64_t heads = 2, dv = c.d + 3;
  Problem p = random_problem(heads, c.n, c.m, c.d, dv, 10 + c.n + c.d, 1.5f);
  const ExactOptions o{c.causal, 0, 2};
  std::vector<float> out(heads * c.n * dv), lse(heads * c.n);
  exact_forward(p.dims, p.q.data(), p.k.data(), p.v.data(), out.data(), lse.data(), o);
  std::vector<double> ref(out.size()), ref_lse(lse.size());
  const auto qd = to_double(p.q), kd = to_double(p.k), vd = to_double(p.v);
  exact_reference_forward<double>(p.dims, qd.data(), kd.data(), vd.data(), ref.data(), ref_lse.data(), o);
  EXPECT_LT(relative_error(out, ref), 1e-5);
  EXPECT_LT(relative_error(lse, ref_lse), 1e-5);

  const auto grad_out = random_vector(heads * c.n * dv, 99);
  std::vector<float> gq(p.q.size()), gk(p.k.size()), gv(p.v.size());
  exact_backward(p.dims, p.q.data(), p.k.data(), p.v.data(), out.data(), lse.data(), grad_out.data(), gq.data(),
                 gk.data(), gv.data(), o);
  std::vector<double> rq(gq.size()), rk(gk.size()), rv(gv.size());
  const auto gd = to_double(grad_out);
  exact_reference_backward<double>(p.dims, qd.data(), kd.data(), vd.data(), gd.data(), rq.data(), rk.data(), rv.data(),
                                   o);
  EXPECT_LT(relative_error(gq, rq), 1e-5);
  EXPECT_LT(relative_error(gk, rk), 1e-5);
  EXPECT_LT(relative_error(gv, rv), 1e-5);
}

std::vector<ExactCase> exact_cases() {
  std::vector<ExactCase> cases;
  for (std::int64_t n : {1, 3, 7, 33, 130}) {  // n <= 4 takes the decoding path
    for (std::int64_t d : {1, 5, 64}) {
      for (bool causal : {false, true}) {
        cases.push_back({n, n, d, causal});
        cases.push_back({n, n + 300, d, causal});  // more keys than queries: the causal diagonal shifts
      }
    }
  }
  cases.push_back({300, 300, 128, true});  // several query and key tiles
  return cases;
}

INSTANTIATE_TEST_SUITE_P(AttentionOddSizes, AttentionExact, ::testing::ValuesIn(exact_cases()),
                         [](const ::testing::TestParamInfo<ExactCase>& info) {
                           const auto& c = info.param;
                           return case_name({{"n", c.n}, {"m", c.m}, {"d", c.d}}, c.causal);
                         });

TEST(AttentionExactMask, CausalPositionZeroSeesOnlyItself) {
  Problem p = random_problem(1, 17, 17, 8, 8, 5);
  std::vector<float> out(17 * 8);
  exact_forward(p.dims, p.q.data(), p.k.data(), p.v.data(), out.data(), nullptr, {true, 0, 1});
  for (int c = 0; c < 8; ++c) EXPECT_NEAR(out[c], p.v[c], 1e-6);
  // Changing later keys and values leaves the earlier outputs as they were.
  Problem changed = p;
  for (std::size_t i = 8 * 8; i < changed.k.size(); ++i) changed.k[i] += 3.0f, changed.v[i] -= 2.0f;
  std::vector<float> out2(out.size());
  exact_forward(changed.dims, changed.q.data(), changed.k.data(), changed.v.data(), out2.data(), nullptr, {true, 0, 1});
  for (int i = 0; i < 8 * 8; ++i) EXPECT_EQ(out[i], out2[i]);
}

TEST(AttentionExactGradient, ReferenceBackwardMatchesFiniteDifferences) {
  const Dims d{1, 6, 6, 4, 3};
  const auto q = to_double(random_vector(24, 1)), k = to_double(random_vector(24, 2)),
             v = to_double(random_vector(18, 3));
  const auto g = to_double(random_vector(18, 4));
  for (bool causal : {false, true}) {
    const ExactOptions o{causal, 0, 1};
    std::vector<double> gq(24), gk(24), gv(18);
    exact_reference_backward<double>(d, q.data(), k.data(), v.data(), g.data(), gq.data(), gk.data(), gv.data(), o);
    auto loss = [&](const std::vector<double>& qq, const std::vector<double>& kk, const std::vector<double>& vv) {
      std::vector<double> out(18);
      exact_reference_forward<double>(d, qq.data(), kk.data(), vv.data(), out.data(), nullptr, o);
      return std::inner_product(out.begin(), out.end(), g.begin(), 0.0);
    };
    const double h = 1e-6;
    auto check = [&](std::vector<double> x, const std::vector<double>& grad, int which) {
      for (std::size_t i = 0; i < x.size(); ++i) {
        auto plus = x, minus = x;
        plus[i] += h;
        minus[i] -= h;
        const double fd = which == 0   ? (loss(plus, k, v) - loss(minus, k, v)) / (2 * h)
                          : which == 1 ? (loss(q, plus, v) - loss(q, minus, v)) / (2 * h)
                                       : (loss(q, k, plus) - loss(q, k, minus)) / (2 * h);
        EXPECT_NEAR(grad[i], fd, 1e-7) << "input " << which << " element " << i;
      }
    };
    check(q, gq, 0);
    check(k, gk, 1);
    check(v, gv, 2);
  }
}

TEST(AttentionExactThreads, ResultsDoNotDependOnTheThreadCount) {
  Problem p = random_problem(3, 200, 200, 32, 32, 7);
  std::vector<float> a(3 * 200 * 32), b(a.size()), la(600), lb(600);
  exact_forward(p.dims, p.q.data(), p.k.data(), p.v.data(), a.data(), la.data(), {true, 0, 1});
  exact_forward(p.dims, p.q.data(), p.k.data(), p.v.data(), b.data(), lb.data(), {true, 0, 2});
  EXPECT_EQ(a, b);
  std::vector<float> g = random_vector(a.size(), 8), q1(p.q.size()), k1(p.k.size()), v1(p.v.size());
  std::vector<float> q2(q1.size()), k2(k1.size()), v2(v1.size());
  exact_backward(p.dims, p.q.data(), p.k.data(), p.v.data(), a.data(), la.data(), g.data(), q1.data(), k1.data(),
                 v1.data(), {true, 0, 1});
  exact_backward(p.dims, p.q.data(), p.k.data(), p.v.data(), a.data(), la.data(), g.data(), q2.data(), k2.data(),
                 v2.data(), {true, 0, 2});
  EXPECT_EQ(q1, q2);
  EXPECT_EQ(k1, k2);
  EXPECT_EQ(v1, v2);
}

// ---- LSH ----

struct LshCase {
  std::int64_t n, chunk;
  int rounds;
  bool causal;
};

class AttentionLsh : public ::testing::TestWithParam<LshCase> {};

TEST_P(AttentionLsh, ForwardMatchesTheReferenceAtAnyLength) {
  const auto c = GetParam();
  const std::int64_t heads = 2, d = 6, dv = 5;
  const Dims dims{heads, c.n, c.n, d, dv};
  const auto qk = clustered(heads, c.n, d, 4, 3.0f, 0.5f, 20 + c.n);
  const auto v = random_vector(heads * c.n * dv, 21);
  const LshOptions o{c.rounds, 8, c.chunk, c.causal, 0, 7, 2};
  std::vector<float> out(heads * c.n * dv), lse(heads * c.n);
  lsh_forward(dims, qk.data(), v.data(), out.data(), lse.data(), o);
  std::vector<double> ref(out.size());
  lsh_reference_forward<double>(dims, qk.data(), v.data(), ref.data(), o);
  EXPECT_LT(relative_error(out, ref), 1e-5);
}

std::vector<LshCase> lsh_cases() {
  std::vector<LshCase> cases;
  for (std::int64_t n : {1, 2, 7, 33, 130, 257}) {
    for (bool causal : {false, true}) {
      cases.push_back({n, 8, 1, causal});
      cases.push_back({n, 20, 3, causal});  // a chunk that is not a multiple of the panel width
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(AttentionAnyLength, AttentionLsh, ::testing::ValuesIn(lsh_cases()),
                         [](const ::testing::TestParamInfo<LshCase>& info) {
                           const auto& c = info.param;
                           return case_name({{"n", c.n}, {"chunk", c.chunk}, {"rounds", c.rounds}}, c.causal);
                         });

TEST(AttentionLshMask, CausalPositionZeroAttendsToItself) {
  const std::int64_t n = 50, d = 8;
  const auto qk = clustered(1, n, d, 3, 2.0f, 0.3f, 3);
  const auto v = random_vector(n * d, 4);
  std::vector<float> out(n * d), lse(n);
  lsh_forward({1, n, n, d, d}, qk.data(), v.data(), out.data(), lse.data(), {4, 8, 8, true, 0, 1, 1});
  for (int c = 0; c < d; ++c) EXPECT_NEAR(out[c], v[c], 1e-6);
  for (float x : out) EXPECT_TRUE(std::isfinite(x));
  // With everything visible, position 0 sees other keys and its own is (almost) ignored.
  lsh_forward({1, n, n, d, d}, qk.data(), v.data(), out.data(), lse.data(), {4, 8, 8, false, 0, 1, 1});
  double diff = 0;
  for (int c = 0; c < d; ++c) diff += std::abs(out[c] - v[c]);
  EXPECT_GT(diff, 1e-3);
}

TEST(AttentionLshDeterminism, SameSeedSameBitsOtherSeedOtherOutput) {
  const std::int64_t n = 300, d = 16;
  const auto qk = clustered(2, n, d, 8, 3.0f, 0.5f, 5);
  const auto v = random_vector(2 * n * d, 6);
  const Dims dims{2, n, n, d, d};
  std::vector<float> a(2 * n * d), b(a.size()), c(a.size()), lse(2 * n);
  lsh_forward(dims, qk.data(), v.data(), a.data(), lse.data(), {3, 0, 32, true, 0, 42, 1});
  lsh_forward(dims, qk.data(), v.data(), b.data(), lse.data(), {3, 0, 32, true, 0, 42, 2});
  lsh_forward(dims, qk.data(), v.data(), c.data(), lse.data(), {3, 0, 32, true, 0, 43, 2});
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  std::vector<std::int32_t> b1(3 * 2 * n), b2(b1.size());
  lsh_buckets(dims, qk.data(), {3, 0, 32, true, 0, 42, 1}, b1.data());
  lsh_buckets(dims, qk.data(), {3, 0, 32, true, 0, 43, 1}, b2.data());
  EXPECT_NE(b1, b2);
  for (auto x : b1) EXPECT_TRUE(x >= 0 && x < 32);  // 2·ceil(300/32) = 20 → 32 buckets
}

TEST(AttentionLshBuckets, FactorisedBucketsCoverTheRange) {
  const std::int64_t n = 4000, d = 16;
  const auto qk = random_vector(n * d, 9);
  const LshOptions o{1, 256, 16, false, 0, 1, 1};  // 256 = 16 · 16: two rotations
  std::vector<std::int32_t> b(n);
  lsh_buckets({1, n, n, d, d}, qk.data(), o, b.data());
  std::set<std::int32_t> used(b.begin(), b.end());
  EXPECT_GT(used.size(), 200u);
  EXPECT_GE(*used.begin(), 0);
  EXPECT_LT(*used.rbegin(), 256);
}

// Shared-QK full attention (every key visible, the own key at the self score): what LSH approximates, and what
// one chunk spanning the whole sequence computes.
TEST(AttentionLshRounds, ErrorFallsWithRoundsTowardsFullAttentionOnClusteredInputs) {
  const std::int64_t n = 512, d = 16, clusters = 32;
  const Clustered tokens = clustered_tokens(1, n, d, clusters, 40.0f, 1.0f, 11);
  // Values follow the keys' clusters (a cluster's value plus noise): attention within a cluster is what matters.
  const auto cluster_values = random_vector(clusters * d, 12), noise = random_vector(n * d, 13, 0.3f);
  std::vector<float> v(n * d);
  for (std::int64_t t = 0; t < n; ++t) {
    for (std::int64_t c = 0; c < d; ++c) v[t * d + c] = cluster_values[tokens.label[t] * d + c] + noise[t * d + c];
  }
  const Dims dims{1, n, n, d, d};
  // One chunk spanning the sequence sees every key: the double reference of that is full shared-QK attention.
  std::vector<double> full(n * d);
  lsh_reference_forward<double>(dims, tokens.x.data(), v.data(), full.data(), {1, 2, n, false, 0, 0, 1});
  std::vector<float> lse(n), out(n * d);
  std::vector<double> errors;
  for (int rounds : {1, 2, 4, 8, 16}) {
    lsh_forward(dims, tokens.x.data(), v.data(), out.data(), lse.data(), {rounds, 16, 64, false, 0, 3, 2});
    errors.push_back(relative_l2(out, full));
  }
  for (std::size_t i = 1; i < errors.size(); ++i) {
    EXPECT_LT(errors[i], errors[i - 1] * 1.02) << "error grew from " << errors[i - 1] << " to " << errors[i];
  }
  EXPECT_LT(errors.back(), 0.5 * errors.front());
  EXPECT_LT(errors.back(), 0.05);
}

// Backward against central differences of the double reference (the hash is constant under the small steps; a
// step that would change a bucket is skipped).
TEST(AttentionLshGradient, BackwardMatchesFiniteDifferences) {
  const std::int64_t n = 21, d = 4, dv = 3;
  const Dims dims{1, n, n, d, dv};
  for (bool causal : {false, true}) {
    const LshOptions o{2, 4, 4, causal, 0, 5, 1};
    auto qk = clustered(1, n, d, 3, 2.0f, 0.6f, 13);
    auto v = random_vector(n * dv, 14);
    const auto g = random_vector(n * dv, 15);
    std::vector<float> out(n * dv), lse(n), gqk(n * d), gv(n * dv);
    lsh_forward(dims, qk.data(), v.data(), out.data(), lse.data(), o);
    lsh_backward(dims, qk.data(), v.data(), out.data(), lse.data(), g.data(), gqk.data(), gv.data(), o);
    std::vector<std::int32_t> buckets(2 * n), moved(2 * n);
    lsh_buckets(dims, qk.data(), o, buckets.data());
    auto loss = [&]() {
      std::vector<double> ref(n * dv);
      lsh_reference_forward<double>(dims, qk.data(), v.data(), ref.data(), o);
      double s = 0;
      for (std::size_t i = 0; i < ref.size(); ++i) s += ref[i] * g[i];
      return s;
    };
    int checked = 0;
    auto check = [&](std::vector<float>& x, const std::vector<float>& grad, const char* name) {
      for (std::size_t i = 0; i < x.size(); ++i) {
        const float x0 = x[i];
        const float up = x0 + 1e-3f, down = x0 - 1e-3f;
        x[i] = up;
        lsh_buckets(dims, qk.data(), o, moved.data());
        const bool same_up = moved == buckets;
        const double f_up = loss();
        x[i] = down;
        lsh_buckets(dims, qk.data(), o, moved.data());
        const bool same_down = moved == buckets;
        const double f_down = loss();
        x[i] = x0;
        if (!same_up || !same_down) continue;
        const double fd = (f_up - f_down) / (static_cast<double>(up) - static_cast<double>(down));
        EXPECT_NEAR(grad[i], fd, 2e-3 * (1 + std::abs(fd))) << name << " element " << i << (causal ? " causal" : "");
        ++checked;
      }
    };
    check(qk, gqk, "qk");
    check(v, gv, "v");
    EXPECT_GT(checked, static_cast<int>(n * (d + dv)) * 3 / 4);
  }
}

// ---- hash buckets ----

struct BucketCase {
  BucketKey key;
  BucketHash hash;
  int rounds;
  bool causal;
};

class AttentionBucket : public ::testing::TestWithParam<BucketCase> {};

TEST_P(AttentionBucket, ForwardMatchesTheQuadraticReferenceAndBackwardIsItsAdjoint) {
  const auto c = GetParam();
  const std::int64_t heads = 2, n = 157, d = 8, dv = 5;
  const Dims dims{heads, n, n, d, dv};
  const auto q = clustered(heads, n, d, 6, 2.0f, 0.4f, 30), k = clustered(heads, n, d, 6, 2.0f, 0.4f, 31);
  const auto v = random_vector(heads * n * dv, 32);
  std::vector<std::int64_t> tokens(heads * n);
  std::mt19937_64 rng(33);
  for (auto& t : tokens) t = static_cast<std::int64_t>(rng() % 12);
  BucketOptions o;
  o.key = c.key;
  o.hash = c.hash;
  o.rounds = c.rounds;
  o.causal = c.causal;
  o.sign_bits = 3;  // few sign patterns: buckets hold several keys
  o.seed = 4;
  o.threads = 2;
  std::vector<float> out(heads * n * dv);
  BucketStats stats;
  bucket_forward(dims, q.data(), k.data(), v.data(), tokens.data(), out.data(), o, &stats);
  std::vector<double> ref(out.size());
  bucket_reference_forward(dims, q.data(), k.data(), v.data(), tokens.data(), ref.data(), o);
  EXPECT_LT(relative_error(out, ref), 1e-5);
  EXPECT_GT(stats.buckets_used, 0);
  EXPECT_LE(stats.buckets_used, heads * c.rounds * (c.key == BucketKey::token ? 12 : 8));
  EXPECT_GT(stats.table_bytes, 0);

  // out is linear in v: ⟨g, out(v)⟩ = ⟨grad_v(g), v⟩ for every v.
  const auto g = random_vector(out.size(), 34);
  std::vector<float> grad_v(v.size());
  bucket_backward(dims, q.data(), k.data(), tokens.data(), g.data(), grad_v.data(), o);
  for (std::uint64_t seed : {35, 36, 37}) {
    const auto w = random_vector(v.size(), seed);
    bucket_forward(dims, q.data(), k.data(), w.data(), tokens.data(), out.data(), o);
    const double lhs = std::inner_product(g.begin(), g.end(), out.begin(), 0.0);
    const double rhs = std::inner_product(grad_v.begin(), grad_v.end(), w.begin(), 0.0);
    EXPECT_NEAR(lhs, rhs, 1e-4 * (1 + std::abs(lhs)));
  }
}

INSTANTIATE_TEST_SUITE_P(AttentionBucketModes, AttentionBucket,
                         ::testing::Values(BucketCase{BucketKey::lsh_bits, BucketHash::sha256, 1, true},
                                           BucketCase{BucketKey::lsh_bits, BucketHash::xxh3, 1, true},
                                           BucketCase{BucketKey::lsh_bits, BucketHash::xxh3, 3, true},
                                           BucketCase{BucketKey::lsh_bits, BucketHash::sha256, 3, false},
                                           BucketCase{BucketKey::token, BucketHash::sha256, 1, true},
                                           BucketCase{BucketKey::token, BucketHash::xxh3, 2, true},
                                           BucketCase{BucketKey::token, BucketHash::xxh3, 2, false}),
                         [](const ::testing::TestParamInfo<BucketCase>& info) {
                           const auto& c = info.param;
                           std::string name = c.key == BucketKey::token ? "token_" : "lsh_bits_";
                           name.append(c.hash == BucketHash::sha256 ? "sha256" : "xxh3");
                           return case_name({{"_rounds", c.rounds}}, c.causal).insert(0, name);
                         });

TEST(AttentionBucketToken, MeanOfEarlierOccurrencesOfTheSameToken) {
  const std::vector<std::int64_t> tokens = {5, 7, 5, 5, 7};
  const std::vector<float> v = {1, 2, 3, 4, 5};
  std::vector<float> out(5);
  BucketOptions o;
  o.key = BucketKey::token;
  o.bucket_bits = 32;
  bucket_forward({1, 5, 5, 1, 1}, nullptr, nullptr, v.data(), tokens.data(), out.data(), o);
  EXPECT_EQ(out, (std::vector<float>{1, 2, 2, 8.0f / 3, 3.5f}));
  o.causal = false;
  bucket_forward({1, 5, 5, 1, 1}, nullptr, nullptr, v.data(), tokens.data(), out.data(), o);
  EXPECT_EQ(out, (std::vector<float>{8.0f / 3, 3.5f, 8.0f / 3, 8.0f / 3, 3.5f}));
}

TEST(AttentionBucketHash, IdsAreTheDocumentedHashesOfTheMessage) {
  const std::vector<std::int64_t> tokens = {0, 1, 123456789, -5};
  for (BucketHash hash : {BucketHash::sha256, BucketHash::xxh3}) {
    BucketOptions o;
    o.key = BucketKey::token;
    o.hash = hash;
    o.rounds = 2;
    o.seed = 0x0102030405060708ull;
    o.bucket_bits = 20;
    std::vector<std::uint32_t> ids(8);
    bucket_ids({1, 4, 4, 1, 1}, nullptr, tokens.data(), o, ids.data());
    for (int r = 0; r < 2; ++r) {
      for (int i = 0; i < 4; ++i) {
        unsigned char message[20];
        for (int b = 0; b < 8; ++b) message[b] = static_cast<unsigned char>(o.seed >> (8 * b));
        for (int b = 0; b < 4; ++b)
          message[8 + b] = static_cast<unsigned char>(static_cast<std::uint32_t>(r) >> (8 * b));
        for (int b = 0; b < 8; ++b) {
          message[12 + b] = static_cast<unsigned char>(static_cast<std::uint64_t>(tokens[i]) >> (8 * b));
        }
        std::uint64_t expected;
        if (hash == BucketHash::xxh3) {
          expected = XXH3_64bits(message, 20);
        } else {
          const std::string hex = sha256_hex(message, 20);
          expected = 0;
          for (int b = 3; b >= 0; --b) expected = expected << 8 | std::stoul(hex.substr(2 * b, 2), nullptr, 16);
        }
        EXPECT_EQ(ids[r * 4 + i], expected & ((1u << 20) - 1)) << "round " << r << " token " << tokens[i];
      }
    }
  }
}

TEST(AttentionBucketMemory, TablesFollowTheBucketsInUse) {
  const std::int64_t n = 4096, d = 16, dv = 16;
  const auto q = random_vector(n * d, 40), k = random_vector(n * d, 41), v = random_vector(n * dv, 42);
  BucketOptions o;
  o.sign_bits = 6;  // at most 64 buckets whatever the 2^16 id space
  BucketStats stats;
  std::vector<float> out(n * dv);
  bucket_forward({1, n, n, d, dv}, q.data(), k.data(), v.data(), nullptr, out.data(), o, &stats);
  EXPECT_LE(stats.buckets_used, 64);
  EXPECT_LT(stats.table_bytes, 64 * (dv * 4 + 8) + 4096);
}

// ---- signature top-k ----

std::vector<std::int64_t> brute_force_selection(std::uint64_t query, const std::vector<std::uint64_t>& keys,
                                                const SignatureOptions& o) {
  const std::int64_t m = static_cast<std::int64_t>(keys.size());
  const std::uint64_t mask = o.bits == 64 ? ~0ull : 0xffffffffull;
  const std::int64_t sink_end = std::min(o.sink, m), recent_start = std::max(sink_end, m - std::min(o.recent, m));
  std::vector<std::pair<int, std::int64_t>> middle;
  for (std::int64_t j = sink_end; j < recent_start; ++j)
    middle.push_back({__builtin_popcountll((keys[j] ^ query) & mask), j});
  std::sort(middle.begin(), middle.end());
  std::vector<std::int64_t> chosen;
  for (std::int64_t j = 0; j < sink_end; ++j) chosen.push_back(j);
  for (std::int64_t j = recent_start; j < m; ++j) chosen.push_back(j);
  for (std::size_t i = 0; i < std::min<std::size_t>(middle.size(), static_cast<std::size_t>(o.top_k)); ++i) {
    chosen.push_back(middle[i].second);
  }
  std::sort(chosen.begin(), chosen.end());
  return chosen;
}

TEST(AttentionSignatureSelect, MatchesBruteForceTopKByHammingDistance) {
  std::mt19937_64 rng(50);
  for (int bits : {32, 64}) {
    for (std::int64_t m : {1, 5, 100, 1000}) {
      std::vector<std::uint64_t> keys(static_cast<std::size_t>(m));
      // Few distinct signatures so that distances tie often.
      for (auto& key : keys) key = rng() & rng() & rng();
      const std::uint64_t query = rng() & rng();
      for (std::int64_t top_k : {std::int64_t{1}, std::min<std::int64_t>(m, 7), m}) {
        for (auto [sink, recent] : {std::pair<std::int64_t, std::int64_t>{0, 0}, {4, 16}, {600, 600}}) {
          SignatureOptions o;
          o.bits = bits;
          o.top_k = top_k;
          o.sink = sink;
          o.recent = recent;
          const auto chosen = signature_select(query, keys.data(), m, o);
          EXPECT_EQ(chosen, brute_force_selection(query, keys, o)) << "bits " << bits << " m " << m << " k " << top_k;
          EXPECT_EQ(static_cast<std::int64_t>(chosen.size()), std::min(m, sink + recent + top_k));
        }
      }
    }
  }
}

TEST(AttentionSignatureSimhash, DeterministicAppendableAndMaskedTo32Bits) {
  const std::int64_t rows = 50, d = 24;
  const auto x = random_vector(rows * d, 51);
  std::vector<std::uint64_t> batch(rows), one(rows), other(rows), narrow(rows);
  simhash_signatures(rows, d, x.data(), 64, 9, batch.data());
  for (std::int64_t r = 0; r < rows; ++r) simhash_signatures(1, d, x.data() + r * d, 64, 9, one.data() + r);
  simhash_signatures(rows, d, x.data(), 64, 10, other.data());
  simhash_signatures(rows, d, x.data(), 32, 9, narrow.data());
  EXPECT_EQ(batch, one);
  EXPECT_NE(batch, other);
  for (auto s : narrow) EXPECT_EQ(s >> 32, 0u);
  // A signature's sign bits are those of x·P: x and −x differ in every bit.
  std::vector<float> minus(x.begin(), x.begin() + d);
  for (auto& e : minus) e = -e;
  std::uint64_t flipped;
  simhash_signatures(1, d, minus.data(), 64, 9, &flipped);
  EXPECT_EQ(__builtin_popcountll(flipped ^ batch[0]), 64);
}

TEST(AttentionSignatureDecode, ExactSoftmaxOverTheSelectionAndRecallOfAttentionMass) {
  const std::int64_t heads = 2, m = 4096, d = 32, dv = 8;
  const Dims dims{heads, 1, m, d, dv};
  const Clustered keys = clustered_tokens(heads, m, d, 32, 8.0f, 1.0f, 52);
  const auto v = random_vector(heads * m * dv, 53);
  // The query of each head is a fresh member of the cluster of that head's key 1000.
  std::vector<float> q(heads * d);
  const auto noise = random_vector(heads * d, 54);
  for (std::int64_t h = 0; h < heads; ++h) {
    for (std::int64_t c = 0; c < d; ++c) q[h * d + c] = keys.x[(h * m + 1000) * d + c] + noise[h * d + c];
  }
  SignatureOptions o;
  o.top_k = 128;
  std::vector<std::uint64_t> signatures(heads * m);
  simhash_signatures(heads * m, d, keys.x.data(), o.bits, o.seed, signatures.data());
  const std::int64_t selection = o.sink + o.recent + o.top_k;
  std::vector<float> out(heads * dv);
  std::vector<std::int64_t> selected(heads * selection);
  signature_topk_decode(dims, q.data(), keys.x.data(), v.data(), signatures.data(), out.data(), selected.data(), o);
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  for (std::int64_t h = 0; h < heads; ++h) {
    std::uint64_t query_signature;
    simhash_signatures(1, d, q.data() + h * d, o.bits, o.seed, &query_signature);
    const auto expected = signature_select(query_signature, signatures.data() + h * m, m, o);
    const std::vector<std::int64_t> got(selected.begin() + h * selection, selected.begin() + (h + 1) * selection);
    EXPECT_EQ(got, expected);
    // Exact probabilities over all keys, in double.
    std::vector<double> p(static_cast<std::size_t>(m));
    double best = -1e300, sum = 0;
    for (std::int64_t j = 0; j < m; ++j) {
      double s = 0;
      for (std::int64_t c = 0; c < d; ++c) s += static_cast<double>(q[h * d + c]) * keys.x[(h * m + j) * d + c];
      p[j] = s * scale;
      best = std::max(best, p[j]);
    }
    for (auto& x : p) sum += (x = std::exp(x - best));
    double recall = 0, window_recall = 0, selected_mass = 0;
    std::vector<double> ref(static_cast<std::size_t>(dv), 0.0);
    for (std::int64_t j : got) {
      recall += p[j] / sum;
      selected_mass += p[j];
      for (std::int64_t c = 0; c < dv; ++c) ref[c] += p[j] * v[(h * m + j) * dv + c];
    }
    for (std::int64_t j = 0; j < m; ++j) {
      if (j < o.sink || j >= m - o.recent) window_recall += p[j] / sum;
    }
    for (std::int64_t c = 0; c < dv; ++c) EXPECT_NEAR(out[h * dv + c], ref[c] / selected_mass, 1e-5);
    EXPECT_GT(recall, 0.5) << "head " << h;
    EXPECT_GT(recall, 5 * window_recall) << "head " << h;
  }
  // A selection that covers every key is exact attention.
  o.top_k = m;
  std::vector<float> all(heads * dv), exact(heads * dv);
  signature_topk_decode(dims, q.data(), keys.x.data(), v.data(), signatures.data(), all.data(), nullptr, o);
  exact_forward(dims, q.data(), keys.x.data(), v.data(), exact.data(), nullptr);
  EXPECT_LT(relative_error(all, exact), 1e-6);
}

// ---- bad arguments ----

template <class Fn>
void expect_error_naming(Fn&& fn, const std::string& argument) {
  try {
    fn();
    ADD_FAILURE() << "no error; expected one naming " << argument;
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(argument), std::string::npos) << e.what();
  }
}

TEST(AttentionArguments, BadInputsThrowErrorsNamingTheArgument) {
  const std::vector<float> x(4096, 0.5f);
  std::vector<float> out(4096), lse(64);
  expect_error_naming(
      [&] {
        exact_forward({1, 4, 4, 0, 4}, x.data(), x.data(), x.data(), out.data(), nullptr);
      },
      "dims.dim");
  expect_error_naming(
      [&] {
        exact_forward({0, 4, 4, 4, 4}, x.data(), x.data(), x.data(), out.data(), nullptr);
      },
      "dims.heads");
  expect_error_naming(
      [&] {
        exact_forward({1, 8, 4, 4, 4}, x.data(), x.data(), x.data(), out.data(), nullptr, {true});
      },
      "dims.keys");
  expect_error_naming([&] { exact_forward({1, 4, 4, 4, 4}, nullptr, x.data(), x.data(), out.data(), nullptr); }, "q");
  expect_error_naming(
      [&] {
        lsh_forward({1, 4, 5, 4, 4}, x.data(), x.data(), out.data(), lse.data());
      },
      "dims.queries");
  expect_error_naming([&] { lsh_forward({1, 4, 4, 4, 4}, x.data(), x.data(), out.data(), lse.data(), {0}); }, "rounds");
  expect_error_naming(
      [&] {
        lsh_forward({1, 4, 4, 4, 4}, x.data(), x.data(), out.data(), lse.data(), {65});
      },
      "rounds");
  expect_error_naming(
      [&] {
        lsh_forward({1, 4, 4, 4, 4}, x.data(), x.data(), out.data(), lse.data(), {2, 7});
      },
      "buckets");
  expect_error_naming(
      [&] {
        lsh_forward({1, 4, 4, 4, 4}, x.data(), x.data(), out.data(), lse.data(), {2, 0, 0});
      },
      "chunk");
  BucketOptions b;
  b.bucket_bits = 15;
  expect_error_naming(
      [&] {
        bucket_forward({1, 4, 4, 4, 4}, x.data(), x.data(), x.data(), nullptr, out.data(), b);
      },
      "bucket_bits");
  b = {};
  b.sign_bits = 65;
  expect_error_naming(
      [&] {
        bucket_forward({1, 4, 4, 4, 4}, x.data(), x.data(), x.data(), nullptr, out.data(), b);
      },
      "sign_bits");
  b = {};
  b.rounds = 0;
  expect_error_naming(
      [&] {
        bucket_forward({1, 4, 4, 4, 4}, x.data(), x.data(), x.data(), nullptr, out.data(), b);
      },
      "rounds");
  b = {};
  b.key = BucketKey::token;
  expect_error_naming(
      [&] {
        bucket_forward({1, 4, 4, 4, 4}, x.data(), x.data(), x.data(), nullptr, out.data(), b);
      },
      "tokens");
  const std::vector<std::uint64_t> signatures(64, 0);
  SignatureOptions s;
  s.top_k = 65;
  expect_error_naming(
      [&] {
        signature_topk_decode({1, 1, 64, 4, 4}, x.data(), x.data(), x.data(), signatures.data(), out.data(), nullptr,
                              s);
      },
      "top_k");
  s.top_k = 0;
  expect_error_naming([&] { signature_select(0, signatures.data(), 64, s); }, "top_k");
  s = {};
  s.bits = 48;
  expect_error_naming([&] { simhash_signatures(4, 4, x.data(), s.bits, 0, nullptr); }, "bits");
  s = {};
  s.top_k = 8;
  expect_error_naming(
      [&] {
        signature_topk_decode({1, 2, 64, 4, 4}, x.data(), x.data(), x.data(), signatures.data(), out.data(), nullptr,
                              s);
      },
      "dims.queries");
  s.sink = -1;
  expect_error_naming([&] { signature_select(0, signatures.data(), 64, s); }, "sink");
}

// ---- inputs file ----

TEST(AttentionInputs, SafetensorsRoundTripAndErrorsNameTheTensor) {
  testing::ScratchDir dir;
  Inputs in;
  in.heads = 2, in.tokens = 5, in.dim = 3;
  in.q = random_vector(30, 60), in.k = random_vector(30, 61), in.v = random_vector(30, 62);
  save_inputs(dir.file("qkv.safetensors"), in);
  const Inputs back = load_inputs(dir.file("qkv.safetensors"));
  EXPECT_EQ(back.heads, 2);
  EXPECT_EQ(back.tokens, 5);
  EXPECT_EQ(back.dim, 3);
  EXPECT_EQ(back.q, in.q);
  EXPECT_EQ(back.k, in.k);
  EXPECT_EQ(back.v, in.v);
  // The file is plain safetensors: the header is JSON after an 8-byte length.
  const std::string bytes = testing::read_file(dir.file("qkv.safetensors"));
  EXPECT_NE(bytes.find("\"q\":{\"dtype\":\"F32\",\"shape\":[2,5,3]"), std::string::npos);
  std::string broken = bytes;
  broken.replace(broken.find("\"v\""), 3, "\"w\"");
  testing::write_file(dir.file("broken.safetensors"), broken);
  expect_error_naming([&] { load_inputs(dir.file("broken.safetensors")); }, "no tensor \"v\"");
  in.v.pop_back();
  expect_error_naming([&] { save_inputs(dir.file("bad.safetensors"), in); }, "heads·tokens·dim");
}

// ---- the bench, end to end on a small problem ----

TEST(AttentionBenchCli, RandomInputsSavedThenReadBackAsCapturedInputs) {
  testing::ScratchDir dir;
  const std::string cli = HASHMEM_CLI;
  const std::string common =
      " bench attention --n 100,300 --d 16 --lsh-chunk 16 --top-k 32 --samples 2 --python /nonexistent --out " +
      dir.file("out");
  auto saved =
      testing::run_command(cli + common + " --save-inputs " + dir.file("qkv.safetensors"), dir.path().string());
  ASSERT_EQ(saved.exit_code, 0) << saved.err;
  EXPECT_NE(saved.out.find("sgemm (anchor)"), std::string::npos);
  auto captured = testing::run_command(
      cli + common + " --inputs captured --captured " + dir.file("qkv.safetensors") + " --json", dir.path().string());
  ASSERT_EQ(captured.exit_code, 0) << captured.err;
  // The file holds the first point (n = 100): n = 300 is skipped with a note.
  EXPECT_NE(captured.err.find("skipping n = 300"), std::string::npos) << captured.err;
  const std::string csv = testing::read_file(dir.file("out/attention.csv"));
  for (const char* method : {"exact", "sgemm", "naive", "lsh", "bucket", "exact_decode", "signature_topk_32"}) {
    EXPECT_NE(csv.find(std::string(",") + method + ","), std::string::npos) << method;
  }
  EXPECT_NE(captured.out.find("\"method\": \"signature_topk_32\""), std::string::npos);
}

}  // namespace
}  // namespace hashmem::attention
