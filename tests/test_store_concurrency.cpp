// N reader threads gathering while one writer applies updates and checkpoints, on every tier. Built twice:
// into hashmem_tests, and with ThreadSanitizer into hashmem_tsan_tests (CTest label `tsan`), which fails on
// any data race.
#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <random>
#include <thread>

#include "common/fault_injection.hpp"
#include "hashmem/error.hpp"
#include "hashmem/store.hpp"
#include "store/format_internal.hpp"
#include "test_util.hpp"

namespace hashmem::store {
namespace {

TEST(StoreConcurrency, ReadersAndOneWriter) {
  engram::Config c;
  c.vocab_per_order = {400, 400};
  c.max_ngram = 3;
  c.heads = 2;
  c.layers = {3};
  c.compressed_vocab = 50;
  CreateOptions co;
  co.config = c;
  co.dim = 32;
  co.dtype = DType::bf16;
  co.checksum_block = 4096;
  testing::ScratchDir dir;
  const std::string path = dir.file("t.safetensors");
  const TableInfo info = create_table(co, path);
  const std::int64_t rows = info.tensors[0].rows;
  // Readers only read the lower half; the writer only updates the upper half, so readers can check values.
  const std::int64_t half = rows / 2;
  std::vector<float> initial(static_cast<std::size_t>(half * info.dim));
  {
    auto t = Table::open(path);
    std::vector<std::int64_t> ids(static_cast<std::size_t>(half));
    for (std::int64_t i = 0; i < half; ++i) ids[static_cast<std::size_t>(i)] = i;
    t->gather(0, ids.data(), ids.size(), initial.data());
  }
  for (Tier tier : {Tier::dram, Tier::ssd}) {
    for (Policy policy : {Policy::lru, Policy::s3fifo, Policy::tinylfu}) {
      if (tier == Tier::dram && policy != Policy::lru) continue;
      SCOPED_TRACE(std::string(tier == Tier::dram ? "dram " : "ssd ") + policy_name(policy));
      OpenOptions o;
      o.tier = tier;
      o.writable = true;
      o.policy = policy;
      o.dram_budget = 300 * info.row_bytes;
      o.hot_rows = {{0, 1, 2, half, half + 1}};
      o.staging_bytes = 16 * 8192;
      o.queue_depth = 8;
      auto table = Table::open(path, o);
      std::atomic<bool> stop{false};
      std::atomic<int> mismatches{0};
      std::vector<std::thread> readers;
      for (int r = 0; r < 3; ++r) {
        readers.emplace_back([&, r] {
          std::mt19937_64 rng(r);
          std::vector<std::int64_t> ids(64), mixed(64);
          std::vector<float> out(64 * info.dim);
          for (int iter = 0; iter < 150 && !stop; ++iter) {
            for (auto& id : ids) id = static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(half));
            // Prefetch ahead, gather after, as the training loop does; sometimes a row of the updated half.
            Ticket t = table->prefetch(0, ids.data(), ids.size());
            for (auto& id : mixed) id = static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(rows));
            table->gather(0, mixed.data(), mixed.size(), out.data());
            table->gather(t, out.data());
            for (std::size_t i = 0; i < ids.size(); ++i) {
              for (std::int64_t j = 0; j < info.dim; ++j) {
                if (out[i * info.dim + j] != initial[static_cast<std::size_t>(ids[i] * info.dim + j)]) ++mismatches;
              }
            }
          }
        });
      }
      std::thread writer([&] {
        std::mt19937_64 rng(99);
        std::vector<std::int64_t> ids(32);
        std::vector<float> grads(32 * info.dim, 0.25f);
        for (int step = 0; step < 60; ++step) {
          for (auto& id : ids) id = half + static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(rows - half));
          table->apply_rows(0, ids.data(), ids.size(), grads.data(), {Optimizer::sgd, 0.01f});
          if (step % 20 == 19) table->checkpoint();
        }
      });
      writer.join();
      for (auto& t : readers) t.join();
      EXPECT_EQ(mismatches.load(), 0);
      table.reset();
      EXPECT_TRUE(verify_table(path).empty());
    }
  }
}

// The table writer's stages (1-3 threads making chunks, a checksum thread, a write thread) handing 4 KiB chunks
// along: the same file as one big chunk, and a full disk midway stops every stage and reaches the caller.
TEST(StoreConcurrency, TableWriterStages) {
  engram::Config c;
  c.vocab_per_order = {40000, 50000};  // ~5 MB: several of the O_DIRECT writer's 1 MiB writes
  c.max_ngram = 3;
  c.heads = 2;
  c.layers = {1, 5};
  c.compressed_vocab = 50;
  CreateOptions co;
  co.config = c;
  co.dim = 7;
  co.dtype = DType::bf16;
  co.checksum_block = 4096;
  testing::ScratchDir dir;
  const std::string path = dir.file("t.safetensors");
  const TableInfo info = create_table(co, path);
  const std::string bytes = testing::read_file(path);
  auto copy_rows = [&](const TensorInfo& t, std::int64_t first, std::int64_t last, std::uint8_t* dst) {
    std::memcpy(dst, bytes.data() + t.offset + static_cast<std::uint64_t>(first) * info.row_bytes,
                static_cast<std::size_t>(last - first) * info.row_bytes);
  };
  const std::string copy = dir.file("copy.safetensors");
  for (int makers : {1, 2, 3}) {
    write_table_file(info, copy, makers, copy_rows, 4096);
    EXPECT_TRUE(testing::read_file(copy) == bytes) << makers << " makers";
  }
  fault::Injection full({.op = fault::Op::write, .path_contains = copy, .skip = 2, .error = ENOSPC});
  EXPECT_THROW(write_table_file(info, copy, 2, copy_rows, 4096), Error);
  EXPECT_EQ(full.hits(), 1u);
  EXPECT_TRUE(testing::read_file(copy) == bytes);  // the previous file stands
}

}  // namespace
}  // namespace hashmem::store
