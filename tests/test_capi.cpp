// The C API (include/hashmem/c_api.h): gathers equal to the C++ Table on both tiers and every dtype, prefetch
// tickets, and errptr behaviour (messages naming the problem, an earlier message freed, NULL errptr).
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "hashmem/c_api.h"
#include "hashmem/store.hpp"
#include "test_util.hpp"

namespace hashmem::store {
namespace {

using testing::ScratchDir;

std::string make_table(const ScratchDir& dir, DType dtype) {
  CreateOptions o;
  o.config = testing::small_engram_config();
  o.dim = 32;
  o.dtype = dtype;
  o.checksum_block = 4096;
  o.seed = 11;
  const std::string path = dir.file(std::string("t.") + dtype_name(dtype));
  create_table(o, path);
  return path;
}

// The error message and its ownership, taken from errptr (freed with hm_free).
std::string take_error(char*& err) {
  std::string message = err ? err : "";
  hm_free(err);
  err = nullptr;
  return message;
}

std::vector<std::int64_t> some_rows(std::int64_t rows) {
  return {0, rows - 1, 5, 5, rows / 2, 1};
}

TEST(CApi, GatherEqualsTheCppTableOnEveryTierAndDtype) {
  ScratchDir dir;
  for (DType dtype : {DType::f32, DType::bf16, DType::fp8}) {
    const std::string path = make_table(dir, dtype);
    OpenOptions cpp_options;
    const auto cpp = Table::open(path, cpp_options);
    for (const char* options : {"", "{\"tier\": \"dram\"}", "{\"tier\": \"ssd\", \"dram_budget\": 65536}"}) {
      SCOPED_TRACE(std::string(dtype_name(dtype)) + " " + options);
      char* err = nullptr;
      hm_table* t = hm_table_open(path.c_str(), options, &err);
      ASSERT_NE(t, nullptr) << take_error(err);
      ASSERT_EQ(hm_table_tensors(t), static_cast<int>(cpp->info().tensors.size()));
      ASSERT_EQ(hm_table_dim(t), cpp->info().dim);
      for (int tensor = 0; tensor < hm_table_tensors(t); ++tensor) {
        ASSERT_EQ(hm_table_rows(t, tensor), cpp->info().tensors[tensor].rows);
        const auto ids = some_rows(hm_table_rows(t, tensor));
        std::vector<float> want(ids.size() * 32), got(ids.size() * 32, -1.0f);
        cpp->gather(tensor, ids.data(), ids.size(), want.data());
        hm_table_gather_f32(t, tensor, ids.data(), ids.size(), got.data(), &err);
        ASSERT_EQ(err, nullptr) << take_error(err);
        EXPECT_EQ(got, want);
        std::vector<float> fetched(ids.size() * 32, -1.0f);
        hm_ticket* ticket = hm_table_prefetch(t, tensor, ids.data(), ids.size(), &err);
        ASSERT_NE(ticket, nullptr) << take_error(err);
        hm_ticket_gather_f32(ticket, fetched.data(), &err);
        ASSERT_EQ(err, nullptr) << take_error(err);
        EXPECT_EQ(fetched, want);
      }
      hm_table_close(t);
    }
  }
}

// The header's promise: one table, many threads gathering and prefetching at once (the SSD tier's small cache
// makes them evict each other's rows), each getting the C++ Table's rows.
TEST(CApi, ManyThreadsShareOneTable) {
  ScratchDir dir;
  const std::string path = make_table(dir, DType::fp8);
  const auto cpp = Table::open(path);
  char* err = nullptr;
  hm_table* t = hm_table_open(path.c_str(), "{\"tier\": \"ssd\", \"dram_budget\": 8192}", &err);
  ASSERT_NE(t, nullptr) << take_error(err);
  const std::int64_t rows = hm_table_rows(t, 1);
  std::vector<std::string> failures(4);
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      for (std::int64_t i = 0; i < 200; ++i) {
        const std::vector<std::int64_t> ids = {(i * 7 + k) % rows, (i * 13 + 3 * k) % rows};
        std::vector<float> want(64), got(64), fetched(64);
        cpp->gather(1, ids.data(), ids.size(), want.data());
        char* e = nullptr;
        hm_table_gather_f32(t, 1, ids.data(), ids.size(), got.data(), &e);
        hm_ticket_gather_f32(hm_table_prefetch(t, 1, ids.data(), ids.size(), &e), fetched.data(), &e);
        if (e != nullptr || got != want || fetched != want) {
          failures[k] = e ? e : "rows differ at step " + std::to_string(i);
          hm_free(e);
          return;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  hm_table_close(t);
  for (const auto& f : failures) EXPECT_EQ(f, "");
}

TEST(CApi, OpenErrorsNameThePathAndTheOption) {
  ScratchDir dir;
  const std::string path = make_table(dir, DType::f32);
  char* err = nullptr;
  EXPECT_EQ(hm_table_open(dir.file("missing").c_str(), nullptr, &err), nullptr);
  EXPECT_NE(take_error(err).find("missing"), std::string::npos);
  EXPECT_EQ(hm_table_open(path.c_str(), "{\"tier\": ", &err), nullptr);
  EXPECT_NE(take_error(err).find("not valid JSON"), std::string::npos);
  EXPECT_EQ(hm_table_open(path.c_str(), "{\"tier\": \"dram\", \"colour\": 1}", &err), nullptr);
  EXPECT_NE(take_error(err).find("unknown key \"colour\""), std::string::npos);
  EXPECT_EQ(hm_table_open(path.c_str(), "{\"tier\": \"tape\"}", &err), nullptr);
  EXPECT_NE(take_error(err).find("\"tape\""), std::string::npos);
  EXPECT_EQ(hm_table_open(path.c_str(), "{\"dram_budget\": -1}", &err), nullptr);
  EXPECT_NE(take_error(err).find("\"dram_budget\""), std::string::npos);
  EXPECT_EQ(hm_table_open(path.c_str(), "[1]", &err), nullptr);
  EXPECT_NE(take_error(err).find("JSON object"), std::string::npos);
  EXPECT_EQ(hm_table_open(nullptr, nullptr, &err), nullptr);
  EXPECT_NE(take_error(err).find("path is NULL"), std::string::npos);
  // errptr NULL: the failure is told by the NULL table only.
  EXPECT_EQ(hm_table_open(dir.file("missing").c_str(), nullptr, nullptr), nullptr);
}

TEST(CApi, GatherErrorsNameTheTensorAndTheRow) {
  ScratchDir dir;
  const std::string path = make_table(dir, DType::bf16);
  char* err = nullptr;
  hm_table* t = hm_table_open(path.c_str(), "{\"tier\": \"ssd\"}", &err);
  ASSERT_NE(t, nullptr) << take_error(err);
  const std::int64_t rows = hm_table_rows(t, 1);
  std::vector<float> out(32);
  const std::int64_t ok = 0, bad = rows;
  hm_table_gather_f32(t, 7, &ok, 1, out.data(), &err);
  EXPECT_NE(take_error(err).find("no tensor 7"), std::string::npos);
  hm_table_gather_f32(t, -1, &ok, 1, out.data(), &err);
  EXPECT_NE(take_error(err).find("no tensor -1"), std::string::npos);
  hm_table_gather_f32(t, 1, &bad, 1, out.data(), &err);
  EXPECT_NE(take_error(err).find("row id " + std::to_string(rows)), std::string::npos);
  EXPECT_EQ(hm_table_prefetch(t, 1, &bad, 1, &err), nullptr);
  EXPECT_NE(take_error(err).find("row id " + std::to_string(rows)), std::string::npos);
  EXPECT_EQ(hm_table_rows(t, 2), -1);
  EXPECT_EQ(hm_table_rows(t, -1), -1);
  hm_table_gather_f32(t, 1, &bad, 1, out.data(), nullptr);  // errptr NULL: dropped, no crash
  hm_table_gather_f32(t, 0, nullptr, 0, nullptr, &err);    // n == 0: nothing to do
  EXPECT_EQ(err, nullptr);
  hm_table_close(t);
}

TEST(CApi, AnEarlierMessageIsFreedAndSuccessLeavesItAlone) {
  ScratchDir dir;
  const std::string path = make_table(dir, DType::f32);
  char* err = nullptr;
  EXPECT_EQ(hm_table_open(dir.file("first").c_str(), nullptr, &err), nullptr);
  // A second failure replaces the message (the first is freed: LeakSanitizer would report it otherwise).
  EXPECT_EQ(hm_table_open(dir.file("second").c_str(), nullptr, &err), nullptr);
  const std::string second = err;
  EXPECT_NE(second.find("second"), std::string::npos);
  hm_table* t = hm_table_open(path.c_str(), nullptr, &err);
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(std::string(err), second);  // success leaves *errptr untouched
  take_error(err);
  hm_table_close(t);
}

TEST(CApi, CloseAndFreeAcceptNullAndTheVersionIsTheLibrarys) {
  hm_table_close(nullptr);
  hm_ticket_free(nullptr);
  hm_free(nullptr);
  EXPECT_STREQ(hm_version(), HASHMEM_VERSION);
}

}  // namespace
}  // namespace hashmem::store
