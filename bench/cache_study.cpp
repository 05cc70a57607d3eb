// hashmem bench cache: a trace-driven study of the SSD tier's DRAM cache at a real model's shape. Row traces
// (cache_trace.hpp) of training and held-out files; the row-frequency profile of the training trace gives the
// static hot set; on the held-out trace, at each budget (a fraction of all the layers' table rows), the online
// policies (cold), the static hot set alone, the hot set + a dynamic policy (the store's tiered layout), and
// Belady's MIN cold and preloaded with the hot set (store/cache_min.hpp: the bounds). Output: CSV on stdout, or
// --json. docs/cache_study.md has the method and figures.
//
// A cache at least as large as the rows it can ever hold (the held-out trace's distinct rows, plus the preload)
// never evicts, so simulators get that capacity instead of a larger budget: same hits, bounded memory.
// Threads: one. Ownership: plain values.
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "bench.hpp"
#include "cache_trace.hpp"
#include "hashmem/clock.hpp"
#include "hashmem/store.hpp"
#include "store/cache_min.hpp"
#include "store/cache_policy.hpp"
#include "store/row_map.hpp"

namespace hashmem::bench {
namespace {

struct CacheStudyOptions {
  std::vector<std::string> train = {"build/data/corpus/train.txt"}, eval = {"build/data/corpus/valid.txt"};
  std::string tokenizer = "build/data/deepseek-v3/tokenizer.json", preset = "deepseek-v4.1";
  std::vector<double> budgets = {0.005, 0.01, 0.02, 0.05, 0.10, 0.25, 0.50};
  std::int64_t max_train_tokens = 0, max_eval_tokens = 0;  // 0 = all
  double static_fraction = 0.9;  // tiered: share of the budget held by the static hot set
  std::string tiered_policy = "s3fifo";
  bool json = false;
};

// One simulated point.
struct Point {
  std::string policy;
  double fraction = 0;
  std::int64_t budget_rows = 0, capacity = 0;  // capacity: what the simulator got (see the file comment)
  store::SimResult result;
  std::int64_t compulsory = 0;                 // first touches of rows outside the initial contents
  double seconds = 0;
};

// Where each distinct held-out row stands in the profile (its rank, or `absent`), sorted: the compulsory misses of
// a cache preloaded with the profile's top m rows are the distinct rows of rank >= m.
struct EvalRanks {
  static constexpr std::int64_t absent = INT64_MAX;
  std::vector<std::int64_t> ranks;  // sorted ascending
  std::int64_t distinct() const { return static_cast<std::int64_t>(ranks.size()); }
  std::int64_t compulsory(std::int64_t m) const {
    return distinct() - (std::lower_bound(ranks.begin(), ranks.end(), m) - ranks.begin());
  }
  std::int64_t unprofiled() const { return ranks.end() - std::lower_bound(ranks.begin(), ranks.end(), absent); }
};

EvalRanks eval_ranks(const std::vector<std::int64_t>& profile, const std::vector<std::int64_t>& eval) {
  store::RowMap rank(eval.size() / 8);
  for (std::int64_t r : eval) rank.set(r, EvalRanks::absent);
  for (std::size_t i = 0; i < profile.size(); ++i) {
    if (rank.find(profile[i]) >= 0) rank.set(profile[i], static_cast<std::int64_t>(i));
  }
  EvalRanks out;
  store::RowMap done(rank.size());
  for (std::int64_t r : eval) {
    if (done.find(r) >= 0) continue;
    done.set(r, 1);
    out.ranks.push_back(rank.find(r));
  }
  std::sort(out.ranks.begin(), out.ranks.end());
  return out;
}

template <class F>
Point timed(std::string policy, double fraction, std::int64_t budget, std::int64_t capacity, std::int64_t compulsory,
            F&& simulate) {
  Point p{std::move(policy), fraction, budget, capacity, {}, compulsory, 0};
  const double start = now_seconds();
  p.result = simulate();
  p.seconds = now_seconds() - start;
  return p;
}

// Every policy at one budget.
std::vector<Point> simulate_budget(const CacheStudyOptions& o, double fraction, std::int64_t budget,
                                   const std::vector<std::int64_t>& profile, const EvalRanks& ranks,
                                   const std::vector<std::int64_t>& eval) {
  const std::int64_t* s = eval.data();
  const std::size_t n = eval.size();
  const std::int64_t cold = std::min(budget, ranks.distinct());
  const std::int64_t hot_k = std::min<std::int64_t>(budget, static_cast<std::int64_t>(profile.size()));
  const std::vector<std::int64_t> hot(profile.begin(), profile.begin() + hot_k);
  const std::int64_t part_k = std::min<std::int64_t>(hot_k, static_cast<std::int64_t>(o.static_fraction * static_cast<double>(budget)));
  const std::vector<std::int64_t> part(profile.begin(), profile.begin() + part_k);
  const std::int64_t dynamic = std::min(budget - part_k, ranks.distinct());
  const store::Policy tiered = store::parse_policy(o.tiered_policy);
  std::vector<Point> out;
  for (store::Policy p : {store::Policy::lru, store::Policy::s3fifo, store::Policy::tinylfu}) {
    out.push_back(timed(store::policy_name(p), fraction, budget, cold, ranks.distinct(),
                        [&] { return store::simulate(p, cold, s, n); }));
  }
  out.push_back(timed("static", fraction, budget, hot_k, ranks.compulsory(hot_k),
                      [&] { return store::simulate_static(hot, s, n); }));
  out.push_back(timed("static+" + o.tiered_policy, fraction, budget, part_k + dynamic, ranks.compulsory(part_k),
                      [&] { return store::simulate_tiered(part, tiered, dynamic, s, n); }));
  out.push_back(timed("min", fraction, budget, cold, ranks.distinct(), [&] { return store::simulate_min(cold, s, n); }));
  const std::int64_t pre_cap = std::min(budget, hot_k + ranks.distinct());
  out.push_back(timed("min+static", fraction, budget, pre_cap, ranks.compulsory(hot_k),
                      [&] { return store::simulate_min_preloaded(hot, pre_cap, s, n); }));
  return out;
}

struct Study {
  RowTrace train, eval;
  std::int64_t table_rows = 0, train_accesses = 0, profile_rows = 0, unprofiled = 0, distinct_eval = 0;
  std::size_t row_bytes = 0;
  double profile_seconds = 0;
  std::vector<Point> points;
};

Study run_study(const CacheStudyOptions& o) {
  Study st;
  const TraceSource source = make_trace_source(o.tokenizer, o.preset);
  st.table_rows = total_rows(source.layout);
  st.row_bytes = store::row_bytes(store::DType::fp8, source.layout.config.head_dim);
  st.train = build_trace(source, o.train, o.max_train_tokens);
  st.eval = build_trace(source, o.eval, o.max_eval_tokens);
  double start = now_seconds();
  std::vector<std::int64_t> profile = store::hottest_rows(st.train.rows.data(), st.train.rows.size(), st.table_rows);
  st.train_accesses = static_cast<std::int64_t>(st.train.rows.size());
  st.train.rows = {};  // the profile is all the study needs of it
  const EvalRanks ranks = eval_ranks(profile, st.eval.rows);
  st.profile_seconds = now_seconds() - start;
  st.profile_rows = static_cast<std::int64_t>(profile.size());
  st.unprofiled = ranks.unprofiled();
  st.distinct_eval = ranks.distinct();
  for (double f : o.budgets) {
    const auto budget = static_cast<std::int64_t>(f * static_cast<double>(st.table_rows));
    std::fprintf(stderr, "hashmem: bench cache: budget %.3g %% (%lld rows)\n", 100 * f, static_cast<long long>(budget));
    for (Point& p : simulate_budget(o, f, budget, profile, ranks, st.eval.rows)) st.points.push_back(std::move(p));
  }
  return st;
}

void print_csv(const Study& st) {
  std::printf("policy,budget_fraction,budget_rows,budget_gb,capacity_simulated,hit_ratio,misses_per_token,"
              "compulsory_per_token,maccesses_per_s\n");
  const double tokens = static_cast<double>(std::max<std::int64_t>(st.eval.tokens, 1));
  for (const Point& p : st.points) {
    std::printf("%s,%.4f,%lld,%.2f,%lld,%.6f,%.4f,%.4f,%.2f\n", p.policy.c_str(), p.fraction,
                static_cast<long long>(p.budget_rows), static_cast<double>(p.budget_rows) * static_cast<double>(st.row_bytes) / 1e9,
                static_cast<long long>(p.capacity), p.result.hit_ratio(),
                static_cast<double>(p.result.accesses - p.result.hits) / tokens, static_cast<double>(p.compulsory) / tokens,
                static_cast<double>(p.result.accesses) / std::max(p.seconds, 1e-9) / 1e6);
  }
}

nlohmann::ordered_json trace_json(const RowTrace& t) {
  return {{"tokens", t.tokens}, {"documents", t.documents}, {"accesses", t.rows.size()}, {"text_bytes", t.text_bytes},
          {"encode_seconds", t.encode_seconds}, {"hash_seconds", t.hash_seconds}};
}

nlohmann::ordered_json study_json(const CacheStudyOptions& o, const Study& st) {
  nlohmann::ordered_json points = nlohmann::ordered_json::array();
  const double tokens = static_cast<double>(std::max<std::int64_t>(st.eval.tokens, 1));
  for (const Point& p : st.points) {
    points.push_back({{"policy", p.policy}, {"budget_fraction", p.fraction}, {"budget_rows", p.budget_rows},
                      {"budget_gb", static_cast<double>(p.budget_rows) * static_cast<double>(st.row_bytes) / 1e9},
                      {"capacity_simulated", p.capacity}, {"accesses", p.result.accesses}, {"hits", p.result.hits},
                      {"hit_ratio", p.result.hit_ratio()},
                      {"misses_per_token", static_cast<double>(p.result.accesses - p.result.hits) / tokens},
                      {"compulsory_per_token", static_cast<double>(p.compulsory) / tokens}, {"seconds", p.seconds}});
  }
  nlohmann::ordered_json train = trace_json(st.train);
  train["accesses"] = st.train_accesses;
  return {{"preset", o.preset}, {"tokenizer", o.tokenizer}, {"table_rows", st.table_rows}, {"row_bytes", st.row_bytes},
          {"train_files", o.train}, {"eval_files", o.eval}, {"train", train}, {"eval", trace_json(st.eval)},
          {"profile_rows", st.profile_rows}, {"profile_seconds", st.profile_seconds},
          {"eval_distinct_rows", st.distinct_eval}, {"eval_unprofiled_rows", st.unprofiled},
          {"static_fraction", o.static_fraction}, {"points", points}};
}

void print_summary(const Study& st) {
  const double tokens = static_cast<double>(std::max<std::int64_t>(st.eval.tokens, 1));
  std::fprintf(stderr,
               "hashmem: bench cache: %lld table rows (%zu B each); train %lld tokens (%lld docs, BPE %.1f s, hash "
               "%.1f s), profile %lld rows in %.1f s; eval %lld tokens, %zu accesses, %lld distinct rows (%.2f per "
               "token), %lld never in the profile (%.2f per token)\n",
               static_cast<long long>(st.table_rows), st.row_bytes, static_cast<long long>(st.train.tokens),
               static_cast<long long>(st.train.documents), st.train.encode_seconds, st.train.hash_seconds,
               static_cast<long long>(st.profile_rows), st.profile_seconds, static_cast<long long>(st.eval.tokens),
               st.eval.rows.size(), static_cast<long long>(st.distinct_eval), static_cast<double>(st.distinct_eval) / tokens,
               static_cast<long long>(st.unprofiled), static_cast<double>(st.unprofiled) / tokens);
}

}  // namespace

void register_cache(CLI::App* bench, Action& action) {
  auto o = std::make_shared<CacheStudyOptions>();
  CLI::App* c = bench->add_subcommand(
      "cache", "Trace-driven cache study at a model's shape: LRU, S3-FIFO, W-TinyLFU, the profile hot set (alone and "
               "+ a dynamic policy), Belady's MIN cold and preloaded, at budgets given as fractions of the table rows");
  c->add_option("--train", o->train, "Profile files: text (documents separated by an empty line) or HMTOKID1 ids");
  c->add_option("--eval", o->eval, "Held-out files simulated on (same formats)");
  c->add_option("--tokenizer", o->tokenizer, "tokenizer.json for text files (and the compression of ids)");
  c->add_option("--preset", o->preset, "Engram preset giving the tables' shape");
  c->add_option("--budgets", o->budgets, "Budgets as fractions of all the tables' rows (comma-separated)")->delimiter(',');
  c->add_option("--max-train-tokens", o->max_train_tokens, "Stop the profile trace after this many tokens (0: all)");
  c->add_option("--max-eval-tokens", o->max_eval_tokens, "Stop the held-out trace after this many tokens (0: all)");
  c->add_option("--static-fraction", o->static_fraction, "Tiered layout: share of the budget held by the hot set");
  c->add_option("--tiered-policy", o->tiered_policy, "Tiered layout: the dynamic part's policy (lru, s3fifo, tinylfu)");
  c->add_flag("--json", o->json, "Print JSON instead of CSV");
  c->callback([o, &action] {
    action = [o] {
      const Study st = run_study(*o);
      print_summary(st);
      if (o->json) print_json(study_json(*o, st)); else print_csv(st);
      return 0;
    };
  });
}

}  // namespace hashmem::bench
