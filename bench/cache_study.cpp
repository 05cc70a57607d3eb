// hashmem bench cache: a trace-driven study of the SSD tier's DRAM cache at a real model's shape. Row traces
// (cache_trace.hpp) of the training and held-out documents of several domains (bench/make_streams.py); the
// row-frequency profile of all the training documents (cache_profile.hpp) gives the static hot set; held-out
// streams — each domain's alone, and a mix of every domain with B = 1, 8, 64 requests decoding different
// documents at once — are simulated at each budget (a fraction of all the layers' table rows) with the online
// policies (cold), the static hot set alone, the hot set + a dynamic policy (the store's tiered layout), and
// Belady's MIN cold and preloaded with the hot set (store/cache_min.hpp: the bounds). Output: CSV on stdout, or
// --json. docs/cache_study.md has the method and figures.
//
// Exact shortcuts that bound memory and time (docs/cache_study.md, "Memory"):
// - Of the profile only the ranks of rows a stream touches matter: a hot row the stream never reads neither hits
//   nor reaches the dynamic part, and for MIN it is the first victim, i.e. a free slot. So the hot set handed to
//   the simulators is the stream's own rows of rank < k, and the static set's hits are counted from the ranks.
// - A cache at least as large as the rows it can ever hold never evicts, so simulators get min(budget, distinct
//   rows of the stream); equal simulator arguments at two budgets are simulated once.
// Threads: up to --threads simulations at once, each on its own thread over the shared (read-only) stream.
// Ownership: plain values.
#include <algorithm>
#include <atomic>
#include <functional>
#include <cstdio>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "bench.hpp"
#include "cache_profile.hpp"
#include "cache_study.hpp"
#include "cache_trace.hpp"
#include "hashmem/clock.hpp"
#include "hashmem/error.hpp"
#include "hashmem/store.hpp"
#include "store/cache_min.hpp"
#include "store/cache_policy.hpp"

namespace hashmem::bench {
namespace {

// One held-out stream and what the simulators need of it.
struct StreamInput {
  StreamInfo info;
  Interleaved stream;
  std::vector<std::int64_t> sorted_ranks;  // ranks of its distinct rows, ascending (absent_rank last)
  std::vector<std::int64_t> hot;           // its profiled rows, by rank
  std::vector<std::int64_t> hot_hits;      // hot_hits[j] = accesses to hot[0..j)
  std::vector<std::int64_t> hot_ranks;     // rank of hot[j]
  // Hot rows of rank < k: hot[0..hot_below(k)).
  std::size_t hot_below(std::int64_t k) const {
    return static_cast<std::size_t>(std::lower_bound(hot_ranks.begin(), hot_ranks.end(), k) - hot_ranks.begin());
  }
  // Misses no replacement avoids from a start with the profile's top-k rows.
  std::int64_t compulsory(std::int64_t k) const {
    return info.distinct - (std::lower_bound(sorted_ranks.begin(), sorted_ranks.end(), k) - sorted_ranks.begin());
  }
};

// `eval_rows` (ascending, distinct) with `eval_ranks` their ranks: the rank of any row of the stream.
StreamInput prepare_stream(StreamInfo info, Interleaved stream, const std::vector<std::uint32_t>& eval_rows,
                           const std::vector<std::int64_t>& eval_ranks) {
  StreamInput s{std::move(info), std::move(stream), {}, {}, {}, {}};
  const DistinctRows d = distinct_rows(s.stream.rows.data(), s.stream.rows.size());
  s.info.tokens = s.stream.tokens;
  s.info.documents = s.stream.documents;
  s.info.accesses = static_cast<std::int64_t>(s.stream.rows.size());
  s.info.distinct = static_cast<std::int64_t>(d.rows.size());
  std::vector<std::pair<std::int64_t, std::size_t>> by_rank;  // (rank, index in d)
  by_rank.reserve(d.rows.size());
  for (std::size_t i = 0; i < d.rows.size(); ++i) {
    const auto at = std::lower_bound(eval_rows.begin(), eval_rows.end(), d.rows[i]);
    if (at == eval_rows.end() || *at != d.rows[i]) throw Error("cache study: a stream row missing from the held-out rows");
    by_rank.emplace_back(eval_ranks[static_cast<std::size_t>(at - eval_rows.begin())], i);
  }
  std::sort(by_rank.begin(), by_rank.end());
  s.hot_hits.push_back(0);
  for (const auto& [rank, i] : by_rank) {
    s.sorted_ranks.push_back(rank);
    if (rank == absent_rank) {
      ++s.info.unprofiled;
      continue;
    }
    s.hot.push_back(d.rows[i]);
    s.hot_ranks.push_back(rank);
    s.hot_hits.push_back(s.hot_hits.back() + d.counts[i]);
  }
  return s;
}

// Simulates a stream at every budget. Points are planned first (each with the key of its simulator arguments);
// distinct keys are simulated once, on `threads` threads, then every point takes its key's result.
class StreamSimulator {
 public:
  StreamSimulator(const CacheStudyOptions& o, const StreamInput& s, std::int64_t profile_rows)
      : o_(o), s_(s), profile_rows_(profile_rows) {}

  void plan(double fraction, std::int64_t budget, const std::vector<std::string>& policies) {
    for (const std::string& name : policies) plan_point(name, fraction, budget);
  }

  // Runs the planned simulations; returns the points in plan order.
  std::vector<Point> run(int threads) {
    std::vector<std::string> keys;
    for (const auto& [key, job] : jobs_) keys.push_back(key);
    std::vector<store::SimResult> results(keys.size());
    std::vector<double> seconds(keys.size());
    std::atomic<std::size_t> next{0};
    auto worker = [&] {
      for (std::size_t k; (k = next.fetch_add(1)) < keys.size();) {
        const double start = now_seconds();
        results[k] = jobs_.at(keys[k])();
        seconds[k] = now_seconds() - start;
      }
    };
    std::vector<std::thread> pool;
    for (int t = 1; t < std::max(threads, 1); ++t) pool.emplace_back(worker);
    worker();
    for (std::thread& t : pool) t.join();
    std::map<std::string, std::size_t> index;
    for (std::size_t k = 0; k < keys.size(); ++k) index[keys[k]] = k;
    std::set<std::string> timed;  // a shared simulation's time goes to its first point
    for (auto& [p, key] : points_) {
      if (key.empty()) continue;
      p.result = results[index.at(key)];
      if (timed.insert(key).second) p.seconds = seconds[index.at(key)];
    }
    std::vector<Point> out;
    for (auto& [p, key] : points_) out.push_back(std::move(p));
    return out;
  }

 private:
  void plan_point(const std::string& name, double fraction, std::int64_t budget) {
    const std::int64_t distinct = s_.info.distinct;
    const std::int64_t* rows = s_.stream.rows.data();
    const std::size_t n = s_.stream.rows.size();
    const std::int64_t cold = std::min(budget, distinct), hot_k = std::min(budget, profile_rows_);
    Point p{name, fraction, budget, cold, {}, distinct, 0};
    std::string key;
    if (name == "static") {  // counted from the ranks, no simulation
      p.capacity = hot_k;
      p.compulsory = s_.compulsory(hot_k);
      p.result = {static_cast<std::int64_t>(n), s_.hot_hits[s_.hot_below(hot_k)], 0};
    } else if (name == "min") {
      key = job("min/" + std::to_string(cold), [=] { return store::simulate_min(cold, rows, n); });
    } else if (name == "min+static") {
      const std::size_t m = s_.hot_below(hot_k);
      p.compulsory = s_.compulsory(hot_k);
      key = job("min+/" + std::to_string(m) + "/" + std::to_string(cold), [this, m, cold, rows, n] {
        const std::vector<std::int64_t> pre(s_.hot.begin(), s_.hot.begin() + static_cast<std::ptrdiff_t>(m));
        return store::simulate_min_preloaded(pre, cold, rows, n);
      });
    } else if (name.starts_with("static+")) {
      const auto part_k = std::min<std::int64_t>(hot_k, static_cast<std::int64_t>(o_.static_fraction * static_cast<double>(budget)));
      const std::size_t part_n = s_.hot_below(part_k);
      const std::int64_t dynamic = std::min(budget - part_k, distinct - static_cast<std::int64_t>(part_n));
      const store::Policy policy = store::parse_policy(name.substr(7));
      p.capacity = part_k + dynamic;
      p.compulsory = s_.compulsory(part_k);
      key = job(name + "/" + std::to_string(part_n) + "/" + std::to_string(dynamic), [this, part_n, policy, dynamic, rows, n] {
        const std::vector<std::int64_t> part(s_.hot.begin(), s_.hot.begin() + static_cast<std::ptrdiff_t>(part_n));
        return store::simulate_tiered(part, policy, dynamic, rows, n);
      });
    } else {
      const store::Policy policy = store::parse_policy(name);
      key = job(name + "/" + std::to_string(cold), [=] { return store::simulate(policy, cold, rows, n); });
    }
    points_.emplace_back(std::move(p), key);
  }

  std::string job(std::string key, std::function<store::SimResult()> simulate) {
    jobs_.emplace(key, std::move(simulate));  // the first plan of a key wins; equal keys simulate the same
    return key;
  }

  const CacheStudyOptions& o_;
  const StreamInput& s_;
  std::int64_t profile_rows_;
  std::map<std::string, std::function<store::SimResult()>> jobs_;
  std::vector<std::pair<Point, std::string>> points_;
};

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= s.size()) {
    const std::size_t end = std::min(s.find(',', start), s.size());
    if (end > start) out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// The training profile: every domain's training trace, sorted and counted (cache_profile.hpp).
RowProfile training_profile(const CacheStudyOptions& o, const TraceSource& source, Study& st) {
  std::vector<std::string> files;
  for (const DomainFiles& d : o.domains) files.insert(files.end(), d.train.begin(), d.train.end());
  RowTrace train = build_trace(source, files, o.max_train_tokens);
  std::size_t file = 0;
  for (const DomainFiles& d : o.domains) {
    std::int64_t tokens = 0;
    for (std::size_t k = 0; k < d.train.size(); ++k) tokens += train.file_tokens[file++];
    st.train_tokens.push_back(tokens);
  }
  st.train = {"train", 1, train.tokens, train.documents, static_cast<std::int64_t>(train.rows.size()), 0, 0,
              train.text_bytes, train.encode_seconds, train.hash_seconds};
  const double start = now_seconds();
  RowProfile profile = make_profile(std::move(train.rows));
  st.profile_seconds = now_seconds() - start;
  st.profile_rows = profile.distinct();
  std::fprintf(stderr, "hashmem: bench cache: profile of %lld training tokens: %lld rows (%.1f s)\n",
               static_cast<long long>(st.train.tokens), static_cast<long long>(st.profile_rows), st.profile_seconds);
  return profile;
}

}  // namespace

Study run_study(const CacheStudyOptions& o, const std::function<void(const Study&)>& progress) {
  Study st;
  const TraceSource source = make_trace_source(o.tokenizer, o.preset);
  st.table_rows = total_rows(source.layout);
  st.row_bytes = store::row_bytes(store::DType::fp8, source.layout.config.head_dim);
  std::vector<std::uint32_t> eval_rows;
  std::vector<std::int64_t> eval_ranks;
  std::vector<RowTrace> eval;
  {
    const RowProfile profile = training_profile(o, source, st);
    for (const DomainFiles& d : o.domains) {
      eval.push_back(build_trace(source, d.eval, o.max_eval_tokens));
      eval_rows.insert(eval_rows.end(), eval.back().rows.begin(), eval.back().rows.end());
    }
    std::sort(eval_rows.begin(), eval_rows.end());
    eval_rows.erase(std::unique(eval_rows.begin(), eval_rows.end()), eval_rows.end());
    eval_rows.shrink_to_fit();
    eval_ranks = profile_ranks(profile, eval_rows);
  }
  for (std::size_t k = 0; k < eval.size(); ++k) {
    const RowTrace& t = eval[k];
    st.domains.push_back({o.domains[k].name, st.train_tokens[k], t.tokens, t.documents, t.text_bytes, t.encode_seconds,
                          t.hash_seconds});
  }
  // The streams: each domain alone (one request), then the mix of all at each B.
  std::vector<std::pair<StreamInfo, std::vector<const RowTrace*>>> plan;
  for (std::size_t k = 0; k < eval.size(); ++k) {
    if (o.domains.size() > 1 || o.requests.empty()) plan.push_back({{o.domains[k].name, 1}, {&eval[k]}});
  }
  std::vector<const RowTrace*> all;
  for (const RowTrace& t : eval) all.push_back(&t);
  for (std::int64_t b : o.requests) plan.push_back({{o.domains.size() > 1 ? "mixed" : o.domains[0].name, b}, all});
  for (auto& [info, traces] : plan) {
    const bool mixed = traces.size() > 1 || info.requests > 1;
    const std::int64_t cap = mixed ? o.mixed_tokens : 0;
    const StreamInput s = prepare_stream(info, interleave(traces, info.requests, cap), eval_rows, eval_ranks);
    std::fprintf(stderr, "hashmem: bench cache: stream %s B=%lld: %lld tokens, %lld distinct rows (%.2f per token), "
                 "%lld never profiled\n", s.info.name.c_str(), static_cast<long long>(s.info.requests),
                 static_cast<long long>(s.info.tokens), static_cast<long long>(s.info.distinct),
                 static_cast<double>(s.info.distinct) / static_cast<double>(std::max<std::int64_t>(s.info.tokens, 1)),
                 static_cast<long long>(s.info.unprofiled));
    StreamSimulator sim(o, s, st.profile_rows);
    const std::vector<std::string>& policies = mixed || o.domain_policies.empty() ? o.policies : o.domain_policies;
    for (double f : o.budgets) sim.plan(f, static_cast<std::int64_t>(f * static_cast<double>(st.table_rows)), policies);
    const double start = now_seconds();
    for (Point& p : sim.run(o.threads)) {
      p.stream = st.streams.size();
      st.points.push_back(std::move(p));
    }
    std::fprintf(stderr, "hashmem: bench cache:   simulated in %.1f s\n", now_seconds() - start);
    st.streams.push_back(s.info);
    if (progress) progress(st);
  }
  return st;
}

void register_cache(CLI::App* bench, Action& action) {
  auto o = std::make_shared<CacheStudyOptions>();
  auto streams_dir = std::make_shared<std::string>("build/data/streams");
  auto domains = std::make_shared<std::string>("corpus,code,docs,zh");
  auto train = std::make_shared<std::vector<std::string>>(), eval = std::make_shared<std::vector<std::string>>();
  auto policies = std::make_shared<std::string>("lru,s3fifo,tinylfu,static,static+s3fifo,min,min+static");
  auto domain_policies = std::make_shared<std::string>("static,static+s3fifo,min+static");
  CLI::App* c = bench->add_subcommand(
      "cache", "Trace-driven cache study at a model's shape: LRU, S3-FIFO, W-TinyLFU, the profile hot set (alone and "
               "+ a dynamic policy), Belady's MIN cold and preloaded, per domain and mixed with B requests at once");
  c->add_option("--streams", *streams_dir, "Directory of <domain>.train.txt / <domain>.heldout.txt (make_streams.py)");
  c->add_option("--domains", *domains, "Domains of --streams (comma-separated)");
  c->add_option("--train", *train, "Instead of --streams: profile files, text (documents separated by an empty line) "
                                   "or HMTOKID1 ids");
  c->add_option("--eval", *eval, "Instead of --streams: held-out files (same formats)");
  c->add_option("--tokenizer", o->tokenizer, "tokenizer.json for text files (and the compression of ids)");
  c->add_option("--preset", o->preset, "Engram preset giving the tables' shape");
  c->add_option("--budgets", o->budgets, "Budgets as fractions of all the tables' rows (comma-separated)")->delimiter(',');
  c->add_option("--requests", o->requests, "B of the mixed streams: requests decoding at once")->delimiter(',');
  c->add_option("--mixed-tokens", o->mixed_tokens, "Tokens of each mixed stream (0: every held-out token)");
  c->add_option("--max-train-tokens", o->max_train_tokens, "Stop the profile trace after this many tokens (0: all)");
  c->add_option("--max-eval-tokens", o->max_eval_tokens, "Held-out tokens per domain stream (0: all)");
  c->add_option("--policies", *policies, "Policies simulated on the mixed streams");
  c->add_option("--domain-policies", *domain_policies, "Policies on the per-domain streams (empty: --policies)");
  c->add_option("--static-fraction", o->static_fraction, "Tiered layout: share of the budget held by the hot set");
  c->add_option("--decode-step-ms", o->decode_step_ms, "Decode step time S for the IOPS column: B/S tokens per second");
  c->add_option("--threads", o->threads, "Simulations run at once (each on one thread, with its own memory)");
  c->add_flag("--json", o->json, "Print JSON instead of CSV");
  c->callback([=, &action] {
    if (!train->empty() || !eval->empty()) {
      if (train->empty() || eval->empty()) throw CLI::ValidationError("--train and --eval go together");
      o->domains = {{"eval", *train, *eval}};
    } else {
      for (const std::string& d : split_list(*domains)) {
        o->domains.push_back({d, {*streams_dir + "/" + d + ".train.txt"}, {*streams_dir + "/" + d + ".heldout.txt"}});
      }
    }
    if (o->domains.empty()) throw CLI::ValidationError("--domains: no domain given");
    for (std::int64_t b : o->requests) {
      if (b < 1) throw CLI::ValidationError("--requests: each B must be >= 1");
    }
    o->policies = split_list(*policies);
    o->domain_policies = split_list(*domain_policies);
    for (const std::string& p : o->policies) check_policy_name(p);
    for (const std::string& p : o->domain_policies) check_policy_name(p);
    action = [o] {
      const Study st = run_study(*o, nullptr);
      if (o->json) print_json(study_json(*o, st)); else print_csv(*o, st);
      return 0;
    };
  });
}

}  // namespace hashmem::bench
