#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <random>

#include "common/huge_pages.hpp"
#include "common/numpy_rng.hpp"
#include "engram/hash_kernel.hpp"
#include "hashmem/engram.hpp"
#include "hashmem/error.hpp"
#include "test_util.hpp"

namespace hashmem::engram {
namespace {

using nlohmann::json;
using testing::ScratchDir;

Config config_from(const json& c) {
  Config config;
  config.vocab_per_order = c["vocab_per_order"].get<std::vector<std::int64_t>>();
  config.max_ngram = c["max_ngram"];
  config.heads = c["heads"];
  config.layers = c["layers"].get<std::vector<std::int64_t>>();
  config.pad_id = c["pad_id"];
  config.seed = c["seed"];
  config.compressed_vocab = c["compressed_vocab"];
  return config;
}

std::vector<std::int64_t> flatten(const json& rows) {
  std::vector<std::int64_t> out;
  for (const auto& r : rows) {
    for (const auto& v : r) {
      if (v.is_array()) {
        for (const auto& x : v) out.push_back(x);
      } else {
        out.push_back(v);
      }
    }
  }
  return out;
}

std::vector<std::int64_t> hash_all(const Layout& layout, std::size_t layer, const std::vector<std::int64_t>& ids,
                                   std::int64_t batch, bool reference, bool offsets = false, int threads = 1) {
  const std::int64_t tokens = batch ? static_cast<std::int64_t>(ids.size()) / batch : 0;
  std::vector<std::int64_t> out(ids.size() * static_cast<std::size_t>(layout.config.columns()));
  if (reference) {
    hash_batch_reference(layout, layer, ids.data(), batch, tokens, out.data(), offsets);
  } else {
    hash_batch(layout, layer, ids.data(), batch, tokens, out.data(), offsets, threads);
  }
  return out;
}

// ---- the conformance vectors (../shared/conformance/engram/hash-cases.json, copied to tests/data) ----

TEST(EngramVectors, EveryHashCase) {
  std::ifstream in(HASHMEM_TEST_DATA "/engram_hash_cases.json");
  const json cases = json::parse(in);
  ASSERT_EQ(cases.size(), 2u);
  for (const auto& c : cases) {
    const Layout layout = make_layout(config_from(c["config"]));
    const std::vector<std::int64_t> ids = flatten(c["tokens"]);
    const std::int64_t batch = static_cast<std::int64_t>(c["tokens"].size());
    for (std::size_t li = 0; li < layout.layers.size(); ++li) {
      const LayerLayout& layer = layout.layers[li];
      const json& expected = c["layers"][std::to_string(layer.layer_id)];
      EXPECT_EQ(layer.multipliers, expected["multipliers"].get<std::vector<std::int64_t>>());
      EXPECT_EQ(layer.primes, (expected["primes"].get<std::vector<std::vector<std::int64_t>>>()));
      EXPECT_EQ(layer.rows, expected["rows"].get<std::int64_t>());
      const std::vector<std::int64_t> want = flatten(expected["hashes"]);
      EXPECT_EQ(hash_all(layout, li, ids, batch, false), want) << "layer " << layer.layer_id;
      EXPECT_EQ(hash_all(layout, li, ids, batch, true), want) << "layer " << layer.layer_id;
    }
  }
}

TEST(EngramLayout, DeepSeekV41PresetRowsAndMultipliers) {
  const Layout layout = make_layout(preset("deepseek-v4.1"));
  ASSERT_EQ(layout.layers.size(), 2u);
  EXPECT_EQ(layout.layers[0].rows, 384006168);
  EXPECT_EQ(layout.layers[1].rows, 384016682);
  EXPECT_EQ(layout.layers[0].multipliers,
            (std::vector<std::int64_t>{76632096046245, 4839876093313, 35959672319349, 73987337458391}));
  EXPECT_EQ(layout.layers[1].multipliers,
            (std::vector<std::int64_t>{67716810739261, 51510806800915, 30921347202721, 82619226485591}));
  EXPECT_EQ(layout.layers[0].primes[0][0], 16000057);
  EXPECT_EQ(layout.layers[1].primes[2][7], 16000889);
}

TEST(EngramLayout, ScaledConfigWalksPrimesAboveTheSmallerSizes) {
  const Config full = preset("deepseek-v4.1");
  const Config small = scaled(full, 6);
  EXPECT_EQ(small.vocab_per_order, (std::vector<std::int64_t>{2666667, 2666667, 2666667}));
  const Layout layout = make_layout(small);
  const Layout whole = make_layout(full);
  EXPECT_EQ(layout.layers[0].multipliers, whole.layers[0].multipliers);  // the mix is unchanged
  for (const auto& order : layout.layers[0].primes) {
    for (std::int64_t p : order) {
      EXPECT_TRUE(is_prime(static_cast<std::uint64_t>(p)));
      EXPECT_GT(p, 2666666);
      EXPECT_LT(p, 2666667 + 2000);  // near size / factor: every head's table about the same size
    }
  }
  EXPECT_NEAR(static_cast<double>(layout.layers[0].rows) / static_cast<double>(whole.layers[0].rows), 1.0 / 6, 1e-4);
  EXPECT_EQ(scaled(full, 1).vocab_per_order, full.vocab_per_order);
  EXPECT_THROW(scaled(full, 0.5), Error);
  EXPECT_THROW(scaled(full, 1e9), Error);
  Config explicit_primes = make_layout(preset("deepseek-demo")).config;
  explicit_primes.primes = {{{3, 5}, {7, 11}}, {{13, 17}, {19, 23}}};
  EXPECT_THROW(scaled(explicit_primes, 2), Error);
}

TEST(EngramLayout, DemoAndPaperPresets) {
  const Layout demo = make_layout(preset("deepseek-demo"));
  EXPECT_EQ(demo.layers[0].rows, 10344164);
  EXPECT_EQ(demo.layers[1].rows, 10348242);
  EXPECT_EQ(demo.layers[0].primes[0][0], 646403);
  EXPECT_EQ(demo.layers[0].offsets[1], 646403);
  const Layout p27 = make_layout(preset("paper-27b"));
  EXPECT_EQ(p27.layers[0].rows + p27.layers[1].rows, 72404232);
  const Layout p40 = make_layout(preset("paper-40b"));
  EXPECT_EQ(p40.layers[0].rows + p40.layers[1].rows, 231678892);
  EXPECT_THROW(preset("nope"), Error);
}

TEST(EngramLayout, MillerRabin) {
  std::vector<std::uint64_t> primes = {2, 3, 5, 37, 646403, 16000057, 2305843009213693951ull /* 2^61-1 */,
                                       18446744073709551557ull /* largest 64-bit prime */};
  for (auto p : primes) EXPECT_TRUE(is_prime(p)) << p;
  std::vector<std::uint64_t> composites = {0, 1, 4, 561, 3215031751ull, 3825123056546413051ull /* strong pseudoprime */,
                                           18446744073709551615ull};
  for (auto c : composites) EXPECT_FALSE(is_prime(c)) << c;
  // Against trial division for every n below 20000.
  for (std::uint64_t n = 0; n < 20000; ++n) {
    bool trial = n >= 2;
    for (std::uint64_t d = 2; d * d <= n && trial; ++d) trial = n % d != 0;
    ASSERT_EQ(is_prime(n), trial) << n;
  }
}

TEST(EngramRng, NumpyIntegersBothPaths) {
  // default_rng(s).integers(0, high, 6, dtype=int64) from numpy 1.24 (32-bit path for these bounds).
  EXPECT_EQ(numpy_integers(0, 0, 1000, 6), (std::vector<std::int64_t>{850, 636, 511, 269, 307, 40}));
  EXPECT_EQ(numpy_integers(5, 0, 1000, 6), (std::vector<std::int64_t>{670, 805, 22, 807, 468, 515}));
  EXPECT_EQ(numpy_integers(123, 0, 1000, 6), (std::vector<std::int64_t>{15, 682, 592, 53, 909, 220}));
  EXPECT_EQ(numpy_integers(0, 0, 4294967296LL, 3), (std::vector<std::int64_t>{3653403231, 2735729615, 2195314465}));
  EXPECT_EQ(numpy_integers(0, 0, 4294967295LL, 3), (std::vector<std::int64_t>{3653403230, 2735729614, 2195314464}));
  EXPECT_EQ(numpy_integers(7, 0, 1, 4), (std::vector<std::int64_t>{0, 0, 0, 0}));
}

// ---- fast path == reference, streaming == batch ----

Config random_config(std::mt19937_64& rng) {
  Config c;
  c.max_ngram = 2 + static_cast<int>(rng() % 4);
  c.heads = 1 + static_cast<int>(rng() % 17);  // 8 and 16 take the register-resident AVX-512 loop
  const int layers = 1 + static_cast<int>(rng() % 3);
  for (int i = 0; i < layers; ++i) c.layers.push_back(static_cast<std::int64_t>(i * 3 + rng() % 3));
  for (int n = 2; n <= c.max_ngram; ++n) {
    // Mostly realistic sizes; sometimes tiny ones, which take the exact integer modulo path.
    c.vocab_per_order.push_back(rng() % 4 == 0 ? 2 + static_cast<std::int64_t>(rng() % 5000)
                                               : 10000 + static_cast<std::int64_t>(rng() % 20000000));
  }
  c.compressed_vocab = 1 + static_cast<std::int64_t>(rng() % 200000);
  c.pad_id = static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(c.compressed_vocab));
  c.seed = rng() % 1000000;
  return c;
}

std::vector<std::int64_t> random_ids(std::mt19937_64& rng, std::size_t n, std::int64_t vocab, bool negatives) {
  std::vector<std::int64_t> ids(n);
  for (auto& id : ids) {
    id = static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(vocab));
    if (negatives && rng() % 8 == 0) id = -1 - static_cast<std::int64_t>(rng() % 1000);
  }
  return ids;
}

TEST(EngramHash, FastPathEqualsReferenceWithNegativeIdsAndThreads) {
  std::mt19937_64 rng(42);
  for (int trial = 0; trial < 60; ++trial) {
    const Layout layout = make_layout(random_config(rng));
    const std::int64_t batch = 1 + static_cast<std::int64_t>(rng() % 3);
    const std::int64_t tokens = static_cast<std::int64_t>(rng() % 200);
    const auto ids = random_ids(rng, static_cast<std::size_t>(batch * tokens), layout.config.compressed_vocab, true);
    for (std::size_t li = 0; li < layout.layers.size(); ++li) {
      for (bool offsets : {false, true}) {
        EXPECT_EQ(hash_all(layout, li, ids, batch, false, offsets), hash_all(layout, li, ids, batch, true, offsets));
      }
    }
  }
  // Edge configs for the all-double path: primes just under its limit (2^23 − 32) and at its floor (2^13), with
  // vocabularies so small that multipliers (and mixes) come near 2^63, or so large that ids do.
  for (std::int64_t vocab : {8388000LL, 8192LL}) {
    for (std::int64_t compressed : {2LL, 3LL, 1000LL, (1LL << 29) - 1}) {
      Config c;
      c.vocab_per_order = {vocab, vocab};
      c.max_ngram = 3;
      c.heads = 8;
      c.layers = {0, 1};
      c.pad_id = 0;
      c.compressed_vocab = compressed;
      const Layout layout = make_layout(c);
      const auto ids = random_ids(rng, 3 * 1000, compressed, false);
      for (std::size_t li = 0; li < layout.layers.size(); ++li) {
        EXPECT_EQ(hash_all(layout, li, ids, 3, false, true), hash_all(layout, li, ids, 3, true, true))
            << "vocab " << vocab << " compressed " << compressed;
      }
    }
  }
  // Large enough to use both threads.
  const Layout demo = make_layout(preset("deepseek-demo"));
  const auto ids = random_ids(rng, 4 * 50000, 99092, false);
  EXPECT_EQ(hash_all(demo, 1, ids, 4, false, true, 2), hash_all(demo, 1, ids, 4, true, true));
  // A 64-byte-aligned output larger than L2 takes the non-temporal store path.
  HugeVector<std::int64_t> aligned(ids.size() * 16);
  ASSERT_EQ(reinterpret_cast<std::uintptr_t>(aligned.data()) % 64, 0u);
  hash_batch(demo, 1, ids.data(), 4, 50000, aligned.data(), true, 1);
  EXPECT_TRUE(std::equal(aligned.begin(), aligned.end(), hash_all(demo, 1, ids, 4, true, true).begin()));
}

TEST(EngramHash, RowIdsAreOffsetHashesWithinTheTable) {
  const Layout demo = make_layout(preset("deepseek-demo"));
  std::mt19937_64 rng(1);
  const auto ids = random_ids(rng, 3000, 99092, false);
  const auto hashes = hash_all(demo, 0, ids, 1, false, false);
  const auto rows = hash_all(demo, 0, ids, 1, false, true);
  const int columns = demo.config.columns();
  for (std::size_t i = 0; i < rows.size(); ++i) {
    const std::size_t c = i % static_cast<std::size_t>(columns);
    EXPECT_EQ(rows[i], hashes[i] + demo.layers[0].offsets[c]);
    ASSERT_GE(hashes[i], 0);
    ASSERT_LT(hashes[i], demo.layers[0].primes[c / 8][c % 8]);
  }
}

// The AVX-512 kernel against the scalar kernel beside it, position range by position range, bit for bit: every
// kernel of hash_avx512.cpp (all-double, integer, masked; cached and streamed stores), sequences shorter than the
// n-gram window, lengths around multiples of the vector width, ranges that start inside a sequence (as the
// streaming hasher's do), ids equal to the pad, the largest id, and negative ids.
TEST(EngramHash, Avx512KernelEqualsScalarKernelBitForBit) {
  std::mt19937_64 rng(2024);
  int covered = 0;
  for (int trial = 0; trial < 80; ++trial) {
    Config c;
    c.max_ngram = 2 + trial % 4;
    c.heads = std::vector<int>{8, 16, 24, 3, 12, 1}[static_cast<std::size_t>(trial % 6)];
    c.layers = {static_cast<std::int64_t>(trial % 5)};
    const bool tiny = trial % 7 == 6;  // primes below 2^13: the kernel declines, the scalar one runs
    const bool huge = trial % 7 == 5;  // primes above 2^23: the integer kernel instead of the all-double one
    for (int n = 2; n <= c.max_ngram; ++n) {
      c.vocab_per_order.push_back(tiny ? 700 + n : huge ? (std::int64_t{1} << 24) + 1000 * n : 600000 + 997 * n);
    }
    c.compressed_vocab = trial % 3 == 0 ? 99092 : 2 + static_cast<std::int64_t>(rng() % 5000);
    c.pad_id = static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(c.compressed_vocab));
    const Layout layout = make_layout(c);
    const HashKernel k(layout, 0, trial % 2 == 1);
    for (std::int64_t length : {0, 1, 2, 3, 7, 8, 9, 15, 16, 17, 31, 33, 64, 1003}) {
      std::vector<std::int64_t> row = random_ids(rng, static_cast<std::size_t>(length), c.compressed_vocab, trial % 4 == 3);
      for (std::int64_t t = 0; t < length; t += 5) row[static_cast<std::size_t>(t)] = c.pad_id;
      if (length > 2) row[static_cast<std::size_t>(length - 1)] = c.compressed_vocab - 1;
      const bool non_negative = std::all_of(row.begin(), row.end(), [](std::int64_t id) { return id >= 0; });
      for (std::int64_t begin : {std::int64_t{0}, std::min<std::int64_t>(length, 3)}) {
        const std::size_t n = static_cast<std::size_t>((length - begin) * k.columns);
        std::vector<std::int64_t> scalar(n, -1);
        HugeVector<std::int64_t> simd(n + 8, -1);  // 64-byte aligned, so the streamed stores can be taken too
        hash_positions_scalar(k, row.data(), begin, length, scalar.data());
        for (std::int64_t output_bytes : {std::int64_t{0}, std::int64_t{1} << 40}) {
          if (!hash_positions_avx512(k, row.data(), begin, length, simd.data(), non_negative, output_bytes)) {
            EXPECT_TRUE(tiny || !kHaveAvx512Kernel) << "trial " << trial;
            continue;
          }
          ++covered;
          ASSERT_TRUE(std::equal(scalar.begin(), scalar.end(), simd.begin()))
              << "trial " << trial << " heads " << c.heads << " max_ngram " << c.max_ngram << " length " << length
              << " begin " << begin;
          ASSERT_EQ(simd[n], -1) << "wrote past the end";
        }
      }
    }
  }
  if (!kHaveAvx512Kernel) GTEST_SKIP() << "this build has no AVX-512 kernel (the scalar kernel was checked alone)";
  EXPECT_GT(covered, 1000);
}

TEST(EngramHash, StreamingEqualsBatchForEveryLengthAndSplit) {
  std::mt19937_64 rng(7);
  const Layout layout = make_layout(preset("deepseek-v4.1"));  // orders 2-4: three ids of lookback
  const int columns = layout.config.columns();
  for (std::int64_t length = 0; length <= 64; ++length) {
    const std::int64_t batch = 2;
    const auto ids = random_ids(rng, static_cast<std::size_t>(batch * length), 99092, false);
    const auto whole = hash_all(layout, 1, ids, batch, false, true);
    StreamingHasher hasher(layout, 1, batch, true);
    std::vector<std::int64_t> streamed(whole.size());
    // Random chunking, including empty chunks and single tokens (decode).
    std::int64_t done = 0;
    while (done < length) {
      const std::int64_t chunk = std::min<std::int64_t>(length - done, static_cast<std::int64_t>(rng() % 5));
      std::vector<std::int64_t> part(static_cast<std::size_t>(batch * chunk)), out(static_cast<std::size_t>(batch * chunk * columns));
      for (std::int64_t b = 0; b < batch; ++b) {
        for (std::int64_t t = 0; t < chunk; ++t) part[static_cast<std::size_t>(b * chunk + t)] = ids[static_cast<std::size_t>(b * length + done + t)];
      }
      hasher.push(part.data(), chunk, out.data());
      for (std::int64_t b = 0; b < batch; ++b) {
        std::copy(out.begin() + b * chunk * columns, out.begin() + (b + 1) * chunk * columns,
                  streamed.begin() + (b * length + done) * columns);
      }
      done += chunk;
    }
    ASSERT_EQ(streamed, whole) << "length " << length;
  }
}

// ---- bad input ----

TEST(EngramConfig, BadConfigsAreNamed) {
  auto message = [](const std::string& text) {
    try {
      config_from_json_text(text, "cfg.json");
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  const std::string good_tail = R"("max_ngram":3,"heads":8,"pad_id":2,"seed":0,"compressed_vocab":99092)";
  EXPECT_NE(message(R"({"vocab_per_order":[1000,1000],"layers":[],)" + good_tail + "}").find("layer list is empty"),
            std::string::npos);
  EXPECT_NE(message("{not json").find("not valid JSON"), std::string::npos);
  EXPECT_NE(message("[1,2]").find("must be a JSON object"), std::string::npos);
  EXPECT_NE(message(R"({"vocab_per_order":[1000],"layers":[1],)" + good_tail + "}").find("vocab_per_order needs"),
            std::string::npos);
  EXPECT_NE(message(R"({"vocab_per_order":[1000,1000],"layers":[1],"max_ngram":3,"heads":8,"compressed_vocab":99092,"bogus":1})")
                .find("unknown key \"bogus\""),
            std::string::npos);
  EXPECT_NE(message(R"({"vocab_per_order":[1000,1000],"layers":[1],"max_ngram":3,"heads":8})").find("lacks \"compressed_vocab\""),
            std::string::npos);
  EXPECT_NE(message(R"({"vocab_per_order":[4000000000000000000,1000],"layers":[1],)" + good_tail + "}").find("too large"),
            std::string::npos);
  EXPECT_NE(message(R"({"vocab_per_order":[1000,1000],"layers":[1],"max_ngram":3,"heads":8,"compressed_vocab":99092,"seed":-1})")
                .find("seed"),
            std::string::npos);
  EXPECT_NE(message(R"({"vocab_per_order":[1000.5,1000],"layers":[1],)" + good_tail + "}").find("must hold integers"),
            std::string::npos);
  EXPECT_NE(message(R"({"vocab_per_order":[1000,1000],"layers":[1],"max_ngram":3,"heads":8,"compressed_vocab":99092,"multipliers":[[1,2,99999999999999999]]})")
                .find("overflow int64"),
            std::string::npos);
  EXPECT_EQ(message(R"({"preset":"deepseek-demo","compressed_vocab":128000})"), "no error");
}

// ---- found with the fuzz targets (tests/fuzz, docs/fuzzing.md) ----

std::string config_error(const std::string& text) {
  try {
    make_layout(config_from_json_text(text, "c.json"));
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

// Explicit primes that add up past int64 overflowed the layer's offsets (UBSan on fuzz_engram_config).
TEST(EngramFuzzRegression, PrimesThatOverflowTheRowIdsAreNamed) {
  const std::string head = R"({"vocab_per_order":[2],"max_ngram":2,"heads":2,"layers":[0],"compressed_vocab":10,)";
  EXPECT_NE(config_error(head + R"("primes":[[[9223372036854775807,9223372036854775807]]]})")
                .find("the primes of a layer add up to about"),
            std::string::npos);
  EXPECT_EQ(config_error(head + R"("primes":[[[1000000007,998244353]]]})"), "no error");
}

// 40 layers of 63 orders × 4096 heads made make_layout walk 10 million primes (a timeout on fuzz_engram_config).
TEST(EngramFuzzRegression, LayoutsWithTooManyColumnsAreRefused) {
  std::string layers;
  for (int l = 0; l < 40; ++l) layers += (l ? "," : "") + std::to_string(l);
  std::string vocab;
  for (int n = 0; n < 63; ++n) vocab += n ? ",2" : "2";
  EXPECT_NE(config_error(R"({"vocab_per_order":[)" + vocab + R"(],"max_ngram":64,"heads":4096,"layers":[)" + layers +
                         R"(],"compressed_vocab":10})")
                .find("layers · (max_ngram - 1) · heads = 40 · 63 · 4096 exceeds 65536"),
            std::string::npos);
  EXPECT_EQ(config_error(R"({"vocab_per_order":[1000],"max_ngram":2,"heads":4096,"layers":[0,1,2,3],"compressed_vocab":10})"),
            "no error");
}

TEST(EngramHash, IdsAtOrAboveTheVocabularyAreRejected) {
  const Layout layout = make_layout(preset("deepseek-demo"));
  std::vector<std::int64_t> ids = {1, 2, 99092};
  std::vector<std::int64_t> out(ids.size() * 16);
  try {
    hash_batch(layout, 0, ids.data(), 1, 3, out.data(), false);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("id 99092 at position 2"), std::string::npos) << e.what();
  }
  StreamingHasher hasher(layout, 0, 1, false);
  EXPECT_THROW(hasher.push(ids.data(), 3, out.data()), Error);
}

// ---- against ../shared/reference (label conformance) ----

json run_driver(const ScratchDir& dir, const char* mode, const json& cases) {
  testing::write_file(dir.file("cases.json"), cases.dump());
  const std::string cmd = "HASHMEM_SHARED_DIR=" HASHMEM_SHARED_DIR " " HASHMEM_SYSTEM_PYTHON " " HASHMEM_SOURCE_DIR
                          "/tests/engram_ref_driver.py " + std::string(mode) + " " + dir.file("cases.json") + " " +
                          dir.file("out.json");
  auto r = testing::run_command(cmd, dir.path().string());
  EXPECT_EQ(r.exit_code, 0) << r.err;
  return json::parse(testing::read_file(dir.file("out.json")));
}

TEST(EngramConformance, HashesEqualTheReferenceOn120RandomConfigs) {
  HASHMEM_REQUIRE_PYTHON_AND_SHARED();
  ScratchDir dir;
  std::mt19937_64 rng(2026);
  json cases = json::array();
  std::vector<Config> configs;
  std::vector<std::vector<std::int64_t>> id_sets;
  std::vector<std::int64_t> batches;
  for (int i = 0; i < 120; ++i) {
    Config c = random_config(rng);
    const std::int64_t batch = 1 + static_cast<std::int64_t>(rng() % 3), tokens = static_cast<std::int64_t>(rng() % 40);
    auto ids = random_ids(rng, static_cast<std::size_t>(batch * tokens), c.compressed_vocab, i % 2 == 1);
    json rows = json::array();
    for (std::int64_t b = 0; b < batch; ++b) {
      rows.push_back(std::vector<std::int64_t>(ids.begin() + b * tokens, ids.begin() + (b + 1) * tokens));
    }
    if (tokens == 0) continue;  // numpy cannot infer a [B, 0] shape from empty lists
    cases.push_back({{"config",
                      {{"vocab_per_order", c.vocab_per_order}, {"max_ngram", c.max_ngram}, {"heads", c.heads},
                       {"layers", c.layers}, {"pad_id", c.pad_id}, {"seed", c.seed},
                       {"compressed_vocab", c.compressed_vocab}}},
                     {"tokens", rows}});
    configs.push_back(c);
    id_sets.push_back(ids);
    batches.push_back(batch);
  }
  ASSERT_GE(configs.size(), 100u);
  const json expected = run_driver(dir, "hash", cases);
  ASSERT_EQ(expected.size(), configs.size());
  for (std::size_t i = 0; i < configs.size(); ++i) {
    const Layout layout = make_layout(configs[i]);
    for (std::size_t li = 0; li < layout.layers.size(); ++li) {
      const json& e = expected[i]["layers"][std::to_string(layout.layers[li].layer_id)];
      ASSERT_EQ(layout.layers[li].multipliers, e["multipliers"].get<std::vector<std::int64_t>>()) << i;
      ASSERT_EQ(layout.layers[li].rows, e["rows"].get<std::int64_t>()) << i;
      ASSERT_EQ(hash_all(layout, li, id_sets[i], batches[i], false), flatten(e["hashes"])) << "case " << i;
    }
  }
}

TEST(EngramConformance, DefaultRngEqualsNumpyAndTheModel) {
  HASHMEM_REQUIRE_PYTHON_AND_SHARED();
  ScratchDir dir;
  std::mt19937_64 rng(99);
  json cases = json::array();
  for (int i = 0; i < 150; ++i) {
    // Seeds beyond 2^32 and 2^64 exercise multi-word SeedSequence entropy; bounds cover both Lemire paths.
    std::uint64_t seed = i % 3 == 0 ? rng() : rng() % 100000;
    std::int64_t high = i % 2 == 0 ? static_cast<std::int64_t>(2 + rng() % 0xfffffff0ull)
                                   : static_cast<std::int64_t>(rng() >> 1) | 0x100000000LL;
    cases.push_back({{"seed", seed}, {"high", high}, {"n", 5}});
  }
  const json expected = run_driver(dir, "rng", cases);
  ASSERT_EQ(expected.size(), cases.size());
  for (std::size_t i = 0; i < cases.size(); ++i) {
    const auto ours = numpy_integers(cases[i]["seed"].get<std::uint64_t>(), 0, cases[i]["high"].get<std::int64_t>(), 5);
    EXPECT_EQ(ours, expected[i]["numpy"].get<std::vector<std::int64_t>>()) << cases[i].dump();
    if (expected[i].contains("model")) {
      EXPECT_EQ(ours, expected[i]["model"].get<std::vector<std::int64_t>>());
    }
  }
}

}  // namespace
}  // namespace hashmem::engram
