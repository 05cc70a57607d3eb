#include "store_workload.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sentencepiece_processor.h>
#include <sstream>
#include <unordered_map>

#include "hashmem/process.hpp"
#include "bench.hpp"
#include "hashmem/clock.hpp"
#include "hashmem/error.hpp"
#include "hashmem/human.hpp"
#include "hashmem/output_file.hpp"
#include "hashmem/engram.hpp"
#include "store/cache_policy.hpp"

namespace hashmem::bench {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

std::vector<std::int64_t> tokenize(const sentencepiece::SentencePieceProcessor& sp, const std::string& path,
                                   std::int64_t max_tokens) {
  std::ifstream in(path);
  if (!in) throw Error("cannot read corpus text '" + path + "' (run ./run build, which runs hashmem data prepare)");
  std::vector<std::int64_t> ids;
  std::string line;
  std::vector<int> piece_ids;
  while (std::getline(in, line) && static_cast<std::int64_t>(ids.size()) < max_tokens) {
    if (line.empty()) continue;
    sp.Encode(line, &piece_ids);
    ids.insert(ids.end(), piece_ids.begin(), piece_ids.end());
  }
  if (static_cast<std::int64_t>(ids.size()) > max_tokens) ids.resize(static_cast<std::size_t>(max_tokens));
  return ids;
}

void write_csv(const std::string& path, const std::string& text) { write_file_atomically(path, text); }

}  // namespace

namespace {

struct CorpusTokenizer {
  sentencepiece::SentencePieceProcessor sp;
  engram::Compression compression;
  std::string model;
  explicit CorpusTokenizer(const std::string& corpus) : model(corpus + "/spm.model") {
    if (!fs::exists(model) || !sp.Load(model).ok()) {
      throw Error("cannot load the corpus tokenizer '" + model + "' (run ./run build, which runs hashmem data prepare)");
    }
    compression = engram::compress_sentencepiece(model);
  }
  std::vector<std::int64_t> compressed(const std::string& text_file, std::int64_t max_tokens) const {
    std::vector<std::int64_t> ids = tokenize(sp, text_file, max_tokens);
    engram::compress_ids(compression, ids.data(), ids.size(), ids.data());
    return ids;
  }
  std::string describe() const {
    return model + " (" + std::to_string(sp.GetPieceSize()) + " pieces, " + std::to_string(compression.compressed_vocab) +
           " compressed)";
  }
};

}  // namespace

Workload load_text_workload(const StoreBenchOptions& o) {
  const CorpusTokenizer tok(o.corpus);
  std::fprintf(stderr, "bench store: tokenising %s...\n", o.corpus.c_str());
  Workload w;
  w.compressed_vocab = tok.compression.compressed_vocab;
  w.train = tok.compressed(o.corpus + "/train.txt", o.max_train_tokens);
  w.valid = tok.compressed(o.corpus + "/valid.txt", o.max_train_tokens);
  w.source = o.corpus + ", " + tok.describe();
  return w;
}

Workload load_text_file_workload(const StoreBenchOptions& o, const std::string& text_file) {
  const CorpusTokenizer tok(o.corpus);
  Workload w;
  w.compressed_vocab = tok.compression.compressed_vocab;
  w.valid = tok.compressed(text_file, o.max_train_tokens);
  w.source = text_file + ", " + tok.describe();
  return w;
}

std::vector<std::int64_t> row_stream(const store::TableInfo& info, const std::vector<std::int64_t>& ids) {
  const engram::Layout layout = engram::make_layout(info.config);
  const int columns = info.config.columns();
  std::vector<std::int64_t> rows(ids.size() * static_cast<std::size_t>(columns));
  engram::hash_batch(layout, 0, ids.data(), 1, static_cast<std::int64_t>(ids.size()), rows.data(), /*add_offsets=*/true);
  return rows;
}

ojson run_text_workload(const StoreBenchOptions& o, const Workload& w, const std::string& table_path,
                        const store::TableInfo& info) {
  const std::vector<std::int64_t> train = row_stream(info, w.train);
  const std::vector<std::int64_t> valid = row_stream(info, w.valid);
  const std::int64_t table_rows = info.tensors[0].rows;
  const int columns = info.config.columns();
  ojson out;
  out["source"] = w.source;
  out["train_tokens"] = w.train.size();
  out["valid_tokens"] = w.valid.size();
  out["table_bytes"] = info.tensors[0].bytes;
  out["row_bytes"] = info.row_bytes;
  fs::create_directories(o.workdir);

  // Row-frequency profile of the training stream: count per row, ranked.
  std::unordered_map<std::int64_t, std::int64_t> counts;
  counts.reserve(train.size() / 2);
  for (std::int64_t r : train) ++counts[r];
  std::vector<std::int64_t> freq;
  freq.reserve(counts.size());
  for (const auto& [row, n] : counts) freq.push_back(n);
  std::sort(freq.rbegin(), freq.rend());
  {
    std::ostringstream csv;
    csv << "rank,count,cumulative_share\n";
    double cumulative = 0;
    std::size_t next = 1;
    for (std::size_t i = 0; i < freq.size(); ++i) {
      cumulative += static_cast<double>(freq[i]);
      if (i + 1 == next || i + 1 == freq.size()) {
        csv << i + 1 << ',' << freq[i] << ',' << cumulative / static_cast<double>(train.size()) << '\n';
        next = std::max(next + 1, static_cast<std::size_t>(static_cast<double>(next) * 1.25));
      }
    }
    write_csv(o.workdir + "/row-frequency.csv", csv.str());
  }
  out["distinct_rows_train"] = freq.size();

  // Hit-ratio curves on the validation stream; static hot sets come from the training profile.
  const std::vector<double> fractions = {0.005, 0.01, 0.02, 0.05, 0.1, 0.25};
  std::ostringstream csv;
  csv << "cache_fraction,cache_rows,policy,hit_ratio\n";
  ojson curves = ojson::array();
  const std::int64_t max_k = static_cast<std::int64_t>(0.25 * static_cast<double>(table_rows)) + 1;
  const std::vector<std::int64_t> profile = store::hottest_rows(train.data(), train.size(), max_k);
  const std::vector<std::int64_t> oracle_all = store::hottest_rows(valid.data(), valid.size(), max_k);
  double ours_at_budget = 0, oracle_at_budget = 0;
  for (double f : fractions) {
    const std::int64_t k = static_cast<std::int64_t>(f * static_cast<double>(table_rows));
    auto record = [&](const std::string& name, double hit) {
      csv << f << ',' << k << ',' << name << ',' << hit << '\n';
      curves.push_back({{"cache_fraction", f}, {"cache_rows", k}, {"policy", name}, {"hit_ratio", hit}});
    };
    for (store::Policy p : {store::Policy::lru, store::Policy::s3fifo, store::Policy::tinylfu}) {
      record(store::policy_name(p), store::simulate(p, k, valid.data(), valid.size()).hit_ratio());
    }
    const std::vector<std::int64_t> hot(profile.begin(), profile.begin() + std::min<std::size_t>(profile.size(), k));
    record("static(train profile)", store::simulate_static(hot, valid.data(), valid.size()).hit_ratio());
    const std::int64_t n_static = static_cast<std::int64_t>(o.static_fraction * static_cast<double>(k));
    const std::vector<std::int64_t> half(profile.begin(), profile.begin() + std::min<std::size_t>(profile.size(), n_static));
    const double tiered = store::simulate_tiered(half, store::parse_policy(o.policy), k - static_cast<std::int64_t>(half.size()),
                                                 valid.data(), valid.size()).hit_ratio();
    record("static+" + o.policy, tiered);
    const std::vector<std::int64_t> oracle(oracle_all.begin(), oracle_all.begin() + std::min<std::size_t>(oracle_all.size(), k));
    const double oracle_hit = store::simulate_static(oracle, valid.data(), valid.size()).hit_ratio();
    record("oracle", oracle_hit);
    if (f == o.budget_fraction) ours_at_budget = tiered, oracle_at_budget = oracle_hit;
  }
  write_csv(o.workdir + "/hit-ratio.csv", csv.str());
  out["hit_ratio_curves"] = curves;
  std::printf("text workload: %zu train / %zu valid tokens, %d row lookups per token, table %s (%lld rows)\n",
              w.train.size(), w.valid.size(), columns, human_bytes(static_cast<double>(info.tensors[0].bytes)).c_str(),
              static_cast<long long>(table_rows));
  std::printf("  hit ratio on valid at budget %.0f %% (static from train profile + %s): %.4f vs oracle hot set %.4f: %.3f×\n",
              100 * o.budget_fraction, o.policy.c_str(), ours_at_budget, oracle_at_budget,
              oracle_at_budget > 0 ? ours_at_budget / oracle_at_budget : 0.0);
  std::fflush(stdout);
  out["hit_ratio"] = ours_at_budget;
  out["oracle_hit_ratio"] = oracle_at_budget;

  // Tokens/s through the store, prefetching step t+1 while gathering step t; optionally with a model step of
  // `compute` seconds per step (a spin, standing in for the forward/backward the prefetch overlaps with).
  struct Pass {
    double tokens_per_s = 0;
    store::Stats stats;
  };
  // Two passes over the validation stream: the first starts with only the static hot set in the cache (cold),
  // the second finds what the first admitted (warm).
  auto stream_through = [&](store::Table& table, double compute) {
    const std::size_t step = static_cast<std::size_t>(o.step_tokens) * static_cast<std::size_t>(columns);
    std::vector<float> buffer(step * static_cast<std::size_t>(info.dim));
    std::vector<Pass> passes(2);
    for (Pass& pass : passes) {
      table.reset_stats();
      const double t0 = now_seconds();
      store::Ticket next = table.prefetch(0, valid.data(), std::min(step, valid.size()));
      for (std::size_t at = 0; at < valid.size(); at += step) {
        store::Ticket current = std::move(next);
        const std::size_t after = at + step;
        if (after < valid.size()) next = table.prefetch(0, valid.data() + after, std::min(step, valid.size() - after));
        table.gather(current, buffer.data());
        if (compute > 0) {
          const double until = now_seconds() + compute;
          while (now_seconds() < until) {
          }
        }
      }
      pass.tokens_per_s = static_cast<double>(valid.size() / static_cast<std::size_t>(columns)) / (now_seconds() - t0);
      pass.stats = table.stats();
    }
    return passes;
  };
  store::OpenOptions ssd;
  ssd.tier = store::Tier::ssd;
  ssd.dram_budget = static_cast<std::uint64_t>(o.budget_fraction * static_cast<double>(info.tensors[0].bytes));
  ssd.policy = store::parse_policy(o.policy);
  ssd.static_fraction = o.static_fraction;
  ssd.hot_rows = {profile};
  ssd.queue_depth = 64;
  ssd.staging_bytes = 256u << 20;
  const double compute = static_cast<double>(o.step_tokens) / o.model_tokens_per_s;
  std::vector<Pass> ssd_passes, dram_passes, ssd_model, dram_model;
  double open_seconds = 0;
  {
    const double t0 = now_seconds();
    auto table = store::Table::open(table_path, ssd);
    open_seconds = now_seconds() - t0;
    ssd_passes = stream_through(*table, 0);
    ssd_model = stream_through(*table, compute);
  }
  {
    auto table = store::Table::open(table_path);
    dram_passes = stream_through(*table, 0);
    dram_model = stream_through(*table, compute);
  }
  const double ssd_tps = ssd_passes[1].tokens_per_s, dram_tps = dram_passes[1].tokens_per_s;
  const double tokens = static_cast<double>(valid.size() / static_cast<std::size_t>(columns));
  std::printf("  SSD tier opened with %s DRAM (%.0f %% of the table; static hot set %.0f %% of it from the train profile) "
              "in %.1f s\n",
              human_bytes(static_cast<double>(ssd.dram_budget)).c_str(), 100 * o.budget_fraction, 100 * o.static_fraction,
              open_seconds);
  for (int p = 0; p < 2; ++p) {
    const store::Stats& st = ssd_passes[static_cast<std::size_t>(p)].stats;
    std::printf("  lookups only, pass %d (%s; steps of %lld tokens, prefetch one step ahead): SSD tier %.0f tokens/s vs "
                "whole table in DRAM %.0f tokens/s: %.1f %%; hit ratio %.4f, %.2f reads per token, %llu late rows\n",
                p + 1, p == 0 ? "cold: static set only" : "warm", static_cast<long long>(o.step_tokens),
                ssd_passes[static_cast<std::size_t>(p)].tokens_per_s, dram_passes[static_cast<std::size_t>(p)].tokens_per_s,
                100 * ssd_passes[static_cast<std::size_t>(p)].tokens_per_s / dram_passes[static_cast<std::size_t>(p)].tokens_per_s,
                st.hit_ratio(), static_cast<double>(st.misses) / tokens, static_cast<unsigned long long>(st.late_rows));
  }
  std::printf("  with a model step overlapping the prefetch (stand-in: %.0f tokens/s of compute), pass 2: SSD tier %.0f vs "
              "DRAM %.0f tokens/s: %.1f %%\n",
              o.model_tokens_per_s, ssd_model[1].tokens_per_s, dram_model[1].tokens_per_s,
              100 * ssd_model[1].tokens_per_s / dram_model[1].tokens_per_s);
  std::fflush(stdout);
  const store::Stats& ssd_stats = ssd_passes[1].stats;
  const double misses_per_token = static_cast<double>(ssd_stats.misses) / tokens;
  out["open_seconds"] = open_seconds;
  out["cold_tokens_per_s_ssd"] = ssd_passes[0].tokens_per_s;
  out["cold_tokens_per_s_dram"] = dram_passes[0].tokens_per_s;
  out["cold_hit_ratio"] = ssd_passes[0].stats.hit_ratio();
  out["cold_reads"] = ssd_passes[0].stats.reads;
  out["tokens_per_s_ssd"] = ssd_tps;
  out["tokens_per_s_dram"] = dram_tps;
  out["model_tokens_per_s"] = o.model_tokens_per_s;
  out["tokens_per_s_ssd_with_model"] = ssd_model[1].tokens_per_s;
  out["tokens_per_s_dram_with_model"] = dram_model[1].tokens_per_s;
  out["measured_hit_ratio"] = ssd_stats.hit_ratio();
  out["reads_per_token"] = misses_per_token;
  out["reads"] = ssd_stats.reads;
  out["late_rows"] = ssd_stats.late_rows;

  // Plots (optional: needs matplotlib under the system Python).
  const std::string script = std::string(HASHMEM_SOURCE_DIR) + "/bench/plot_store.py";
  if (::access(o.python.c_str(), X_OK) == 0) {
    const ChildResult r = run_child({o.python, script, o.workdir});
    if (r.exit_code != 0) std::fprintf(stderr, "bench store: plotting failed (exit %d); the CSV files are there\n", r.exit_code);
  }
  std::printf("  CSV and PNG: %s/row-frequency.{csv,png}, %s/hit-ratio.{csv,png}\n", o.workdir.c_str(), o.workdir.c_str());
  return out;
}

}  // namespace hashmem::bench
