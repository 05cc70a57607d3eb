// The Engram layer kernels: forward against the reference cases, backward against finite differences in
// double for every input and weight, thread-count independence, bad cases.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <random>

#include "hashmem/error.hpp"
#include "hashmem/engram_layer.hpp"
#include "test_util.hpp"

namespace hashmem::engram {
namespace {

LayerWeights<double> random_weights(const LayerDims& d, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<double> n;
  auto fill = [&](std::int64_t count, double scale, double offset) {
    std::vector<double> v(static_cast<std::size_t>(count));
    for (auto& x : v) x = offset + scale * n(rng);
    return v;
  };
  const std::int64_t G = d.hc_mult, H = d.hidden, E = d.engram_dim;
  LayerWeights<double> w;
  if (d.gate) w.key_w = fill(G * H * E, 1 / std::sqrt(double(E)), 0);
  w.value_w = fill(H * E, 1 / std::sqrt(double(E)), 0);
  if (d.gate) {
    w.norm1 = fill(G * H, 0.1, 1);
    w.norm2 = fill(G * H, 0.1, 1);
  }
  if (d.bias) {
    if (d.gate) w.key_b = fill(G * H, 0.1, 0);
    w.value_b = fill(H, 0.1, 0);
  }
  if (d.conv) {
    w.conv_norm = fill(G * H, 0.1, 1);
    w.conv_w = fill(G * H * d.kernel, 0.5, 0);
  }
  return w;
}

// Every gradient against central differences of L = Σ r ⊙ out (r fixed random), in double.
void check_gradients(const LayerDims& d, std::uint64_t seed) {
  const LayerWeights<double> w0 = random_weights(d, seed);
  std::mt19937_64 rng(seed + 1);
  std::normal_distribution<double> n;
  const std::int64_t N = d.tokens(), GH = d.hc_mult * d.hidden;
  std::vector<double> h(static_cast<std::size_t>(N * GH)), e(static_cast<std::size_t>(N * d.engram_dim)),
      r(static_cast<std::size_t>(N * GH));
  for (auto& x : h) x = n(rng);
  for (auto& x : e) x = n(rng);
  for (auto& x : r) x = n(rng);
  LayerWeights<double> w = w0;
  auto loss = [&]() {
    std::vector<double> out(r.size());
    layer_forward<double>(d, w, h.data(), e.data(), out.data(), nullptr, 1);
    double l = 0;
    for (std::size_t i = 0; i < out.size(); ++i) l += r[i] * out[i];
    return l;
  };
  LayerCache<double> cache;
  std::vector<double> out(r.size()), gh(h.size()), ge(e.size());
  layer_forward<double>(d, w, h.data(), e.data(), out.data(), &cache, 1);
  LayerWeights<double> gw;
  layer_backward<double>(d, w, h.data(), e.data(), cache, r.data(), gh.data(), ge.data(), &gw, 1);
  auto check = [&](const char* name, std::vector<double>& x, const std::vector<double>& grad) {
    ASSERT_EQ(x.size(), grad.size()) << name;
    for (std::size_t i = 0; i < x.size(); ++i) {
      const double keep = x[i], step = 1e-6;
      x[i] = keep + step;
      const double up = loss();
      x[i] = keep - step;
      const double down = loss();
      x[i] = keep;
      const double numeric = (up - down) / (2 * step);
      EXPECT_NEAR(grad[i], numeric, 1e-6 * (1 + std::fabs(numeric))) << name << "[" << i << "]";
    }
  };
  check("hidden", h, gh);
  check("embeddings", e, ge);
  check("key_w", w.key_w, gw.key_w);
  check("value_w", w.value_w, gw.value_w);
  check("norm1", w.norm1, gw.norm1);
  check("norm2", w.norm2, gw.norm2);
  check("key_b", w.key_b, gw.key_b);
  check("value_b", w.value_b, gw.value_b);
  check("conv_norm", w.conv_norm, gw.conv_norm);
  check("conv_w", w.conv_w, gw.conv_w);
}

TEST(EngramLayer, GradientsMatchFiniteDifferences) {
  LayerDims d;
  d.batch = 2, d.seq = 7, d.hc_mult = 2, d.hidden = 5, d.engram_dim = 6, d.kernel = 3, d.dilation = 2;
  check_gradients(d, 1);
}

TEST(EngramLayer, GradientsWithOneBranchAndShortSequences) {
  LayerDims d;
  d.batch = 3, d.seq = 4, d.hc_mult = 1, d.hidden = 7, d.engram_dim = 4, d.kernel = 4, d.dilation = 3;  // T < K·dil
  check_gradients(d, 2);
}

TEST(EngramLayer, GradientsOfTheV41VariantWithoutBiasesAndConv) {
  LayerDims d;
  d.batch = 2, d.seq = 5, d.hc_mult = 4, d.hidden = 3, d.engram_dim = 8;
  d.bias = false;
  d.conv = false;
  check_gradients(d, 3);
}

TEST(EngramLayer, GradientsWithoutTheGate) {
  LayerDims d;
  d.batch = 2, d.seq = 6, d.hc_mult = 2, d.hidden = 4, d.engram_dim = 5, d.kernel = 3, d.dilation = 2;
  d.gate = false;
  check_gradients(d, 4);
}

// The "no gating" ablation is the gated layer with every gate forced to 1: out = value + conv(value) with
// value = W_v·e + b_v, the same for every branch but for the branch's own conv channels.
TEST(EngramLayer, WithoutTheGateTheValueIsAddedWhole) {
  LayerDims d;
  d.batch = 1, d.seq = 5, d.hc_mult = 2, d.hidden = 3, d.engram_dim = 4;
  d.gate = false;
  d.conv = false;
  const LayerWeights<double> w = random_weights(d, 5);
  std::mt19937_64 rng(6);
  std::normal_distribution<double> n;
  std::vector<double> h(static_cast<std::size_t>(d.tokens() * 6)), e(static_cast<std::size_t>(d.tokens() * 4));
  for (auto* v : {&h, &e}) {
    for (auto& x : *v) x = n(rng);
  }
  std::vector<double> out(h.size());
  layer_forward<double>(d, w, h.data(), e.data(), out.data(), nullptr, 1);
  for (std::int64_t t = 0; t < d.tokens(); ++t) {
    for (std::int64_t g = 0; g < 2; ++g) {
      for (std::int64_t i = 0; i < 3; ++i) {
        double v = w.value_b[static_cast<std::size_t>(i)];
        for (std::int64_t j = 0; j < 4; ++j) v += w.value_w[static_cast<std::size_t>(i * 4 + j)] * e[static_cast<std::size_t>(t * 4 + j)];
        EXPECT_NEAR(out[static_cast<std::size_t>((t * 2 + g) * 3 + i)], v, 1e-12);
      }
    }
  }
  LayerWeights<double> gated = random_weights(d, 5);
  gated.norm1 = {1};  // a gate weight where none belongs
  EXPECT_THROW(check_layer(d, gated), Error);
}

TEST(EngramLayer, ResultsDoNotDependOnTheThreadCount) {
  LayerDims d;
  d.batch = 4, d.seq = 33, d.hc_mult = 2, d.hidden = 24, d.engram_dim = 40, d.kernel = 4, d.dilation = 3;
  const LayerWeights<double> wd = random_weights(d, 9);
  auto f = [](const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); };
  const LayerWeights<float> w{f(wd.key_w), f(wd.key_b), f(wd.value_w), f(wd.value_b), f(wd.norm1), f(wd.norm2),
                              f(wd.conv_norm), f(wd.conv_w)};
  std::mt19937 rng(4);
  std::normal_distribution<float> n;
  std::vector<float> h(static_cast<std::size_t>(d.tokens() * 48)), e(static_cast<std::size_t>(d.tokens() * 40)),
      g(h.size());
  for (auto* v : {&h, &e, &g}) {
    for (auto& x : *v) x = n(rng);
  }
  std::vector<float> out1(h.size()), out2(h.size()), gh1(h.size()), gh2(h.size()), ge1(e.size()), ge2(e.size());
  LayerCache<float> c1, c2;
  LayerWeights<float> gw1, gw2;
  layer_forward<float>(d, w, h.data(), e.data(), out1.data(), &c1, 1);
  layer_forward<float>(d, w, h.data(), e.data(), out2.data(), &c2, 2);
  EXPECT_EQ(out1, out2);
  layer_backward<float>(d, w, h.data(), e.data(), c1, g.data(), gh1.data(), ge1.data(), &gw1, 1);
  layer_backward<float>(d, w, h.data(), e.data(), c2, g.data(), gh2.data(), ge2.data(), &gw2, 2);
  EXPECT_EQ(gh1, gh2);
  EXPECT_EQ(ge1, ge2);
  EXPECT_EQ(gw1.conv_w, gw2.conv_w);
  EXPECT_EQ(gw1.norm1, gw2.norm1);
  EXPECT_EQ(gw1.key_w, gw2.key_w);
}

TEST(EngramLayer, CheckLayerPassesTheSmallConformanceCase) {
  const auto r = testing::run_command(std::string(HASHMEM_CLI) + " engram check-layer " HASHMEM_TEST_DATA
                                      "/engram/layer-case-small.json --json", ".");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("\"pass\": true"), std::string::npos);
}

TEST(EngramLayer, BadCasesAreNamed) {
  testing::ScratchDir dir;
  const std::string good = testing::read_file(HASHMEM_TEST_DATA "/engram/layer-case-small.json");
  auto expect_error = [&](const std::string& text, const std::string& fragment) {
    const std::string path = dir.file("case.json");
    testing::write_file(path, text);
    try {
      load_layer_case(path);
      ADD_FAILURE() << "no error for " << fragment;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
    }
    const auto r = testing::run_command(std::string(HASHMEM_CLI) + " engram check-layer " + path, dir.path().string());
    EXPECT_NE(r.exit_code, 0);
    EXPECT_NE(r.err.find(fragment), std::string::npos) << r.err;
  };
  expect_error("[1, 2]", "not a JSON object");
  expect_error(good.substr(0, good.size() / 2), "not a JSON object");
  // (Edits by concatenation: GCC 12 warns falsely (-Wrestrict) on std::string::replace here.)
  auto replace_first = [](const std::string& s, const std::string& from, const std::string& to) {
    const std::size_t at = s.find(from);
    return s.substr(0, at) + to + s.substr(at + from.size());
  };
  expect_error(replace_first(good, "\"dims\"", "\"dimz\""), "lacks \"dims\"");
  expect_error(replace_first(good, "\"hidden\": 16", "\"hidden\": 17"), "inputs.hidden is not [B,T,G,H]");
  // A wrong expected output makes check-layer fail (exit 1) with the error printed.
  const std::string wrong = replace_first(good, "\"output\": [[[[-", "\"output\": [[[[-9");  // -1.48… → -91.48…
  const std::string path = dir.file("wrong.json");
  testing::write_file(path, wrong);
  const auto r = testing::run_command(std::string(HASHMEM_CLI) + " engram check-layer " + path, dir.path().string());
  EXPECT_EQ(r.exit_code, 1) << r.out << r.err;
  EXPECT_NE(r.out.find("FAIL"), std::string::npos) << r.out;
}

// Cases generated by the reference script at other shapes: G = 1, 2, 4; H not a multiple of 16; T < kernel·dilation.
TEST(EngramLayerConformance, CheckLayerPassesReferenceCasesAtOtherShapes) {
  HASHMEM_REQUIRE_PYTHON_AND_SHARED();
  testing::ScratchDir dir;
  // seed B T G H E K dil
  const char* shapes[] = {"11 2 9 1 20 24 4 3", "12 1 5 2 16 32 4 3", "13 2 6 4 12 40 4 2", "14 3 2 2 33 17 4 4",
                          "15 1 30 4 24 64 3 1"};
  for (const char* shape : shapes) {
    const std::string path = dir.file("case.json");
    auto r = testing::run_command(HASHMEM_SYSTEM_PYTHON " " HASHMEM_SHARED_DIR "/reference/engram_layer_ref.py " + path +
                                      " " + shape, dir.path().string());
    ASSERT_EQ(r.exit_code, 0) << r.err;
    r = testing::run_command(std::string(HASHMEM_CLI) + " engram check-layer " + path, dir.path().string());
    EXPECT_EQ(r.exit_code, 0) << shape << ": " << r.out << r.err;
  }
}

}  // namespace
}  // namespace hashmem::engram
