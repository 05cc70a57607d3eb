// hashmem bench attention: exact, LSH, bucket and signature top-k attention side by side — time, GFLOP/s,
// relative L2 error and recall of attention mass against exact attention, working memory — with the anchors
// measured in the same run: OpenBLAS sgemm on the Q·Kᵀ shape (one thread) and our naive O(n²) reference.
//
// Conventions (also in docs/attention.md):
//   - FLOPs of attention: 4·n²·d per head (Q·Kᵀ and P·V), half of it causal; the same count for every method,
//     so "GFLOP/s" of a hashed method is the exact-equivalent rate and its speed-up is exact time / its time.
//   - error: ‖out − ref‖ / ‖ref‖ over all rows (bucket) or over `samples` sampled query rows (LSH, where the
//     reference is full attention with LSH's own score function: shared QK, normalised keys, the self score).
//   - recall: the reference softmax mass on the keys a method lets a query see, averaged over sampled queries.
//   - memory: peak bytes of the working buffers a method allocates (counted by the library) and the growth of
//     the process's peak RSS during the call (VmHWM after resetting it through /proc/self/clear_refs).
//   - random inputs: per head 64 cluster centres on a sphere of radius ρ = (8√d)^½; a token's x is its
//     centre plus N(0, ρ²/(4d)) noise per coordinate, q = β·x, k = (x + fresh noise of the same size)/β, and v
//     is the cluster's N(0, 1) value plus N(0, 0.25) noise. q·k/√d ≈ 8·cos within a cluster whatever β; β = ρ
//     makes LSH's shared-QK score (q·k̂/√d with k̂ = q/‖q‖) as sharp. This favours the hashed methods (keys
//     and values cluster together); captured inputs do not.
#include <cblas.h>  // openblas_set_num_threads: the sgemm anchor on one core
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>

#include "attention_point.hpp"
#include "bench.hpp"
#include "hashmem/process.hpp"
#include "hashmem/attention.hpp"
#include "hashmem/clock.hpp"
#include "hashmem/error.hpp"
#include "hashmem/human.hpp"
#include "hashmem/output_file.hpp"

namespace hashmem::bench {
namespace {

namespace fs = std::filesystem;
namespace att = hashmem::attention;
using ojson = nlohmann::ordered_json;

// ---- inputs ----

att::Inputs random_inputs(std::int64_t heads, std::int64_t n, std::int64_t d, std::uint64_t seed) {
  constexpr std::int64_t kClusters = 64;
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  const float radius = std::sqrt(8.0f * std::sqrt(static_cast<float>(d)));
  const float noise = 0.5f * radius / std::sqrt(static_cast<float>(d));
  att::Inputs in;
  in.heads = heads, in.tokens = n, in.dim = d;
  const std::size_t size = static_cast<std::size_t>(heads * n * d);
  in.q.resize(size), in.k.resize(size), in.v.resize(size);
  std::vector<float> centres(static_cast<std::size_t>(kClusters * d)), values(centres.size());
  for (std::int64_t h = 0; h < heads; ++h) {
    for (auto& c : centres) c = normal(rng);
    for (auto& c : values) c = normal(rng);
    for (std::int64_t c = 0; c < kClusters; ++c) {
      double norm = 0;
      for (std::int64_t i = 0; i < d; ++i) norm += centres[c * d + i] * centres[c * d + i];
      for (std::int64_t i = 0; i < d; ++i) centres[c * d + i] *= radius / static_cast<float>(std::sqrt(norm));
    }
    for (std::int64_t t = 0; t < n; ++t) {
      const std::int64_t c = static_cast<std::int64_t>(rng() % kClusters);
      for (std::int64_t i = 0; i < d; ++i) {
        const std::size_t at = static_cast<std::size_t>((h * n + t) * d + i);
        const float x = centres[c * d + i] + noise * normal(rng);
        in.q[at] = radius * x;
        in.k[at] = (x + noise * normal(rng)) / radius;
        in.v[at] = values[c * d + i] + 0.5f * normal(rng);
      }
    }
  }
  return in;
}

// The first n tokens of every head of a captured file.
att::Inputs first_tokens(const att::Inputs& all, std::int64_t n) {
  att::Inputs in;
  in.heads = all.heads, in.tokens = n, in.dim = all.dim;
  for (auto [src, dst] : {std::pair{&all.q, &in.q}, {&all.k, &in.k}, {&all.v, &in.v}}) {
    for (std::int64_t h = 0; h < all.heads; ++h) {
      const auto begin = src->begin() + h * all.tokens * all.dim;
      dst->insert(dst->end(), begin, begin + n * all.dim);
    }
  }
  return in;
}

int run_attention_bench(const AttentionBenchOptions& o) {
  if (o.inputs != "random" && o.inputs != "captured")
    throw Error("--inputs must be random or captured, got '" + o.inputs + "'");
  if (o.inputs == "captured" && o.captured.empty()) throw Error("--inputs captured needs --captured FILE");
  if (o.heads < 1) throw Error("--heads must be >= 1");
  const auto n_values = parse_list(o.n_list, "--n");
  auto d_values = parse_list(o.d_list, "--d");
  openblas_set_num_threads(1);  // the sgemm anchor is a one-core figure, like ours (--threads 1)
  att::Inputs captured;
  if (o.inputs == "captured") {
    captured = att::load_inputs(o.captured);
    if (d_values != std::vector<std::int64_t>{captured.dim}) {
      std::fprintf(stderr, "bench attention: %s has d = %lld; using it instead of --d\n", o.captured.c_str(),
                   static_cast<long long>(captured.dim));
      d_values = {captured.dim};
    }
  }
  fs::create_directories(o.out);
  const std::string csv_path = o.out + "/attention" + (o.causal ? "-causal" : "") + ".csv";
  OutputFile csv(csv_path);
  csv.write(
      "n,d,heads,causal,inputs,threads,method,seconds,gflops,speedup_vs_exact,rel_l2_error,recall,workspace_bytes,rss_"
      "growth_bytes,note\n");
  ojson report = ojson::array();
  bool saved = false;
  for (std::int64_t d : d_values) {
    for (std::int64_t n : n_values) {
      att::Inputs in;
      if (o.inputs == "captured") {
        if (n > captured.tokens) {
          std::fprintf(stderr, "bench attention: skipping n = %lld: %s has %lld tokens\n", static_cast<long long>(n),
                       o.captured.c_str(), static_cast<long long>(captured.tokens));
          continue;
        }
        in = first_tokens(captured, n);
      } else {
        in = random_inputs(o.heads, n, d, 1000 + static_cast<std::uint64_t>(n * 131 + d));
      }
      if (!o.save_inputs.empty() && !saved) {
        att::save_inputs(o.save_inputs, in);
        saved = true;
      }
      std::fprintf(stderr, "bench attention: n = %lld, d = %lld, %lld head(s)%s...\n", static_cast<long long>(n),
                   static_cast<long long>(d), static_cast<long long>(in.heads), o.causal ? ", causal" : "");
      const auto rows = run_point(o, in, o.causal);
      const double exact_gflops = rows[0].gflops;
      for (const Row& r : rows) {
        char line[512];
        std::snprintf(line, sizeof line, "%lld,%lld,%lld,%d,%s,%d,%s,%.6g,%.4g,%.4g,%.4g,%.4g,%lld,%lld,\"%s\"\n",
                      static_cast<long long>(n), static_cast<long long>(d), static_cast<long long>(in.heads),
                      o.causal ? 1 : 0, o.inputs.c_str(), o.threads, r.method.c_str(), r.seconds, r.gflops, r.speedup,
                      r.error, r.recall, static_cast<long long>(r.memory.workspace_bytes),
                      static_cast<long long>(r.memory.rss_growth_bytes), r.note.c_str());
        csv.write(line);
        report.push_back({{"n", n},
                          {"d", d},
                          {"heads", in.heads},
                          {"causal", o.causal},
                          {"inputs", o.inputs},
                          {"threads", o.threads},
                          {"method", r.method},
                          {"seconds", r.seconds},
                          {"gflops", r.gflops},
                          {"speedup_vs_exact", r.speedup},
                          {"rel_l2_error", r.error},
                          {"recall", r.recall},
                          {"workspace_bytes", r.memory.workspace_bytes},
                          {"rss_growth_bytes", r.memory.rss_growth_bytes},
                          {"note", r.note}});
      }
      if (!o.json) {
        std::printf("n = %lld, d = %lld, heads %lld, %s, %s inputs, %d thread(s)\n", static_cast<long long>(n),
                    static_cast<long long>(d), static_cast<long long>(in.heads), o.causal ? "causal" : "non-causal",
                    o.inputs.c_str(), o.threads);
        std::printf("  %-19s %10s %9s %8s %9s %7s %11s %11s\n", "method", "time", "GFLOP/s", "speedup", "rel.err",
                    "recall", "workspace", "RSS growth");
        for (const Row& r : rows) {
          if (r.method == "sgemm") {
            std::printf("  %-19s %10s %9.1f  (exact at %.2fx of sgemm's rate)\n", "sgemm (anchor)", "", r.gflops,
                        exact_gflops / r.gflops);
            continue;
          }
          char recall[16] = "      -";
          if (r.recall >= 0) std::snprintf(recall, sizeof recall, "%7.3f", r.recall);
          std::printf(
              "  %-19s %8.3f ms %9.1f %7.1fx %9.2g %s %11s %11s  %s\n", r.method.c_str(), r.seconds * 1e3, r.gflops,
              r.speedup, r.error, recall, human_bytes(static_cast<double>(r.memory.workspace_bytes)).c_str(),
              r.memory.rss_growth_bytes < 0 ? "-" : human_bytes(static_cast<double>(r.memory.rss_growth_bytes)).c_str(),
              r.note.c_str());
        }
      }
    }
  }
  csv.commit();
  if (o.json) print_json(report);
  // The plot (time and error vs n) needs matplotlib under the system Python; the CSV is enough without it.
  const std::string script = std::string(HASHMEM_SOURCE_DIR) + "/bench/plot_attention.py";
  if (::access(o.python.c_str(), X_OK) != 0) {
    std::fprintf(stderr, "bench attention: no %s; skipped the plot (CSV: %s)\n", o.python.c_str(), csv_path.c_str());
  } else {
    const ChildResult r = run_child({o.python, script, csv_path});
    if (r.exit_code == 77) {
      std::fprintf(stderr, "bench attention: matplotlib is missing; skipped the plot (CSV: %s)\n", csv_path.c_str());
    } else if (r.exit_code != 0) {
      std::fprintf(stderr, "bench attention: plotting failed (exit %d); CSV: %s\n", r.exit_code, csv_path.c_str());
    } else {
      std::fprintf(stderr, "bench attention: wrote %s and its plot\n", csv_path.c_str());
    }
  }
  return 0;
}

}  // namespace

void register_attention(CLI::App* bench, Action& action) {
  auto o = std::make_shared<AttentionBenchOptions>();
  CLI::App* a =
      bench->add_subcommand("attention", "Exact, LSH, bucket and signature top-k attention vs exact and sgemm");
  a->add_option("--n", o->n_list, "Sequence lengths, comma-separated")->capture_default_str();
  a->add_option("--d", o->d_list, "Head dims, comma-separated")->capture_default_str();
  a->add_flag("--causal", o->causal, "Causal masks (FLOPs counted as half)");
  a->add_option("--inputs", o->inputs, "random (clustered; docs/attention.md) or captured")->capture_default_str();
  a->add_option("--captured", o->captured, "safetensors file with F32 q, k, v [heads, n, d] (--inputs captured)");
  a->add_option("--save-inputs", o->save_inputs,
                "Write the first point's inputs as such a file (a self-test of --captured)");
  a->add_option("--heads", o->heads, "Heads of the random inputs")->capture_default_str();
  a->add_option("--threads", o->threads,
                "Threads for every method (the sgemm anchor uses 1; LSH, bucket and top-k split heads only)")
      ->capture_default_str();
  a->add_option("--lsh-rounds", o->lsh_rounds, "LSH hash rounds")->capture_default_str();
  a->add_option("--lsh-chunk", o->lsh_chunk, "LSH chunk length")->capture_default_str();
  a->add_option("--bucket-rounds", o->bucket_rounds, "Bucket attention rounds")->capture_default_str();
  a->add_option("--bucket-sign-bits", o->bucket_sign_bits, "Sign bits hashed into a bucket")->capture_default_str();
  a->add_option("--top-k", o->top_k_list, "Signature top-k, comma-separated (one row each)")->capture_default_str();
  a->add_option("--sink", o->sink, "Signature top-k: first positions always kept")->capture_default_str();
  a->add_option("--recent", o->recent, "Signature top-k: last positions always kept")->capture_default_str();
  a->add_option("--samples", o->samples, "Query rows sampled for LSH's error and for recall")->capture_default_str();
  a->add_option("--naive-max-n", o->naive_max_n, "Largest n the O(n^2) reference is timed at")->capture_default_str();
  a->add_option("--out", o->out, "Directory of the CSV and PNG")->capture_default_str();
  a->add_option("--python", o->python, "Python with matplotlib for the plot")->capture_default_str();
  a->add_flag("--json", o->json, "Print the figures as JSON");
  a->callback([o, &action] { action = [o] { return run_attention_bench(*o); }; });
}

}  // namespace hashmem::bench
