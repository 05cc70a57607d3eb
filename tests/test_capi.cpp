// The C API (include/hashmem/c_api.h): gathers equal to the C++ Table on both tiers and every dtype, prefetch
// tickets, and errptr behaviour (messages naming the problem, an earlier message freed, NULL errptr); sessions
// equal to the C++ engram::Session driven with the same calls.
#include <gtest/gtest.h>

#include <string>
#include <thread>
#include <vector>

#include "hashmem/c_api.h"
#include "hashmem/session.hpp"
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

// The same calls through the C API and on a C++ Session: equal outputs, f32 and bf16, whole and per layer, with
// requests leaving and joining, on both tiers and every dtype.
TEST(CApi, SessionsEqualTheCppSession) {
  ScratchDir dir;
  for (DType dtype : {DType::f32, DType::bf16, DType::fp8}) {
    const std::string path = make_table(dir, dtype);
    for (const char* options : {"", "{\"tier\": \"ssd\", \"dram_budget\": 4096}"}) {
      SCOPED_TRACE(std::string(dtype_name(dtype)) + " " + options);
      char* err = nullptr;
      hm_session* c = hm_session_open(path.c_str(), options, &err);
      ASSERT_NE(c, nullptr) << take_error(err);
      engram::SessionOptions cpp_options;
      if (*options != '\0') cpp_options.store.tier = Tier::ssd;
      cpp_options.store.dram_budget = 4096;
      const auto cpp = engram::Session::open(path, cpp_options);
      ASSERT_EQ(hm_session_layers(c), cpp->layers());
      ASSERT_EQ(hm_session_columns(c), cpp->columns());
      ASSERT_EQ(hm_session_dim(c), cpp->dim());
      const auto per_token = static_cast<std::size_t>(cpp->values_per_token());
      const auto width = static_cast<std::size_t>(cpp->columns() * cpp->dim());
      std::vector<std::int64_t> ids;
      const std::vector<std::int64_t> prompt = {3, 1, 4, 1, 5, 9, 2, 6};
      for (int step = 0; step < 12; ++step) {
        if (step % 4 == 0) {  // a request joins (prefilled with a prompt prefix), from the second on one leaves
          if (ids.size() > 1) {
            hm_session_remove(c, ids.front(), &err);
            cpp->remove(ids.front());
            ids.erase(ids.begin());
          }
          const std::int64_t id = hm_session_add(c, &err);
          ASSERT_EQ(id, cpp->add());
          ids.push_back(id);
          const std::size_t n = static_cast<std::size_t>(step % prompt.size()) + 1;
          std::vector<std::uint16_t> got(n * per_token), want(n * per_token);
          hm_session_prefill_bf16(c, id, prompt.data(), n, got.data(), &err);
          cpp->prefill(id, prompt.data(), static_cast<std::int64_t>(n), want.data());
          ASSERT_EQ(err, nullptr) << take_error(err);
          EXPECT_EQ(got, want);
        }
        std::vector<std::int64_t> tokens;
        for (std::size_t b = 0; b < ids.size(); ++b) tokens.push_back((step * 31 + static_cast<int>(b) * 7) % 100);
        hm_session_prefetch(c, ids.data(), tokens.data(), ids.size(), &err);
        cpp->prefetch(ids.data(), tokens.data(), static_cast<std::int64_t>(ids.size()));
        std::vector<float> got(ids.size() * per_token), want(ids.size() * per_token);
        cpp->gather(want.data());
        if (step % 2 == 0) {
          hm_session_gather_f32(c, got.data(), &err);
        } else {
          for (int layer = 0; layer < hm_session_layers(c); ++layer) {
            std::vector<float> one(ids.size() * width);
            hm_session_gather_layer_f32(c, layer, one.data(), &err);
            testing::place_layer(one, static_cast<std::size_t>(cpp->layers()), static_cast<std::size_t>(layer), width, got);
          }
        }
        ASSERT_EQ(err, nullptr) << take_error(err);
        EXPECT_EQ(got, want) << "step " << step;
      }
      // bf16 gathers of one more step, whole and per layer.
      const std::vector<std::int64_t> tokens(ids.size(), 42);
      std::vector<std::uint16_t> got(ids.size() * per_token), want(ids.size() * per_token), layer0(ids.size() * width);
      hm_session_prefetch(c, ids.data(), tokens.data(), ids.size(), &err);
      std::vector<std::uint16_t> layer1(layer0.size());
      hm_session_gather_layer_bf16(c, 0, layer0.data(), &err);
      hm_session_gather_layer_bf16(c, 1, layer1.data(), &err);
      cpp->prefetch(ids.data(), tokens.data(), static_cast<std::int64_t>(ids.size()));
      cpp->gather_layer(0, want.data());
      cpp->cancel();
      EXPECT_EQ(layer0, std::vector<std::uint16_t>(want.begin(), want.begin() + static_cast<std::ptrdiff_t>(layer0.size())));
      hm_session_prefetch(c, ids.data(), tokens.data(), ids.size(), &err);
      hm_session_gather_bf16(c, got.data(), &err);
      cpp->prefetch(ids.data(), tokens.data(), static_cast<std::int64_t>(ids.size()));
      cpp->gather(want.data());
      ASSERT_EQ(err, nullptr) << take_error(err);
      EXPECT_EQ(got, want);
      hm_session_close(c);
    }
  }
}

// A batched prefill through the C API equals the C++ one, f32 and bf16; its errors are named.
TEST(CApi, SessionPrefillBatchEqualsTheCppSession) {
  ScratchDir dir;
  const std::string path = make_table(dir, DType::bf16);
  char* err = nullptr;
  hm_session* c = hm_session_open(path.c_str(), "{\"tier\": \"ssd\"}", &err);
  ASSERT_NE(c, nullptr) << take_error(err);
  const auto cpp = engram::Session::open(path);
  const std::vector<std::int64_t> ids = {hm_session_add(c, &err), hm_session_add(c, &err)};
  ASSERT_EQ(cpp->add(), ids[0]);
  ASSERT_EQ(cpp->add(), ids[1]);
  const std::vector<std::int64_t> lengths = {2, 3}, tokens = {4, 8, 15, 16, 23};
  const auto values = static_cast<std::size_t>(5 * cpp->values_per_token());
  std::vector<float> got(values), want(values);
  std::vector<std::uint16_t> got_bf16(values), want_bf16(values);
  hm_session_prefill_batch_f32(c, ids.data(), lengths.data(), 2, tokens.data(), got.data(), &err);
  cpp->prefill_batch(ids.data(), lengths.data(), 2, tokens.data(), want.data());
  hm_session_prefill_batch_bf16(c, ids.data(), lengths.data(), 2, tokens.data(), got_bf16.data(), &err);
  cpp->prefill_batch(ids.data(), lengths.data(), 2, tokens.data(), want_bf16.data());
  ASSERT_EQ(err, nullptr) << take_error(err);
  EXPECT_EQ(got, want);
  EXPECT_EQ(got_bf16, want_bf16);
  const std::vector<std::int64_t> negative = {2, -3};
  hm_session_prefill_batch_f32(c, ids.data(), negative.data(), 2, tokens.data(), got.data(), &err);
  EXPECT_NE(take_error(err).find("hm_session_prefill_batch_f32: session prefill_batch: request 2: token count -3"),
            std::string::npos);
  hm_session_close(c);
}

TEST(CApi, SessionErrorsNameTheRequestAndTheProblem) {
  ScratchDir dir;
  const std::string path = make_table(dir, DType::f32);
  char* err = nullptr;
  EXPECT_EQ(hm_session_open(path.c_str(), "{\"colour\": 1}", &err), nullptr);
  EXPECT_NE(take_error(err).find("unknown key \"colour\" (known: \"tier\", \"dram_budget\", \"cluster\", \"name\", \"compression\")"),
            std::string::npos);
  EXPECT_EQ(hm_session_open(path.c_str(), "{\"compression\": \"/nonexistent.json\"}", &err), nullptr);
  EXPECT_NE(take_error(err).find("nonexistent.json"), std::string::npos);
  EXPECT_EQ(hm_session_open(nullptr, nullptr, &err), nullptr);
  EXPECT_NE(take_error(err).find("table_path is NULL"), std::string::npos);
  hm_session* s = hm_session_open(path.c_str(), nullptr, &err);
  ASSERT_NE(s, nullptr) << take_error(err);
  const std::int64_t id = hm_session_add(s, &err);
  std::vector<float> out(4 * static_cast<std::size_t>(hm_session_layers(s) * hm_session_columns(s) * hm_session_dim(s)));
  const std::int64_t tokens[] = {1, 100};
  hm_session_prefill_f32(s, id, tokens, 2, out.data(), &err);
  EXPECT_NE(take_error(err).find("hm_session_prefill_f32: session prefill: request 1: token id 100 at position 1"),
            std::string::npos);
  hm_session_gather_f32(s, out.data(), &err);
  EXPECT_NE(take_error(err).find("no step in flight"), std::string::npos);
  const std::int64_t ids[] = {id, id};
  hm_session_prefetch(s, ids, tokens, 2, &err);
  EXPECT_NE(take_error(err).find("named twice"), std::string::npos);
  hm_session_prefetch(s, ids, tokens, 1, &err);
  hm_session_gather_layer_f32(s, 5, out.data(), &err);
  EXPECT_NE(take_error(err).find("layer 5 is not in [0, 2)"), std::string::npos);
  hm_session_gather_layer_f32(s, 0, out.data(), &err);
  hm_session_gather_layer_f32(s, 0, out.data(), &err);
  EXPECT_NE(take_error(err).find("layer 0 of this step was already gathered"), std::string::npos);
  hm_session_prefetch(s, ids, tokens, 1, &err);
  EXPECT_NE(take_error(err).find("not gathered yet"), std::string::npos);
  hm_session_cancel(s);
  hm_session_remove(s, 7, &err);
  EXPECT_NE(take_error(err).find("no request 7"), std::string::npos);
  hm_session_prefetch(nullptr, ids, tokens, 1, &err);
  EXPECT_NE(take_error(err).find("session is NULL"), std::string::npos);
  EXPECT_EQ(hm_session_clone(nullptr, &err), nullptr);
  EXPECT_NE(take_error(err).find("hm_session_clone: session is NULL"), std::string::npos);
  hm_session* clone = hm_session_clone(s, &err);  // its own requests: the original's id 1 is not in it
  ASSERT_NE(clone, nullptr) << take_error(err);
  hm_session_remove(clone, id, &err);
  EXPECT_NE(take_error(err).find("no request 1"), std::string::npos);
  hm_session_close(s);  // the clone keeps the table open
  EXPECT_EQ(hm_session_add(clone, &err), 1);
  hm_session_prefill_f32(clone, 1, tokens, 1, out.data(), &err);
  EXPECT_EQ(err, nullptr) << take_error(err);
  s = clone;
  hm_session_close(s);
  hm_session_close(nullptr);
  hm_session_cancel(nullptr);
}

TEST(CApi, CloseAndFreeAcceptNullAndTheVersionIsTheLibrarys) {
  hm_table_close(nullptr);
  hm_ticket_free(nullptr);
  hm_free(nullptr);
  EXPECT_STREQ(hm_version(), HASHMEM_VERSION);
}

}  // namespace
}  // namespace hashmem::store
