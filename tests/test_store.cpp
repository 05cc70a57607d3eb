// The table format and the tiered store: codecs, create/read/verify, damage, gathers across tiers,
// prefetch pipelines, updates and checkpoints, crash safety.
#include <gtest/gtest.h>

#include <cmath>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <random>
#include <nlohmann/json.hpp>
#include <thread>
#include <xxhash.h>

#include "hashmem/error.hpp"
#include "hashmem/store.hpp"
#include "store/format_internal.hpp"
#include "test_util.hpp"

namespace hashmem::store {
namespace {

using testing::ScratchDir;

engram::Config small_config() { return testing::small_engram_config(); }

CreateOptions small_options(DType dtype, std::int64_t dim = 32) {
  CreateOptions o;
  o.config = small_config();
  o.dim = dim;
  o.dtype = dtype;
  o.checksum_block = 4096;
  o.seed = 7;
  return o;
}

// The rows of a table read straight from its file and decoded with the reference codec.
std::vector<float> rows_from_file(const TableInfo& info, int tensor, const std::vector<std::int64_t>& ids) {
  const std::string bytes = testing::read_file(info.path);
  std::vector<float> out(ids.size() * static_cast<std::size_t>(info.dim));
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const auto* row = reinterpret_cast<const std::uint8_t*>(bytes.data()) + info.tensors[tensor].offset +
                      static_cast<std::size_t>(ids[i]) * info.row_bytes;
    decode_row(info.dtype, row, info.dim, out.data() + i * info.dim);
  }
  return out;
}

std::vector<std::int64_t> random_ids(std::int64_t rows, std::size_t n, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<std::int64_t> ids(n);
  for (auto& id : ids) id = static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(rows));
  return ids;
}

void flip_byte(const std::string& path, std::uint64_t offset) {
  std::string bytes = testing::read_file(path);
  bytes[offset] ^= 0x20;
  testing::write_file(path, bytes);
}

TEST(StoreCodec, Bf16RoundsToNearestEven) {
  EXPECT_EQ(float_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(bf16_to_float(0x3f80), 1.0f);
  // 1 + 2^-8 is halfway between bf16 1.0 and 1 + 2^-7: ties go to the even mantissa (1.0).
  EXPECT_EQ(float_to_bf16(1.0f + 0x1.0p-8f), 0x3f80);
  EXPECT_EQ(float_to_bf16(1.0f + 0x1.0p-8f + 0x1.0p-20f), 0x3f81);
  EXPECT_EQ(float_to_bf16(1.0f + 3 * 0x1.0p-8f), 0x3f82);  // halfway, odd below → rounds up to even
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(NAN))));
  EXPECT_EQ(float_to_bf16(-2.0f), 0xc000);
}

TEST(StoreCodec, Fp8RowsRoundTripWithinHalfAnUlpOfTheirBlockScale) {
  std::mt19937 rng(1);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  const std::int64_t dim = 128;
  std::vector<float> values(dim), back(dim);
  std::vector<std::uint8_t> row(row_bytes(DType::fp8, dim));
  ASSERT_EQ(row.size(), 132u);
  for (int trial = 0; trial < 200; ++trial) {
    for (auto& v : values) v = normal(rng) * (trial % 7 == 0 ? 1e-4f : 1.0f);
    encode_row(DType::fp8, values.data(), dim, row.data());
    decode_row(DType::fp8, row.data(), dim, back.data());
    for (std::int64_t b = 0; b < dim / 32; ++b) {
      float amax = 0;
      for (int i = 0; i < 32; ++i) amax = std::max(amax, std::fabs(values[b * 32 + i]));
      const float scale = std::ldexp(1.0f, row[dim + b] - 127);
      EXPECT_LE(amax / scale, 448.0f);
      EXPECT_GT(amax / scale, 224.0f);  // the smallest power of two that fits
      for (int i = 0; i < 32; ++i) {
        const float v = values[b * 32 + i], w = back[b * 32 + i];
        // e4m3: 3 mantissa bits → relative error <= 2^-4 for normals; subnormals step 2^-9 · scale.
        EXPECT_LE(std::fabs(v - w), std::max(std::fabs(v) * 0.0625f, 0x1.0p-10f * scale) * 1.0001f) << v;
      }
    }
  }
  // Exactly representable values survive exactly: 448, 2^-6 (smallest normal), 2^-9 (smallest subnormal) · scale.
  std::vector<float> exact(32, 0.0f);
  exact[0] = 448.0f;
  exact[1] = 0x1.0p-6f;
  exact[2] = 0x1.0p-9f;
  exact[3] = -1.5f;
  std::vector<std::uint8_t> r(33);
  std::vector<float> out(32);
  encode_row(DType::fp8, exact.data(), 32, r.data());
  EXPECT_EQ(r[32], 127);  // scale 1
  EXPECT_EQ(r[0], 0x7e);
  EXPECT_EQ(r[1], 0x08);
  EXPECT_EQ(r[2], 0x01);
  decode_row(DType::fp8, r.data(), 32, out.data());
  EXPECT_EQ(out, exact);
}

class StoreFormat : public ::testing::TestWithParam<DType> {};

TEST_P(StoreFormat, CreateReadVerifyRoundTrip) {
  ScratchDir dir;
  const std::string path = dir.file("t.safetensors");
  const TableInfo made = create_table(small_options(GetParam()), path);
  const TableInfo info = read_info(path);
  EXPECT_EQ(info.header_bytes % 4096, 0u);
  EXPECT_EQ(info.file_bytes, std::filesystem::file_size(path));
  ASSERT_EQ(info.tensors.size(), 2u);
  EXPECT_EQ(info.tensors[0].name, "layer.1");
  EXPECT_EQ(info.tensors[1].offset, info.tensors[0].offset + info.tensors[0].bytes);
  const engram::Layout layout = engram::make_layout(small_config());
  EXPECT_EQ(info.tensors[0].rows, layout.layers[0].rows);
  EXPECT_EQ(info.tensors[1].rows, layout.layers[1].rows);
  EXPECT_EQ(info.config.multipliers, (std::vector<std::vector<std::int64_t>>{layout.layers[0].multipliers,
                                                                             layout.layers[1].multipliers}));
  EXPECT_EQ(info.dtype, GetParam());
  EXPECT_EQ(made.file_bytes, info.file_bytes);
  EXPECT_TRUE(verify_table(path).empty());

  // Deterministic init: the same options give the same bytes; N(0, 1) roughly.
  const std::string again = dir.file("u.safetensors");
  create_table(small_options(GetParam()), again);
  EXPECT_TRUE(testing::read_file(path) == testing::read_file(again));
  std::vector<std::int64_t> all(static_cast<std::size_t>(info.tensors[0].rows));
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<std::int64_t>(i);
  const std::vector<float> v = rows_from_file(info, 0, all);
  double sum = 0, sq = 0;
  for (float x : v) sum += x, sq += double(x) * x;
  const double mean = sum / v.size(), var = sq / v.size() - mean * mean;
  EXPECT_NEAR(mean, 0.0, 0.02);
  EXPECT_NEAR(var, 1.0, 0.05);
}

TEST_P(StoreFormat, NumpyReadsTheSafetensorsLayout) {
  if (!testing::have_system_python()) GTEST_SKIP() << "skipped: " HASHMEM_SYSTEM_PYTHON " is absent";
  ScratchDir dir;
  const std::string path = dir.file("t.safetensors");
  const TableInfo info = create_table(small_options(GetParam()), path);
  // A reader written from the safetensors spec alone (8-byte length, JSON header, offsets after it).
  const std::string script = dir.file("read.py");
  testing::write_file(script, R"(
import json, struct, sys, numpy as np
data = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', data[:8])[0]
h = json.loads(data[8:8 + n])
base = 8 + n
assert base % 4096 == 0
t = h['layer.2']
b, e = t['data_offsets']
dt = {'F32': np.float32, 'U8': np.uint8, 'BF16': np.uint16}[t['dtype']]
a = np.frombuffer(data[base + b:base + e], dtype=dt).reshape(t['shape'])
if t['dtype'] == 'BF16':
    a = (a.astype(np.uint32) << 16).view(np.float32)
print(t['dtype'], a.shape[0], a.shape[1], float(a[5].astype(np.float64)[0]), h['__metadata__']['row_dtype'])
)");
  const auto r = testing::run_command(HASHMEM_SYSTEM_PYTHON " " + script + " " + path, dir.path().string());
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::vector<float> row5 = rows_from_file(info, 1, {5});
  std::istringstream in(r.out);
  std::string dtype, row_dtype;
  std::int64_t rows, width;
  double first;
  in >> dtype >> rows >> width >> first >> row_dtype;
  EXPECT_EQ(rows, info.tensors[1].rows);
  EXPECT_EQ(row_dtype, dtype_name(GetParam()));
  if (GetParam() == DType::fp8) {
    EXPECT_EQ(width, 33);  // 32 e4m3 bytes + 1 scale byte
  } else {
    EXPECT_EQ(width, 32);
    EXPECT_FLOAT_EQ(static_cast<float>(first), row5[0]);
  }
}

INSTANTIATE_TEST_SUITE_P(AllDtypes, StoreFormat, ::testing::Values(DType::f32, DType::bf16, DType::fp8),
                         [](const auto& p) { return std::string(dtype_name(p.param)); });

TEST(StoreFormatDamage, ChecksumsFindFlippedBytes) {
  ScratchDir dir;
  const std::string path = dir.file("t.safetensors");
  const TableInfo info = create_table(small_options(DType::f32), path);
  // A byte in block 3 of layer.2.
  flip_byte(path, info.tensors[1].offset + 3 * 4096 + 17);
  auto damaged = verify_table(path);
  ASSERT_EQ(damaged.size(), 1u);
  EXPECT_NE(damaged[0].find("layer.2 block 3"), std::string::npos) << damaged[0];
  flip_byte(path, info.tensors[1].offset + 3 * 4096 + 17);
  EXPECT_TRUE(verify_table(path).empty());
  // A stored checksum (not the header's).
  flip_byte(path, info.checksums_offset + 8 * 2 + 1);
  EXPECT_EQ(verify_table(path).size(), 1u);
}

TEST(StoreFormatDamage, BadHeadersAreNamed) {
  ScratchDir dir;
  const std::string path = dir.file("t.safetensors");
  const TableInfo info = create_table(small_options(DType::bf16), path);
  const std::string good = testing::read_file(path);
  auto expect_error = [&](const std::string& bytes, const std::string& fragment) {
    const std::string bad = dir.file("bad.safetensors");
    testing::write_file(bad, bytes);
    try {
      read_info(bad);
      ADD_FAILURE() << "no error for " << fragment;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(bad), std::string::npos) << e.what();
    }
  };
  expect_error(good.substr(0, 5), "truncated");
  expect_error(good.substr(0, 1000), "truncated");
  expect_error(good.substr(0, good.size() - 1), "truncated");
  expect_error(good + "x", "too long");
  std::string garbled = good;
  garbled[8] = '#';  // the opening brace
  expect_error(garbled, "not valid JSON");
  std::string huge = good;
  huge[7] = '\x7f';
  expect_error(huge, "not a safetensors file");
  // A header edit that keeps valid JSON (a digit of the seed) is caught by the header checksum.
  std::string edited = good;
  const auto at = edited.find("\"seed\":\"7\"");
  ASSERT_NE(at, std::string::npos);
  edited[at + 8] = '8';
  expect_error(edited, "header checksum");
  // Valid safetensors, but not one of ours.
  std::string foreign = "{\"__metadata__\":{},\"x\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
  std::string file(8, '\0');
  file[0] = static_cast<char>(foreign.size());
  expect_error(file + foreign + "abcd", "not a hashmem table");
  EXPECT_THROW(read_info(dir.file("missing.safetensors")), Error);
  (void)info;
}

// A header that is exactly what create_table writes for dim 2^62 (f32 rows of 2^64 = 0 bytes after wrapping), with
// a valid header checksum: every size check passed and read_info described an empty table of absurd rows. Sizes
// are now bounded by the file before they are multiplied. (Found by reading the fuzz_table_header target's path
// through parse_header; the fuzzer cannot forge the checksum.)
TEST(StoreFormatFuzzRegression, ForgedHeaderWithWrappingRowSizesIsRefused) {
  ScratchDir dir;
  const std::string path = dir.file("t.safetensors");
  create_table(small_options(DType::f32, 4), path);
  TableInfo info = read_info(path);
  auto forge = [&](std::int64_t dim) {
    info.dim = dim;
    info.metadata["dim"] = std::to_string(dim);
    info.row_bytes = row_bytes(DType::f32, dim);
    info.tensors = plan_tensors(engram::make_layout(info.config), DType::f32, dim, 0);
    const std::string header = header_for(info);
    std::string file(8, '\0');
    for (int i = 0; i < 8; ++i) file[static_cast<std::size_t>(i)] = static_cast<char>((header.size() >> (8 * i)) & 0xff);
    file += header;
    const std::uint64_t sum = XXH3_64bits(header.data(), header.size());
    for (int i = 0; i < 8; ++i) file.push_back(static_cast<char>((sum >> (8 * i)) & 0xff));  // the only checksum
    testing::write_file(dir.file("forged.safetensors"), file);
  };
  forge(std::int64_t{1} << 62);
  try {
    read_info(dir.file("forged.safetensors"));
    FAIL() << "a header with dim 2^62 was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("dim 4611686018427387904 / checksum block 4096 larger than the file"),
              std::string::npos)
        << e.what();
  }
  // A dim that fits the file but whose rows do not: named as a truncated layer before any product can wrap.
  forge(1000);
  try {
    read_info(dir.file("forged.safetensors"));
    FAIL() << "a header whose rows exceed the file was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("is truncated: layer 1 has"), std::string::npos) << e.what();
  }
}

TEST(StoreFormat, CreateRejectsBadOptions) {
  ScratchDir dir;
  CreateOptions o = small_options(DType::fp8, 40);
  EXPECT_THROW(create_table(o, dir.file("a")), Error);  // fp8 needs dim % 32 == 0
  o = small_options(DType::f32, 0);
  EXPECT_THROW(create_table(o, dir.file("a")), Error);
  o = small_options(DType::f32);
  o.checksum_block = 1000;
  EXPECT_THROW(create_table(o, dir.file("a")), Error);
  o = small_options(DType::f32);
  o.config.layers.clear();
  EXPECT_THROW(create_table(o, dir.file("a")), Error);
  EXPECT_EQ(testing::count_files(dir.path()), 0);  // nothing half-written
  EXPECT_THROW(parse_dtype("f16"), Error);
  EXPECT_THROW(parse_tier("tape"), Error);
  EXPECT_THROW(parse_policy("clock"), Error);
}

// ---- tiers ----

struct TierCase {
  const char* name;
  OpenOptions options;
};

std::vector<TierCase> tier_cases(const TableInfo& info) {
  std::vector<TierCase> cases;
  cases.push_back({"dram", {}});
  OpenOptions ssd;
  ssd.tier = Tier::ssd;
  cases.push_back({"ssd-no-cache", ssd});
  for (Policy p : {Policy::lru, Policy::s3fifo, Policy::tinylfu}) {
    OpenOptions o = ssd;
    o.policy = p;
    o.dram_budget = 200 * info.row_bytes;
    cases.push_back({policy_name(p), o});
  }
  OpenOptions hot = ssd;
  hot.dram_budget = 300 * info.row_bytes;
  hot.hot_rows = {{0, 1, 2, 3, 5, 8, 13, 21, 34, 55}, {7, 6, 5}};
  cases.push_back({"static+s3fifo", hot});
  OpenOptions quarter = ssd;  // the issue's tiered-training case: a DRAM budget of a quarter of the table
  quarter.policy = Policy::s3fifo;
  quarter.dram_budget = info.data_bytes() / 4;
  cases.push_back({"quarter-budget", quarter});
  OpenOptions tiny = ssd;
  tiny.staging_bytes = 3 * 8192;  // three buffers: most rows take the late path
  tiny.queue_depth = 2;
  tiny.dram_budget = 50 * info.row_bytes;
  cases.push_back({"tiny-staging", tiny});
  return cases;
}

TEST(StoreTiers, GatherIsTheSameOnEveryTierForEveryDtype) {
  for (DType dtype : {DType::f32, DType::bf16, DType::fp8}) {
    ScratchDir dir;
    const std::string path = dir.file("t.safetensors");
    const TableInfo info = create_table(small_options(dtype), path);
    for (const TierCase& c : tier_cases(info)) {
      SCOPED_TRACE(std::string(c.name) + " " + dtype_name(dtype));
      auto table = Table::open(path, c.options);
      for (int tensor = 0; tensor < 2; ++tensor) {
        for (int round = 0; round < 4; ++round) {
          const auto ids = random_ids(info.tensors[tensor].rows, 700, 100 * tensor + round);  // with repeats
          const std::vector<float> want = rows_from_file(info, tensor, ids);
          std::vector<float> got(want.size());
          table->gather(tensor, ids.data(), ids.size(), got.data());
          ASSERT_EQ(got, want);
          std::vector<std::uint16_t> half(want.size());
          Ticket t = table->prefetch(tensor, ids.data(), ids.size());
          table->gather(t, half.data());
          for (std::size_t i = 0; i < want.size(); ++i) ASSERT_EQ(half[i], float_to_bf16(want[i]));
        }
      }
      const Stats s = table->stats();
      EXPECT_EQ(s.lookups, 2u * 4 * 2 * 700);
      if (c.options.tier == Tier::ssd) {
        EXPECT_EQ(s.static_hits + s.cache_hits + s.inflight_hits + s.misses, s.lookups);
        EXPECT_GT(s.reads, 0u);
        EXPECT_LE(s.max_queue_depth, static_cast<std::uint64_t>(c.options.queue_depth));
        if (c.options.dram_budget > 0) {
          EXPECT_GT(s.cache_hits + s.static_hits, 0u);
        }
      }
    }
  }
}

TEST(StoreTiers, PrefetchPipelineEqualsSynchronousGathers) {
  ScratchDir dir;
  const std::string path = dir.file("t.safetensors");
  const TableInfo info = create_table(small_options(DType::bf16), path);
  const int steps = 12;
  std::vector<std::vector<std::int64_t>> batches;
  for (int s = 0; s < steps; ++s) batches.push_back(random_ids(info.tensors[s % 2].rows, 300, 900 + s));
  for (const TierCase& c : tier_cases(info)) {
    SCOPED_TRACE(c.name);
    auto table = Table::open(path, c.options);
    // Up to three tickets in flight: prefetch step s+2 while gathering step s.
    std::vector<Ticket> tickets(steps);
    for (int s = 0; s < 2; ++s) tickets[s] = table->prefetch(s % 2, batches[s].data(), batches[s].size());
    for (int s = 0; s < steps; ++s) {
      if (s + 2 < steps) tickets[s + 2] = table->prefetch((s + 2) % 2, batches[s + 2].data(), batches[s + 2].size());
      std::vector<float> got(batches[s].size() * info.dim);
      table->gather(tickets[s], got.data());
      ASSERT_EQ(got, rows_from_file(info, s % 2, batches[s])) << "step " << s;
      EXPECT_THROW(table->gather(tickets[s], got.data()), Error);  // a ticket is gathered once
    }
    // A ticket dropped without gathering releases its pins and buffers: the table keeps working.
    { Ticket dropped = table->prefetch(0, batches[0].data(), batches[0].size()); }
    std::vector<float> got(batches[1].size() * info.dim);
    table->gather(1, batches[1].data(), batches[1].size(), got.data());
    EXPECT_EQ(got, rows_from_file(info, 1, batches[1]));
  }
}

TEST(StoreTiers, BadRowIdsAreRejected) {
  ScratchDir dir;
  const std::string path = dir.file("t.safetensors");
  const TableInfo info = create_table(small_options(DType::f32), path);
  for (const TierCase& c : tier_cases(info)) {
    auto table = Table::open(path, c.options);
    std::vector<float> out(info.dim);
    const std::int64_t bad[] = {info.tensors[0].rows, -1};
    for (std::int64_t id : bad) EXPECT_THROW(table->gather(0, &id, 1, out.data()), Error);
    const std::int64_t ok = 0;
    EXPECT_THROW(table->gather(2, &ok, 1, out.data()), Error);
    EXPECT_THROW(table->apply_rows(0, &ok, 1, out.data(), {}), Error);  // read-only
  }
}

// ---- updates ----

// The same updates (SGD, Adam) through every tier must give bit-identical tables (and Adam moments). This is
// the tiered-training equivalence: a DRAM budget far below the table gives the bits of all-in-DRAM training.
TEST(StoreUpdates, EveryTierGivesTheSameBitsAsDram) {
  for (Optimizer optimizer : {Optimizer::sgd, Optimizer::adam}) {
    for (DType dtype : {DType::f32, DType::bf16, DType::fp8}) {
      ScratchDir dir;
      const std::string original = dir.file("t.safetensors");
      const TableInfo info = create_table(small_options(dtype), original);
      std::string reference_bytes, reference_moments;
      for (const TierCase& c : tier_cases(info)) {
        SCOPED_TRACE(std::string(c.name) + " " + dtype_name(dtype) + (optimizer == Optimizer::adam ? " adam" : " sgd"));
        const std::string path = dir.file(std::string(c.name) + ".safetensors");
        std::filesystem::copy_file(original, path);
        OpenOptions o = c.options;
        o.writable = true;
        auto table = Table::open(path, o);
        std::mt19937 rng(5);
        std::normal_distribution<float> normal;
        for (int step = 0; step < 6; ++step) {
          const int tensor = step % 2;
          const auto ids = random_ids(info.tensors[tensor].rows, 400, 50 + step);
          // Prefetch the step's rows before updating them: the gather must see the update.
          Ticket t = table->prefetch(tensor, ids.data(), ids.size());
          std::vector<float> grads(ids.size() * info.dim);
          for (auto& g : grads) g = normal(rng);
          UpdateOptions u;
          u.optimizer = optimizer;
          u.lr = optimizer == Optimizer::adam ? 0.01f : 0.1f;
          u.step = step + 1;
          table->apply_rows(tensor, ids.data(), ids.size(), grads.data(), u);
          std::vector<float> seen(grads.size()), now(grads.size());
          table->gather(t, seen.data());
          table->gather(tensor, ids.data(), ids.size(), now.data());
          ASSERT_EQ(seen, now);
          if (step == 2) table->checkpoint();
        }
        table->checkpoint();
        table.reset();
        EXPECT_TRUE(verify_table(path).empty());
        EXPECT_FALSE(std::filesystem::exists(path + ".work"));
        const std::string bytes = testing::read_file(path);
        const std::string moments = optimizer == Optimizer::adam ? testing::read_file(path + ".adam") : "";
        if (optimizer == Optimizer::adam) {
          EXPECT_TRUE(verify_table(path + ".adam").empty());
        }
        if (reference_bytes.empty()) {
          reference_bytes = bytes;
          reference_moments = moments;
          EXPECT_NE(bytes, testing::read_file(original));
        } else {
          EXPECT_TRUE(bytes == reference_bytes);
          EXPECT_TRUE(moments == reference_moments);
        }
      }
    }
  }
}

// checkpoint_to: a snapshot elsewhere equals what checkpoint() writes in place, carries the Adam moments (also
// when they were never loaded since open), and leaves the table working on its own file.
TEST(StoreUpdates, CheckpointToWritesASnapshotElsewhere) {
  for (const char* tier : {"dram", "ssd"}) {
    SCOPED_TRACE(tier);
    ScratchDir dir;
    const std::string path = dir.file("t.safetensors");
    const TableInfo info = create_table(small_options(DType::f32), path);
    OpenOptions o;
    o.tier = parse_tier(tier);
    o.writable = true;
    o.dram_budget = info.data_bytes() / 4;
    {
      auto table = Table::open(path, o);
      const auto ids = random_ids(info.tensors[0].rows, 300, 3);
      std::vector<float> grads(ids.size() * info.dim, 0.5f);
      UpdateOptions u;
      u.optimizer = Optimizer::adam;
      table->apply_rows(0, ids.data(), ids.size(), grads.data(), u);
      table->checkpoint_to(dir.file("snap.safetensors"));
      table->checkpoint();
    }
    EXPECT_TRUE(verify_table(dir.file("snap.safetensors")).empty());
    EXPECT_EQ(testing::read_file(dir.file("snap.safetensors")), testing::read_file(path));
    EXPECT_EQ(testing::read_file(dir.file("snap.safetensors.adam")), testing::read_file(path + ".adam"));
    // Reopened, never updated: the snapshot still carries the moments on disk.
    auto table = Table::open(path, o);
    table->checkpoint_to(dir.file("again.safetensors"));
    EXPECT_EQ(testing::read_file(dir.file("again.safetensors.adam")), testing::read_file(path + ".adam"));
  }
}

TEST(StoreUpdates, AdamStepMatchesTheFormula) {
  ScratchDir dir;
  const std::string path = dir.file("t.safetensors");
  const TableInfo info = create_table(small_options(DType::f32), path);
  OpenOptions o;
  o.writable = true;
  auto table = Table::open(path, o);
  const std::int64_t id = 17;
  std::vector<float> before(info.dim), after(info.dim), g(info.dim);
  for (std::int64_t j = 0; j < info.dim; ++j) g[j] = 0.1f * static_cast<float>(j - 10);
  table->gather(0, &id, 1, before.data());
  UpdateOptions u;
  u.optimizer = Optimizer::adam;
  u.lr = 0.5f;
  for (int step = 1; step <= 2; ++step) {
    u.step = step;
    table->apply_rows(0, &id, 1, g.data(), u);
  }
  table->gather(0, &id, 1, after.data());
  for (std::int64_t j = 0; j < info.dim; ++j) {
    // Constant gradient: m̂ = g and v̂ = g² after any number of steps, so each step moves by lr·g/(|g| + eps).
    const double per_step = g[j] == 0 ? 0.0 : 0.5 * g[j] / (std::fabs(g[j]) + 1e-8);
    EXPECT_NEAR(after[j], before[j] - 2 * per_step, 1e-5) << j;
  }
  u.step = 0;
  EXPECT_THROW(table->apply_rows(0, &id, 1, g.data(), u), Error);
}

TEST(StoreUpdates, DuplicateRowsSumTheirGradients) {
  ScratchDir dir;
  const std::string path = dir.file("t.safetensors");
  const TableInfo info = create_table(small_options(DType::f32), path);
  OpenOptions o;
  o.writable = true;
  auto table = Table::open(path, o);
  const std::int64_t ids[] = {9, 4, 9};
  std::vector<float> grads(3 * info.dim, 1.0f);
  std::vector<float> before(info.dim), after(info.dim);
  table->gather(0, &ids[0], 1, before.data());
  table->apply_rows(0, ids, 3, grads.data(), {Optimizer::sgd, 0.5f});
  table->gather(0, &ids[0], 1, after.data());
  for (std::int64_t j = 0; j < info.dim; ++j) EXPECT_EQ(after[j], before[j] - 0.5f * 2.0f);
}

// ---- crash safety: kill -9 in the middle of writing; what remains must verify ----

// Runs the CLI in the background, waits until a temporary file of `target` exists, then SIGKILLs it.
void kill_while_writing(const std::string& args, const std::string& target, const std::string& dir) {
  const pid_t pid = ::fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // `exec`: the shell becomes the CLI, so the SIGKILL below reaches the writer itself (not a shell around it).
    ::execl("/bin/sh", "sh", "-c", ("exec " + std::string(HASHMEM_CLI) + " " + args + " >/dev/null 2>&1").c_str(), nullptr);
    ::_exit(127);
  }
  const std::string prefix = std::filesystem::path(target).filename().string() + ".tmp-";
  bool seen = false;
  for (int i = 0; i < 20000 && !seen; ++i) {
    for (const auto& e : std::filesystem::directory_iterator(dir)) {
      if (e.path().filename().string().rfind(prefix, 0) == 0 && std::filesystem::file_size(e.path()) > 0) seen = true;
    }
    if (!seen) std::this_thread::sleep_for(std::chrono::microseconds(500));
  }
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  EXPECT_TRUE(seen) << "the temporary file never appeared";
  EXPECT_TRUE(WIFSIGNALED(status)) << "the job finished before it could be killed";
}

// What writers of `name` leave when killed: "<name>.tmp-XXXXXX" temporaries and the SSD tier's "<name>.work".
std::vector<std::string> leftovers_of(const std::filesystem::path& dir, const std::string& name) {
  std::vector<std::string> found;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    const std::string f = e.path().filename().string();
    if (f.rfind(name + ".tmp-", 0) == 0 || f == name + ".work") found.push_back(f);
  }
  return found;
}

TEST(StoreCrash, KillDuringCreateLeavesTheOldTable) {
  ScratchDir dir;
  const std::string path = dir.file("t.safetensors");
  ASSERT_EQ(testing::run_command(std::string(HASHMEM_CLI) + " table create --config " + HASHMEM_TEST_DATA +
                                     "/store/small-config.json --dim 32 --dtype bf16 --out " + path,
                                 dir.path().string()).exit_code, 0);
  const std::string before = testing::read_file(path);
  // A much bigger table (~100 MB) over the same path, killed while it is being written.
  kill_while_writing("table create --config " HASHMEM_TEST_DATA "/store/medium-config.json --dim 32 --dtype bf16 --out " + path,
                     path, dir.path().string());
  EXPECT_TRUE(testing::read_file(path) == before);
  EXPECT_TRUE(verify_table(path).empty());
  // kill -9 cannot be caught: the temporary stays until the next open or create of the same table removes it.
  EXPECT_EQ(leftovers_of(dir.path(), "t.safetensors").size(), 1u);
  Table::open(path);
  EXPECT_TRUE(leftovers_of(dir.path(), "t.safetensors").empty());
  kill_while_writing("table create --config " HASHMEM_TEST_DATA "/store/medium-config.json --dim 32 --dtype bf16 --out " + path,
                     path, dir.path().string());
  EXPECT_EQ(leftovers_of(dir.path(), "t.safetensors").size(), 1u);
  ASSERT_EQ(testing::run_command(std::string(HASHMEM_CLI) + " table create --config " + HASHMEM_TEST_DATA +
                                     "/store/small-config.json --dim 32 --dtype bf16 --out " + path,
                                 dir.path().string()).exit_code, 0);
  EXPECT_TRUE(leftovers_of(dir.path(), "t.safetensors").empty());
  EXPECT_TRUE(testing::read_file(path) == before);
}

TEST(StoreCrash, KillDuringCheckpointLeavesAConsistentTable) {
  for (const char* tier : {"dram", "ssd"}) {
    ScratchDir dir;
    const std::string path = dir.file("t.safetensors");
    ASSERT_EQ(testing::run_command(std::string(HASHMEM_CLI) +
                                       " table create --config " HASHMEM_TEST_DATA "/store/medium-config.json --dim 32 --dtype bf16 --init zeros --out " + path,
                                   dir.path().string()).exit_code, 0);
    kill_while_writing(std::string("table update ") + path + " --tier " + tier +
                           " --dram-budget 1000000 --steps 1000000 --rows 64 --checkpoint-every 1",
                       path, dir.path().string());
    EXPECT_TRUE(verify_table(path).empty()) << tier;
    EXPECT_FALSE(leftovers_of(dir.path(), "t.safetensors").empty()) << tier;  // a temporary (and the SSD working copy)
    OpenOptions o;
    o.tier = std::string(tier) == "ssd" ? Tier::ssd : Tier::dram;
    o.writable = true;
    Table::open(path, o);  // cleans up what the killed writer left
    EXPECT_TRUE(leftovers_of(dir.path(), "t.safetensors").empty()) << tier;
  }
}

// ---- the CLI ----

TEST(StoreCli, CreateInfoVerifyAndDamage) {
  ScratchDir dir;
  const std::string path = dir.file("t.safetensors");
  const std::string cli = HASHMEM_CLI;
  auto run = [&](const std::string& args) { return testing::run_command(cli + " " + args, dir.path().string()); };
  auto r = run("table create --config " HASHMEM_TEST_DATA "/store/small-config.json --dim 64 --dtype fp8 --init zeros --out " + path + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["dtype"], "fp8");
  EXPECT_EQ(j["row_bytes"], 66);
  r = run("table info " + path + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(nlohmann::json::parse(r.out)["tensors"].size(), 2u);
  r = run("table verify " + path);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  const TableInfo info = read_info(path);
  flip_byte(path, info.tensors[0].offset + 10);
  r = run("table verify " + path + " --json");
  EXPECT_NE(r.exit_code, 0);
  EXPECT_EQ(nlohmann::json::parse(r.out)["ok"], false);
  r = run("table verify " + path);
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("layer.1 block 0"), std::string::npos) << r.err;
  // Bad input: each names the problem, exits non-zero, and leaves no file behind.
  const int files = testing::count_files(dir.path());
  for (const std::string& bad : {std::string("table create --preset nope --dim 8 --out ") + dir.file("x"),
                                 std::string("table create --preset deepseek-demo --dim 8 --dtype f16 --out ") + dir.file("x"),
                                 std::string("table create --preset deepseek-demo --dim 8 --init ones --out ") + dir.file("x"),
                                 std::string("table create --preset deepseek-demo --dim 30 --dtype fp8 --out ") + dir.file("x"),
                                 std::string("table info ") + dir.file("none"),
                                 std::string("table verify ") + HASHMEM_TEST_DATA + "/store/small-config.json"}) {
    r = run(bad);
    EXPECT_NE(r.exit_code, 0) << bad;
    EXPECT_NE(r.err.find("hashmem: "), std::string::npos) << bad << ": " << r.err;
  }
  EXPECT_EQ(testing::count_files(dir.path()), files);
}

}  // namespace
}  // namespace hashmem::store
