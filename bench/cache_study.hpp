// `hashmem bench cache` (cache_study.cpp): its options, results and their CSV/JSON (cache_study_output.cpp).
// Threads: run_study runs up to CacheStudyOptions::threads simulations at once (each reads the shared stream,
// writes its own result). Ownership: plain values.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "store/cache_policy.hpp"

namespace hashmem::bench {

struct DomainFiles {
  std::string name;
  std::vector<std::string> train, eval;
};

struct CacheStudyOptions {
  std::vector<DomainFiles> domains;
  std::string tokenizer = "build/data/deepseek-v3/tokenizer.json", preset = "deepseek-v4.1";
  std::vector<double> budgets = {0.005, 0.01, 0.02, 0.05, 0.10, 0.20, 0.50};
  std::vector<std::int64_t> requests = {1, 8, 64};  // B of the mixed streams
  std::int64_t mixed_tokens = 1'000'000;            // tokens per mixed stream (0 = all held-out tokens)
  std::int64_t max_train_tokens = 0;           // 0 = all
  std::int64_t max_eval_tokens = 1'000'000;    // per domain; 0 = all
  std::vector<std::string> policies, domain_policies;      // simulated on mixed / per-domain streams
  double static_fraction = 0.9;  // tiered: share of the budget held by the static hot set
  double decode_step_ms = 20;    // IOPS at B tokens per decode step of this length
  int threads = 2;               // simulations at once
  bool json = false;
};

// A simulated stream: a domain's held-out documents, or the mix of all domains with `requests` at once.
struct StreamInfo {
  std::string name;
  std::int64_t requests = 1;
  std::int64_t tokens = 0, documents = 0, accesses = 0, distinct = 0;
  std::int64_t unprofiled = 0;  // distinct rows the profile never saw: misses even with the whole profile
  std::uint64_t text_bytes = 0;
  double encode_seconds = 0, hash_seconds = 0;
};

struct DomainInfo {
  std::string name;
  std::int64_t train_tokens = 0;  // of the profile
  std::int64_t tokens = 0, documents = 0;  // held out
  std::uint64_t text_bytes = 0;
  double encode_seconds = 0, hash_seconds = 0;
};

// One simulated point.
struct Point {
  std::string policy;
  double fraction = 0;
  std::int64_t budget_rows = 0, capacity = 0;  // capacity: what the simulator got (min(budget, rows it can hold))
  store::SimResult result;
  std::int64_t compulsory = 0;                 // first touches of rows outside the initial contents
  double seconds = 0;
  std::size_t stream = 0;                      // index in Study::streams
};

struct Study {
  StreamInfo train;
  std::vector<DomainInfo> domains;
  std::vector<std::int64_t> train_tokens;  // per domain
  std::vector<StreamInfo> streams;
  std::int64_t table_rows = 0, profile_rows = 0;
  std::size_t row_bytes = 0;
  double profile_seconds = 0;
  std::vector<Point> points;
};

// `progress` (may be empty) is called after each stream.
Study run_study(const CacheStudyOptions& o, const std::function<void(const Study&)>& progress);

// Throws CLI-friendly Error unless `name` is a policy of the study (lru, s3fifo, tinylfu, static, static+<dynamic>,
// min, min+static).
void check_policy_name(const std::string& name);

void print_csv(const CacheStudyOptions& o, const Study& st);
nlohmann::ordered_json study_json(const CacheStudyOptions& o, const Study& st);

}  // namespace hashmem::bench
