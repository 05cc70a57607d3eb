// Faults injected into the store's I/O (common/fault_injection.hpp): read errors, short and slow reads on the SSD
// tier, ENOSPC during write-back, checkpoints and creation, failing syncs. Each must reach the caller naming the
// file, the offset and the row; the DRAM cache keeps serving what it holds; no update is lost; the table on disk is
// the previous checkpoint or the new one, never half of each.
#include <gtest/gtest.h>

#include <cerrno>
#include <filesystem>
#include <string>
#include <vector>

#include "common/fault_injection.hpp"
#include "hashmem/error.hpp"
#include "hashmem/store.hpp"
#include "test_util.hpp"

namespace hashmem::store {
namespace {

using testing::ScratchDir;

engram::Config fault_config() { return testing::small_engram_config(); }

std::string make_table(const ScratchDir& dir, DType dtype = DType::f32) {
  CreateOptions o;
  o.config = fault_config();
  o.dim = 32;
  o.dtype = dtype;
  o.checksum_block = 4096;
  o.seed = 3;
  const std::string path = dir.file("t.safetensors");
  create_table(o, path);
  return path;
}

OpenOptions ssd(std::uint64_t budget_rows, bool writable = false) {
  OpenOptions o;
  o.tier = Tier::ssd;
  o.policy = Policy::lru;
  o.dram_budget = budget_rows * row_bytes(DType::f32, 32);
  o.writable = writable;
  return o;
}

std::vector<float> gather(Table& t, const std::vector<std::int64_t>& ids) {
  std::vector<float> out(ids.size() * static_cast<std::size_t>(t.info().dim));
  t.gather(0, ids.data(), ids.size(), out.data());
  return out;
}

std::vector<std::int64_t> range(std::int64_t first, std::int64_t last) {
  std::vector<std::int64_t> ids;
  for (std::int64_t i = first; i < last; ++i) ids.push_back(i);
  return ids;
}

// The message of the Error fn throws ("" when it throws none).
template <class Fn>
std::string error_of(Fn&& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool has(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

TEST(StoreFaults, ReadErrorNamesFileOffsetAndRowWhileTheCacheKeepsServing) {
  ScratchDir dir;
  const std::string path = make_table(dir);
  auto dram = Table::open(path);
  auto table = Table::open(path, ssd(64));
  const std::vector<std::int64_t> cached = range(0, 40);
  EXPECT_EQ(gather(*table, cached), gather(*dram, cached));  // read once: now in the cache
  {
    fault::Injection eio({.op = fault::Op::read, .path_contains = path, .error = EIO});
    EXPECT_EQ(gather(*table, cached), gather(*dram, cached));
    const std::string e = error_of([&] { gather(*table, {500}); });
    EXPECT_TRUE(has(e, path) && has(e, "at byte") && has(e, "row 500 of layer.1") && has(e, strerror(EIO))) << e;
    // A ticket mixing cached rows and a failing one fails as a whole, and releases what it pinned.
    std::vector<std::int64_t> mixed = cached;
    mixed.push_back(501);
    store::Ticket ticket = table->prefetch(0, mixed.data(), mixed.size());
    std::vector<float> out(mixed.size() * 32);
    EXPECT_THROW(table->gather(ticket, out.data()), Error);
    EXPECT_THROW(table->gather(ticket, out.data()), Error);  // consumed
    // Two tickets sharing one failing read both fail.
    const std::int64_t shared = 502;
    store::Ticket a = table->prefetch(0, &shared, 1), b = table->prefetch(0, &shared, 1);
    EXPECT_THROW(table->gather(a, out.data()), Error);
    EXPECT_THROW(table->gather(b, out.data()), Error);
    EXPECT_EQ(gather(*table, cached), gather(*dram, cached));  // still served from DRAM
    EXPECT_GT(eio.hits(), 0u);
  }
  // The failed reads were not kept: once the device recovers the same rows read correctly.
  const std::vector<std::int64_t> failed = {500, 501, 502};
  EXPECT_EQ(gather(*table, failed), gather(*dram, failed));
  // Every slot was unpinned: a stream of new rows can evict all of them.
  EXPECT_EQ(gather(*table, range(1000, 1200)), gather(*dram, range(1000, 1200)));
}

TEST(StoreFaults, DeferredReadsFailCleanlyToo) {
  ScratchDir dir;
  const std::string path = make_table(dir);
  auto dram = Table::open(path);
  OpenOptions o = ssd(16);
  o.staging_bytes = 2 * 4096;  // two buffers: most rows of a ticket take the late path
  o.queue_depth = 4;
  auto table = Table::open(path, o);
  const std::vector<std::int64_t> ids = range(100, 180);
  {
    fault::Injection eio({.op = fault::Op::read, .path_contains = path, .skip = 20, .error = EIO});
    const std::string e = error_of([&] { gather(*table, ids); });
    EXPECT_TRUE(has(e, path) && has(e, "of layer.1")) << e;
  }
  EXPECT_EQ(gather(*table, ids), gather(*dram, ids));
}

TEST(StoreFaults, AShortReadIsAnErrorNeverWrongBytes) {
  ScratchDir dir;
  const std::string path = make_table(dir);
  auto dram = Table::open(path);
  auto table = Table::open(path, ssd(8));
  {
    fault::Injection short_read({.op = fault::Op::read, .path_contains = path, .short_bytes = 0});
    const std::string e = error_of([&] { gather(*table, {7}); });
    EXPECT_TRUE(has(e, "short read") && has(e, path) && has(e, "row 7 of layer.1")) << e;
  }
  EXPECT_EQ(gather(*table, {7}), gather(*dram, {7}));
}

TEST(StoreFaults, SlowReadsAreLateButCorrect) {
  ScratchDir dir;
  const std::string path = make_table(dir);
  auto dram = Table::open(path);
  auto table = Table::open(path, ssd(8));
  fault::Injection slow({.op = fault::Op::read, .path_contains = path, .delay_seconds = 0.05});
  const std::vector<std::int64_t> ids = range(300, 310);
  store::Ticket t = table->prefetch(0, ids.data(), ids.size());
  std::vector<float> out(ids.size() * 32);
  table->gather(t, out.data());  // waits for the slow device
  EXPECT_EQ(out, gather(*dram, ids));
  EXPECT_GT(table->stats().late_rows, 0u);
  EXPECT_GT(slow.hits(), 0u);
}

TEST(StoreFaults, NoSpaceDuringWriteBackLosesNoUpdate) {
  ScratchDir dir;
  const std::string path = make_table(dir);
  const std::vector<float> before = [&] {
    auto dram = Table::open(path);
    return gather(*dram, range(0, 200));
  }();
  auto table = Table::open(path, ssd(16, /*writable=*/true));
  const std::vector<std::int64_t> rows = range(0, 200);
  const std::vector<float> grads(rows.size() * 32, 1.0f);
  {
    fault::Injection nospace({.op = fault::Op::write, .path_contains = path + ".work", .error = ENOSPC});
    const std::string e = error_of([&] { table->apply_rows(0, rows.data(), rows.size(), grads.data(), {Optimizer::sgd, 1.0f}); });
    EXPECT_TRUE(has(e, path + ".work") && has(e, strerror(ENOSPC)) && has(e, "of layer.1")) << e;
  }
  // The 16 rows that fit in the cache took their step; the rest kept their values: none is lost or torn.
  const std::vector<float> now = gather(*table, rows);
  std::size_t stepped = 0;
  for (std::size_t r = 0; r < rows.size(); ++r) {
    const bool all_stepped = std::equal(now.begin() + r * 32, now.begin() + (r + 1) * 32, before.begin() + r * 32,
                                        [](float x, float b) { return x == b - 1.0f; });
    const bool none = std::equal(now.begin() + r * 32, now.begin() + (r + 1) * 32, before.begin() + r * 32);
    EXPECT_TRUE(all_stepped || none) << "row " << r;
    stepped += all_stepped;
  }
  EXPECT_EQ(stepped, 16u);
  // Rows made dirty in the cache, then a gather whose admissions must evict them while writes fail: the gather
  // returns the right rows, the dirty ones keep their slots, and the checkpoint says what it could not write.
  const std::vector<std::int64_t> few = range(500, 516);
  table->apply_rows(0, few.data(), few.size(), grads.data(), {Optimizer::sgd, 1.0f});
  const std::vector<float> updated = gather(*table, few);
  table->reset_stats();
  {
    fault::Injection nospace({.op = fault::Op::write, .path_contains = path + ".work", .error = ENOSPC});
    auto dram = Table::open(path);
    EXPECT_EQ(gather(*table, range(1000, 1040)), gather(*dram, range(1000, 1040)));
    EXPECT_GT(table->stats().write_errors, 0u);
    const std::string e = error_of([&] { table->checkpoint(); });
    EXPECT_TRUE(has(e, path + ".work") && has(e, strerror(ENOSPC))) << e;
  }
  table->checkpoint();
  auto reread = Table::open(path);
  EXPECT_EQ(gather(*reread, rows), now);
  EXPECT_EQ(gather(*reread, few), updated);
  EXPECT_TRUE(verify_table(path).empty());
}

TEST(StoreFaults, AFailedCheckpointLeavesThePreviousOne) {
  for (Tier tier : {Tier::dram, Tier::ssd}) {
    for (const std::string& where : {std::string(".work"), std::string(".tmp-")}) {
      if (tier == Tier::dram && where == ".work") continue;  // the DRAM tier has no working copy
      for (fault::Op op : {fault::Op::write, fault::Op::sync}) {
        SCOPED_TRACE((tier == Tier::dram ? "dram " : "ssd ") + where + (op == fault::Op::write ? " write" : " sync"));
        ScratchDir dir;
        const std::string path = make_table(dir);
        OpenOptions o = ssd(16, true);
        o.tier = tier;
        auto table = Table::open(path, o);
        const std::vector<std::int64_t> rows = range(0, 64);
        const std::vector<float> grads(rows.size() * 32, 0.5f);
        table->apply_rows(0, rows.data(), rows.size(), grads.data(), {Optimizer::adam, 0.1f});
        table->checkpoint();
        const std::string v1 = testing::read_file(path);
        table->apply_rows(0, rows.data(), rows.size(), grads.data(), {Optimizer::adam, 0.1f, 0.9f, 0.999f, 1e-8f, 2});
        {
          fault::Injection fail({.op = op, .path_contains = path + where, .error = op == fault::Op::write ? ENOSPC : EIO});
          const std::string e = error_of([&] { table->checkpoint(); });
          EXPECT_TRUE(has(e, path)) << e;
        }
        EXPECT_TRUE(testing::read_file(path) == v1);
        EXPECT_TRUE(verify_table(path).empty());
        for (const auto& f : std::filesystem::directory_iterator(dir.path())) {
          EXPECT_EQ(f.path().string().find(".tmp-"), std::string::npos) << f.path();
        }
        table->checkpoint();  // the device recovered: the next checkpoint holds the current rows
        auto reread = Table::open(path);
        EXPECT_EQ(gather(*reread, rows), gather(*table, rows));
        EXPECT_TRUE(testing::read_file(path) != v1);
      }
    }
  }
}

TEST(StoreFaults, CreateAndLoadErrorsAreNamedAndLeaveNoFile) {
  ScratchDir dir;
  const std::string path = make_table(dir);
  const std::string old = testing::read_file(path);
  CreateOptions o;
  o.config = fault_config();
  o.dim = 64;
  o.checksum_block = 4096;
  {
    fault::Injection nospace({.op = fault::Op::write, .path_contains = path, .error = ENOSPC});
    const std::string e = error_of([&] { create_table(o, path); });
    EXPECT_TRUE(has(e, path) && has(e, strerror(ENOSPC))) << e;
  }
  EXPECT_TRUE(testing::read_file(path) == old);
  EXPECT_EQ(testing::count_files(dir.path()), 1);
  {
    // read_info's three reads pass; the DRAM tier's load fails.
    fault::Injection eio({.op = fault::Op::read, .path_contains = path, .skip = 3, .error = EIO});
    const std::string e = error_of([&] { Table::open(path); });
    EXPECT_TRUE(has(e, path) && has(e, "at byte") && has(e, strerror(EIO))) << e;
  }
  EXPECT_NO_THROW(Table::open(path));
}

}  // namespace
}  // namespace hashmem::store
