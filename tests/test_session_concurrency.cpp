// engram::Session::clone: sessions on one table (SSD tier, a DRAM cache far smaller than what they read, so they
// evict each other's rows) driven from four threads at once, each with its own requests coming and going; every
// gathered value equals the same calls on a session of its own on the DRAM tier. Also built with
// ThreadSanitizer (hashmem_tsan_tests, label tsan): a data race between the sessions, the shared table and its
// I/O thread fails it.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <thread>
#include <vector>

#include "hashmem/session.hpp"
#include "test_util.hpp"

namespace hashmem::engram {
namespace {

// One thread's engine: `steps` decode steps over its requests (one joins every 4th step, prefilled; the oldest
// leaves when there are 3), f32 and bf16 gathers alternating, whole and per layer. Returns "" or what differed.
std::string drive(Session& shared, Session& own, std::uint64_t seed, int steps) {
  std::mt19937_64 rng(seed);
  std::vector<RequestId> ids, own_ids;
  const auto per_token = static_cast<std::size_t>(shared.values_per_token());
  const auto width = static_cast<std::size_t>(shared.columns() * shared.dim());
  for (int step = 0; step < steps; ++step) {
    if (step % 4 == 0) {
      if (ids.size() == 3) {
        shared.remove(ids.front());
        own.remove(own_ids.front());
        ids.erase(ids.begin());
        own_ids.erase(own_ids.begin());
      }
      ids.push_back(shared.add());
      own_ids.push_back(own.add());
      std::vector<std::int64_t> prompt(rng() % 9 + 1);
      for (auto& t : prompt) t = static_cast<std::int64_t>(rng() % 100);
      std::vector<std::uint16_t> got(prompt.size() * per_token), want(got.size());
      shared.prefill(ids.back(), prompt.data(), static_cast<std::int64_t>(prompt.size()), got.data());
      own.prefill(own_ids.back(), prompt.data(), static_cast<std::int64_t>(prompt.size()), want.data());
      if (got != want) return "prefill differs at step " + std::to_string(step);
    }
    std::vector<std::int64_t> tokens(ids.size());
    for (auto& t : tokens) t = static_cast<std::int64_t>(rng() % 100);
    shared.prefetch(ids.data(), tokens.data(), static_cast<std::int64_t>(ids.size()));
    own.prefetch(own_ids.data(), tokens.data(), static_cast<std::int64_t>(ids.size()));
    std::vector<float> got(ids.size() * per_token), want(got.size());
    own.gather(want.data());
    if (step % 2 == 0) {
      shared.gather(got.data());
    } else {
      for (std::int64_t layer = 0; layer < shared.layers(); ++layer) {
        std::vector<float> one(ids.size() * width);
        shared.gather_layer(layer, one.data());
        testing::place_layer(one, static_cast<std::size_t>(shared.layers()), static_cast<std::size_t>(layer), width, got);
      }
    }
    if (got != want) return "step " + std::to_string(step) + " differs";
  }
  return "";
}

// A table of the small config with 32-value rows in `dir`.
std::string small_table(const testing::ScratchDir& dir, store::DType dtype) {
  store::CreateOptions o;
  o.config = testing::small_engram_config();
  o.dim = 32;
  o.dtype = dtype;
  o.checksum_block = 4096;
  o.seed = 3;
  const std::string path = dir.file("t.safetensors");
  store::create_table(o, path);
  return path;
}

TEST(SessionConcurrency, ClonesOnOneTableServeFourThreads) {
  testing::ScratchDir dir;
  const std::string path = small_table(dir, store::DType::fp8);
  SessionOptions ssd;
  ssd.store.tier = store::Tier::ssd;
  ssd.store.dram_budget = 2048;
  const auto first = Session::open(path, ssd);
  constexpr int kThreads = 4;
  std::vector<std::unique_ptr<Session>> shared, own;
  for (int k = 0; k < kThreads; ++k) {
    shared.push_back(k == 0 ? nullptr : first->clone());
    own.push_back(Session::open(path));
  }
  std::vector<std::string> failures(kThreads);
  std::vector<std::thread> threads;
  for (int k = 0; k < kThreads; ++k) {
    threads.emplace_back([&, k] {
      try {
        failures[k] = drive(k == 0 ? *first : *shared[k], *own[k], 100 + k, 40);
      } catch (const std::exception& e) {
        failures[k] = e.what();
      }
    });
  }
  for (auto& t : threads) t.join();
  for (int k = 0; k < kThreads; ++k) EXPECT_EQ(failures[k], "") << "thread " << k;
}

// A clone outlives the session it was made from (the table is shared, not borrowed) and starts with no requests.
TEST(SessionConcurrency, AClonesTableOutlivesTheOriginal) {
  testing::ScratchDir dir;
  const std::string path = small_table(dir, store::DType::f32);
  auto original = Session::open(path);
  original->add();
  const auto clone = original->clone();
  original.reset();
  EXPECT_TRUE(clone->requests().empty());
  const RequestId id = clone->add();
  const std::int64_t token = 5;
  std::vector<float> got(static_cast<std::size_t>(clone->values_per_token())), want(got.size());
  clone->prefill(id, &token, 1, got.data());
  const auto fresh = Session::open(path);
  fresh->prefill(fresh->add(), &token, 1, want.data());
  EXPECT_EQ(got, want);
}

}  // namespace
}  // namespace hashmem::engram
