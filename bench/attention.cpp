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
#include <cblas.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <sstream>

#include "hashmem/process.hpp"
#include "bench.hpp"
#include "timing.hpp"
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

struct AttentionBenchOptions {
  std::string n_list = "1024,4096,16384,65536";
  std::string d_list = "128";
  bool causal = false;
  std::string inputs = "random";
  std::string captured;
  std::string save_inputs;
  std::int64_t heads = 1;
  int threads = 1;
  int lsh_rounds = 4;
  std::int64_t lsh_chunk = 64;
  int bucket_rounds = 2;
  int bucket_sign_bits = 8;
  std::string top_k_list = "256,2048";
  std::int64_t sink = 4, recent = 64;
  std::int64_t samples = 64;        // query rows sampled for LSH's error and for recall
  std::int64_t naive_max_n = 2048;  // the O(n²) reference is timed up to this n
  std::string out = "build/bench-attention";
  std::string python = HASHMEM_SYSTEM_PYTHON;
  bool json = false;
};

std::vector<std::int64_t> parse_list(const std::string& text, const char* option) {
  std::vector<std::int64_t> values;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    try {
      std::size_t used = 0;
      const long long v = std::stoll(item, &used);
      if (used != item.size() || v < 1) throw std::invalid_argument(item);
      values.push_back(v);
    } catch (const std::exception&) {
      throw Error(std::string(option) + ": '" + item + "' is not a positive integer");
    }
  }
  if (values.empty()) throw Error(std::string(option) + " is empty");
  return values;
}

// ---- measurement helpers ----

// Best wall time of up to `runs` calls; no further call once 5 s are spent (at n = 64K exact takes ~20 s).
template <class Fn>
double best_of(Fn&& fn, int runs = 3) {
  return best_seconds(fn, {.runs = runs, .max_seconds = 5.0});
}

// Mean time of a fast call, repeated for at least 0.2 s (best of 3 such rounds).
template <class Fn>
double mean_seconds(Fn&& fn) {
  return 1.0 / calls_per_second(fn, 0.2);
}

std::int64_t status_kib(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(field, 0) == 0) return std::stoll(line.substr(std::strlen(field)));
  }
  return -1;
}

struct Memory {
  std::int64_t workspace_bytes = 0;
  std::int64_t rss_growth_bytes = -1;  // −1: the peak could not be reset
};

// Runs fn once with the library's workspace counter and the process's peak RSS reset.
template <class Fn>
Memory measure_memory(Fn&& fn) {
  Memory m;
  att::reset_peak_workspace();
  const std::int64_t before = att::peak_workspace_bytes();
  bool reset = false;
  {
    std::ofstream clear("/proc/self/clear_refs");
    clear << "5";
    reset = static_cast<bool>(clear.flush());
  }
  const std::int64_t rss = status_kib("VmRSS:");
  fn();
  m.workspace_bytes = att::peak_workspace_bytes() - before;
  if (reset && rss >= 0) m.rss_growth_bytes = std::max<std::int64_t>(0, status_kib("VmHWM:") - rss) * 1024;
  return m;
}

// best_seconds(fn) with the memory of its first call measured.
template <class Fn>
double timed(Fn&& fn, Memory* memory) {
  double first = 0;
  *memory = measure_memory([&] {
    const double t0 = now_seconds();
    fn();
    first = now_seconds() - t0;
  });
  return first > 5.0 ? first : std::min(first, best_of(fn, 2));
}

double sgemm_rate(std::int64_t n, std::int64_t d) {
  const std::int64_t m = std::min<std::int64_t>(n, 4096);
  std::vector<float> a(static_cast<std::size_t>(m * d), 0.5f), c(static_cast<std::size_t>(m * m));
  auto call = [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, static_cast<int>(m), static_cast<int>(m), static_cast<int>(d),
                1.0f, a.data(), static_cast<int>(d), a.data(), static_cast<int>(d), 0.0f, c.data(),
                static_cast<int>(m));
  };
  call();
  return 2.0 * static_cast<double>(m) * static_cast<double>(m) * static_cast<double>(d) / mean_seconds(call) / 1e9;
}

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

// ---- references on sampled rows ----

// Softmax probabilities of query row i of head h against the visible keys (double). shared_qk: LSH's function
// (keys are the queries normalised, the own key scores −1e5).
std::vector<double> probabilities(const att::Inputs& in, std::int64_t h, std::int64_t i, bool causal, bool shared_qk) {
  const std::int64_t n = in.tokens, d = in.dim, visible = causal ? i + 1 : n;
  const float* q = in.q.data() + (h * n + i) * d;
  const float* keys = (shared_qk ? in.q.data() : in.k.data()) + h * n * d;
  const double scale = 1.0 / std::sqrt(static_cast<double>(d));
  std::vector<double> p(static_cast<std::size_t>(visible));
  double best = -1e300;
  for (std::int64_t j = 0; j < visible; ++j) {
    double dot = 0, norm = 0;
    for (std::int64_t c = 0; c < d; ++c) {
      dot += static_cast<double>(q[c]) * keys[j * d + c];
      norm += static_cast<double>(keys[j * d + c]) * keys[j * d + c];
    }
    p[static_cast<std::size_t>(j)] =
        shared_qk ? (j == i ? -1e5 : scale * dot / std::max(std::sqrt(norm), 1e-6)) : scale * dot;
    best = std::max(best, p[static_cast<std::size_t>(j)]);
  }
  double sum = 0;
  for (auto& x : p) sum += (x = std::exp(x - best));
  for (auto& x : p) x /= sum;
  return p;
}

std::vector<std::int64_t> sample_rows(std::int64_t n, std::int64_t samples, std::uint64_t seed) {
  std::vector<std::int64_t> rows;
  std::mt19937_64 rng(seed);
  for (std::int64_t s = 0; s < std::min(samples, n); ++s)
    rows.push_back(static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(n)));
  return rows;
}

double relative_l2(const float* a, const double* b, std::int64_t count) {
  double num = 0, den = 0;
  for (std::int64_t i = 0; i < count; ++i) {
    num += (a[i] - b[i]) * (a[i] - b[i]);
    den += b[i] * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-300));
}

// ---- one (n, d) point ----

struct Row {
  explicit Row(std::string name) : method(std::move(name)) {}
  std::string method;
  double seconds = 0, gflops = 0, speedup = 0, error = -1, recall = -1;
  Memory memory;
  std::string note;
};

// A method's row: its time (with the memory of the first call), GFLOP/s and speed-up over exact.
template <class Fn>
Row measured(const char* method, Fn&& fn, double flops, double exact_seconds) {
  Row r(method);
  r.seconds = timed(fn, &r.memory);
  r.gflops = flops / r.seconds / 1e9;
  r.speedup = exact_seconds > 0 ? exact_seconds / r.seconds : 1.0;
  return r;
}

std::vector<Row> run_point(const AttentionBenchOptions& o, const att::Inputs& in, bool causal) {
  const std::int64_t H = in.heads, n = in.tokens, d = in.dim;
  const att::Dims dims{H, n, n, d, d};
  const double flops = 4.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(d) *
                       static_cast<double>(H) * (causal ? 0.5 : 1.0);
  const auto rows = sample_rows(n, o.samples, 7);
  std::vector<Row> result;
  std::vector<float> exact_out(static_cast<std::size_t>(H * n * d), 0.0f), out(exact_out.size(), 0.0f),
      lse(static_cast<std::size_t>(H * n));

  // exact
  const att::ExactOptions eo{causal, 0, o.threads};
  Row exact = measured(
      "exact",
      [&] { att::exact_forward(dims, in.q.data(), in.k.data(), in.v.data(), exact_out.data(), lse.data(), eo); }, flops,
      0);
  exact.error = 0;
  exact.recall = 1;
  result.push_back(exact);

  // anchors: sgemm on the Q·Kᵀ shape, and the naive reference
  Row sgemm{"sgemm"};
  sgemm.gflops = sgemm_rate(n, d);
  sgemm.note = "OpenBLAS, 1 thread, [" + std::to_string(std::min<std::int64_t>(n, 4096)) + " x " + std::to_string(d) +
               "]·[" + std::to_string(d) + " x " + std::to_string(std::min<std::int64_t>(n, 4096)) + "]";
  result.push_back(sgemm);
  if (n <= o.naive_max_n) {
    Row naive{"naive"};
    std::vector<float> naive_out(exact_out.size());
    naive.seconds = best_of([&] {
      att::exact_reference_forward<float>(dims, in.q.data(), in.k.data(), in.v.data(), naive_out.data(), nullptr, eo);
    });
    naive.gflops = flops / naive.seconds / 1e9;
    naive.speedup = exact.seconds / naive.seconds;
    std::vector<double> exact_d(exact_out.begin(), exact_out.end());
    naive.error = relative_l2(naive_out.data(), exact_d.data(), H * n * d);
    naive.memory.workspace_bytes = static_cast<std::int64_t>(n * sizeof(float));  // one score row
    naive.note = "O(n^2) reference, one score row at a time";
    result.push_back(naive);
  }

  // LSH (q as the shared QK); error and recall against full attention with the same score function
  {
    att::LshOptions lo;
    lo.rounds = o.lsh_rounds;
    lo.chunk = o.lsh_chunk;
    lo.causal = causal;
    lo.seed = 1;
    lo.threads = o.threads;
    Row lsh = measured(
        "lsh", [&] { att::lsh_forward(dims, in.q.data(), in.v.data(), out.data(), lse.data(), lo); }, flops,
        exact.seconds);
    double num = 0, den = 0, recall = 0;
    std::int64_t counted = 0;
    for (std::int64_t h = 0; h < H; ++h) {
      const auto seen = att::lsh_attended_keys(dims, in.q.data(), lo, h, rows);
      for (std::size_t s = 0; s < rows.size(); ++s) {
        const std::int64_t i = rows[s];
        const auto p = probabilities(in, h, i, causal, true);
        std::vector<char> mark(p.size(), 0);
        for (std::int64_t j : seen[s]) mark[static_cast<std::size_t>(j)] = 1;
        for (std::size_t j = 0; j < p.size(); ++j) recall += mark[j] ? p[j] : 0.0;
        for (std::int64_t c = 0; c < d; ++c) {
          double ref = 0;
          for (std::size_t j = 0; j < p.size(); ++j) ref += p[j] * in.v[(h * n + static_cast<std::int64_t>(j)) * d + c];
          const double diff = out[(h * n + i) * d + c] - ref;
          num += diff * diff;
          den += ref * ref;
        }
        ++counted;
      }
    }
    lsh.error = std::sqrt(num / std::max(den, 1e-300));
    lsh.recall = recall / static_cast<double>(counted);
    lsh.note = std::to_string(o.lsh_rounds) + " rounds, chunk " + std::to_string(o.lsh_chunk) +
               "; reference: full shared-QK attention";
    result.push_back(lsh);
  }

  // hash buckets (LSH sign bits through xxh3), against exact attention on all rows
  {
    att::BucketOptions bo;
    bo.rounds = o.bucket_rounds;
    bo.sign_bits = o.bucket_sign_bits;
    bo.causal = causal;
    bo.threads = o.threads;
    att::BucketStats stats;
    Row bucket = measured(
        "bucket",
        [&] { att::bucket_forward(dims, in.q.data(), in.k.data(), in.v.data(), nullptr, out.data(), bo, &stats); },
        flops, exact.seconds);
    std::vector<double> exact_d(exact_out.begin(), exact_out.end());
    bucket.error = relative_l2(out.data(), exact_d.data(), H * n * d);
    std::vector<std::uint32_t> qid(static_cast<std::size_t>(bo.rounds * H * n)), kid(qid.size());
    att::bucket_ids(dims, in.q.data(), nullptr, bo, qid.data());
    att::bucket_ids(dims, in.k.data(), nullptr, bo, kid.data());
    double recall = 0;
    for (std::int64_t h = 0; h < H; ++h) {
      for (std::int64_t i : rows) {
        const auto p = probabilities(in, h, i, causal, false);
        for (std::size_t j = 0; j < p.size(); ++j) {
          bool seen = false;
          for (int r = 0; r < bo.rounds && !seen; ++r) {
            seen = kid[static_cast<std::size_t>((r * H + h) * n) + j] ==
                   qid[static_cast<std::size_t>((r * H + h) * n + i)];
          }
          if (seen) recall += p[j];
        }
      }
    }
    bucket.recall = recall / static_cast<double>(H * rows.size());
    bucket.note = std::to_string(bo.rounds) + " rounds, " + std::to_string(bo.sign_bits) +
                  " sign bits -> xxh3 -> 2^16; " + std::to_string(stats.buckets_used) + " buckets used, table " +
                  human_bytes(static_cast<double>(stats.table_bytes));
    result.push_back(bucket);
  }

  // decoding one query per head (the sampled rows as queries, every key visible): exact vs signature top-k at
  // each --top-k
  {
    const auto top_ks = parse_list(o.top_k_list, "--top-k");
    att::SignatureOptions so;
    so.sink = o.sink;
    so.recent = o.recent;
    so.threads = o.threads;
    std::vector<std::uint64_t> signatures(static_cast<std::size_t>(H * n));
    const double signing =
        best_of([&] { att::simhash_signatures(H * n, d, in.k.data(), so.bits, so.seed, signatures.data()); }, 1);
    const att::Dims decode{H, 1, n, d, d};
    std::vector<float> query(static_cast<std::size_t>(H * d)), exact_one(query.size()), topk_one(query.size());
    struct Sums {
      double seconds = 0, num = 0, den = 0, recall = 0;
      Memory memory;
    };
    Sums exact_sums;
    std::vector<Sums> topk_sums(top_ks.size());
    const std::size_t queries = std::min<std::size_t>(rows.size(), 8);
    for (std::size_t s = 0; s < queries; ++s) {
      for (std::int64_t h = 0; h < H; ++h) std::copy_n(in.q.data() + (h * n + rows[s]) * d, d, query.data() + h * d);
      auto run_exact_one = [&] {
        att::exact_forward(decode, query.data(), in.k.data(), in.v.data(), exact_one.data(), nullptr,
                           {false, 0, o.threads});
      };
      if (s == 0) exact_sums.memory = measure_memory(run_exact_one);
      exact_sums.seconds += mean_seconds(run_exact_one);
      // The query is row rows[s] of q: its probabilities over all keys (non-causal).
      std::vector<std::vector<double>> p;
      for (std::int64_t h = 0; h < H; ++h) p.push_back(probabilities(in, h, rows[s], false, false));
      for (std::size_t ki = 0; ki < top_ks.size(); ++ki) {
        so.top_k = std::min(top_ks[ki], n);
        const std::int64_t selection = std::min(n, so.sink + so.recent + so.top_k);
        std::vector<std::int64_t> selected(static_cast<std::size_t>(H * selection));
        auto run_topk = [&] {
          att::signature_topk_decode(decode, query.data(), in.k.data(), in.v.data(), signatures.data(), topk_one.data(),
                                     selected.data(), so);
        };
        Sums& sums = topk_sums[ki];
        if (s == 0) sums.memory = measure_memory(run_topk);
        sums.seconds += mean_seconds(run_topk);
        for (std::int64_t h = 0; h < H; ++h) {
          for (std::int64_t t = 0; t < selection; ++t)
            sums.recall += p[static_cast<std::size_t>(h)][static_cast<std::size_t>(selected[h * selection + t])];
          for (std::int64_t c = 0; c < d; ++c) {
            const double diff = topk_one[h * d + c] - exact_one[h * d + c];
            sums.num += diff * diff;
            sums.den += static_cast<double>(exact_one[h * d + c]) * exact_one[h * d + c];
          }
        }
      }
    }
    const double decode_flops = 4.0 * static_cast<double>(n) * static_cast<double>(d) * static_cast<double>(H);
    Row exact_decode("exact_decode");
    exact_decode.seconds = exact_sums.seconds / static_cast<double>(queries);
    exact_decode.gflops = decode_flops / exact_decode.seconds / 1e9;
    exact_decode.speedup = 1;
    exact_decode.error = 0;
    exact_decode.recall = 1;
    exact_decode.memory = exact_sums.memory;
    exact_decode.note = "one query per head against all n keys";
    result.push_back(exact_decode);
    for (std::size_t ki = 0; ki < top_ks.size(); ++ki) {
      const Sums& sums = topk_sums[ki];
      Row topk("signature_topk_" + std::to_string(top_ks[ki]));  // named by the k asked for, capped at n below
      topk.seconds = sums.seconds / static_cast<double>(queries);
      topk.speedup = exact_decode.seconds / topk.seconds;
      topk.gflops = decode_flops / topk.seconds / 1e9;
      topk.error = std::sqrt(sums.num / std::max(sums.den, 1e-300));
      topk.recall = sums.recall / static_cast<double>(queries * static_cast<std::size_t>(H));
      topk.memory = sums.memory;
      topk.memory.workspace_bytes += static_cast<std::int64_t>(signatures.size() * sizeof(std::uint64_t));
      char note[160];
      std::snprintf(
          note, sizeof note,
          "%d-bit signatures (%.1f ms to sign all keys, kept with the cache), top %lld + sink %lld + recent %lld",
          so.bits, signing * 1e3, static_cast<long long>(std::min(top_ks[ki], n)), static_cast<long long>(so.sink),
          static_cast<long long>(so.recent));
      topk.note = note;
      result.push_back(topk);
    }
  }
  return result;
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
