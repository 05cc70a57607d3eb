// Table creation keeps its bytes: SHA-256 digests of tables made by the first writer (serial init, buffered
// writes), so any faster writer (pipelined, O_DIRECT, vectorised init) must reproduce them exactly, for every
// dtype, odd dims (a normal pair straddles two rows), rows straddling write chunks, and both inits.
#include <gtest/gtest.h>

#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "common/fault_injection.hpp"
#include "hashmem/engram.hpp"
#include "hashmem/error.hpp"
#include "hashmem/sha256.hpp"
#include "hashmem/store.hpp"
#include "store/format_internal.hpp"
#include "store/row_init.hpp"
#include "test_util.hpp"

namespace hashmem::store {
namespace {

using testing::ScratchDir;

struct GoldenTable {
  const char* config;  // under tests/data/store
  std::int64_t dim;
  DType dtype;
  Init init;
  float stddev;
  std::uint64_t seed, checksum_block;
  const char* sha256;  // of the whole file, as `hashmem table create` wrote it before the pipelined writer
};

const GoldenTable kGolden[] = {
    {"small-config.json", 32, DType::f32, Init::normal, 1.0f, 7, 4096,
     "ed874005938f2576671742ba8d06121a37f44b4414558b1d925e0a7bb739c115"},
    {"small-config.json", 32, DType::bf16, Init::normal, 1.0f, 7, 4096,
     "29f5fcbe3c3d4bed3b65fe07ac018754acdbc033e9cdeaba8187677005d44e6c"},
    {"small-config.json", 32, DType::fp8, Init::normal, 1.0f, 7, 4096,
     "8726e8d3637d1d69e43a18ce88f7de0bac88268591eb7f232a12f8a1eece4446"},
    {"small-config.json", 5, DType::f32, Init::normal, 0.5f, 3, 1 << 20,
     "016d402996362c833dd021debd19469ecdadb7e25b495f3ddcc30fdac37e12fd"},
    {"medium-config.json", 7, DType::bf16, Init::normal, 1.0f, 11, 4096,
     "c3f09b2b1d38aa8b705a7c44196875ab7d0b76055db0ad8cf9181c877d58bcb6"},
    {"medium-config.json", 3, DType::f32, Init::zeros, 1.0f, 0, 8192,
     "2327de6788572586ff72a4d278f8084985f660004ce8e1253649278fc9b05dfa"},
};

CreateOptions options_of(const GoldenTable& g) {
  CreateOptions o;
  o.config = engram::load_config(std::string(HASHMEM_TEST_DATA) + "/store/" + g.config);
  o.config.head_dim = g.dim;  // as the CLI sets it
  o.dim = g.dim;
  o.dtype = g.dtype;
  o.init = g.init;
  o.stddev = g.stddev;
  o.seed = g.seed;
  o.checksum_block = g.checksum_block;
  return o;
}

std::string file_sha256(const std::string& path) {
  const std::string bytes = testing::read_file(path);
  return sha256_hex(bytes.data(), bytes.size());
}

TEST(StoreCreate, BytesMatchTheFirstWriter) {
  ScratchDir dir;
  for (const GoldenTable& g : kGolden) {
    SCOPED_TRACE(std::string(g.config) + " dim " + std::to_string(g.dim) + " " + dtype_name(g.dtype));
    const std::string path = dir.file("t.safetensors");
    create_table(options_of(g), path);
    EXPECT_EQ(file_sha256(path), g.sha256);
  }
}

// The pipelined writer's chunks are file ranges that rows straddle (14-byte rows here) and checksum blocks do not
// line up with: any chunk size gives the same file, checksums included.
TEST(StoreCreate, ChunkSizeDoesNotChangeTheBytes) {
  ScratchDir dir;
  const GoldenTable& g = kGolden[4];  // medium config, bf16 dim 7, 4 KiB checksum blocks
  const std::string path = dir.file("t.safetensors");
  create_table(options_of(g), path);
  const std::string bytes = testing::read_file(path);
  const TableInfo info = read_info(path);
  for (std::uint64_t chunk : {std::uint64_t{4096}, std::uint64_t{3 * 4096}, std::uint64_t{1} << 20}) {
    const std::string copy = dir.file("c" + std::to_string(chunk));
    write_table_file(info, copy, 1, [&](const TensorInfo& t, std::int64_t first, std::int64_t last, std::uint8_t* dst) {
      std::memcpy(dst, bytes.data() + t.offset + static_cast<std::uint64_t>(first) * info.row_bytes,
                  static_cast<std::size_t>(last - first) * info.row_bytes);
    }, chunk);
    EXPECT_TRUE(testing::read_file(copy) == bytes) << "chunk " << chunk;
  }
}

// Faults under the O_DIRECT writer thread: a short write (the rest goes through the page cache, same bytes), a
// full disk midway (the error names the file, reaches the caller, and leaves the previous file and no temporary).
TEST(StoreCreate, WriterFaultsMidway) {
  ScratchDir dir;
  const GoldenTable& g = kGolden[4];
  const std::string path = dir.file("t.safetensors");
  {
    fault::Injection shorter({.op = fault::Op::write, .path_contains = path, .skip = 1, .times = 1, .short_bytes = 5000});
    create_table(options_of(g), path);
    EXPECT_EQ(shorter.hits(), 1u);
  }
  EXPECT_EQ(file_sha256(path), g.sha256);
  for (std::uint64_t skip : {1, 2}) {
    fault::Injection nospace({.op = fault::Op::write, .path_contains = path, .skip = skip, .error = ENOSPC});
    try {
      create_table(options_of(kGolden[5]), path);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(std::strerror(ENOSPC)), std::string::npos) << e.what();
    }
    EXPECT_EQ(nospace.hits(), 1u);
  }
  EXPECT_EQ(file_sha256(path), g.sha256);
  EXPECT_EQ(testing::count_files(dir.path()), 1);
}

// The vectorised init stream against its scalar definition, bit for bit: 4 M pairs from several keys (the vector
// path's certified roundings and its fallbacks near zeros of log, cos and sin), then slices that start and end
// on either value of a pair.
TEST(StoreCreate, NormalValuesEqualTheScalarPairs) {
  for (std::uint64_t seed : {0ull, 7ull, 0x123456789abcdefull}) {
    const std::uint64_t key = normal_key(seed, static_cast<std::int64_t>(seed % 30));
    const std::size_t pairs = std::size_t{1} << 20;
    std::vector<float> fast(2 * pairs), plain(2 * pairs);
    normal_values(key, 0, fast.size(), 1.0f, fast.data());
    for (std::size_t p = 0; p < pairs; ++p) normal_pair(key, p, plain.data() + 2 * p);
    ASSERT_EQ(std::memcmp(fast.data(), plain.data(), fast.size() * sizeof(float)), 0) << "seed " << seed;
  }
  std::mt19937_64 rng(5);
  const std::uint64_t key = normal_key(3, 14);
  for (int trial = 0; trial < 200; ++trial) {
    const std::uint64_t first = rng() % 100000;
    const std::size_t count = static_cast<std::size_t>(rng() % 70);
    const float stddev = trial % 2 ? 0.02f : 1.5f;
    std::vector<float> fast(count), plain(count);
    normal_values(key, first, count, stddev, fast.data());
    for (std::size_t i = 0; i < count; ++i) {
      float pair[2];
      normal_pair(key, (first + i) / 2, pair);
      plain[i] = pair[(first + i) & 1] * stddev;
    }
    // Bit for bit (memcmp), but never on count 0's null pointers.
    ASSERT_TRUE(count == 0 || std::memcmp(fast.data(), plain.data(), count * sizeof(float)) == 0)
        << "first " << first << " count " << count;
  }
}

}  // namespace
}  // namespace hashmem::store
