// One (n, d) point of `hashmem bench attention` (attention_point.hpp): each method measured by its own function,
// the references on sampled rows beside them.
#include "attention_point.hpp"

#include <cblas.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>

#include "hashmem/clock.hpp"
#include "hashmem/error.hpp"
#include "hashmem/human.hpp"
#include "timing.hpp"

namespace hashmem::bench {

namespace att = hashmem::attention;

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

namespace {

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

// A method's row: its time (with the memory of the first call), GFLOP/s and speed-up over exact.
template <class Fn>
Row measured(const char* method, Fn&& fn, double flops, double exact_seconds) {
  Row r(method);
  r.seconds = timed(fn, &r.memory);
  r.gflops = flops / r.seconds / 1e9;
  r.speedup = exact_seconds > 0 ? exact_seconds / r.seconds : 1.0;
  return r;
}

// What every method's measurement shares.
struct Point {
  const AttentionBenchOptions& o;
  const att::Inputs& in;
  bool causal;
  std::int64_t H, n, d;
  att::Dims dims;
  double flops;                    // 4·n²·d per head, half of it causal
  std::vector<std::int64_t> rows;  // sampled query rows
};

// Exact attention (its output into exact_out), then the anchors: sgemm on the Q·Kᵀ shape, and the naive reference.
void exact_rows(const Point& point, std::vector<float>& exact_out, std::vector<Row>& result) {
  const std::int64_t H = point.H, n = point.n, d = point.d;
  const AttentionBenchOptions& o = point.o;
  const att::Inputs& in = point.in;
  const att::Dims& dims = point.dims;
  const bool causal = point.causal;
  const double flops = point.flops;
  std::vector<float> lse(static_cast<std::size_t>(H * n));
  const att::ExactOptions eo{causal, 0, o.threads};
  Row exact = measured(
      "exact",
      [&] { att::exact_forward(dims, in.q.data(), in.k.data(), in.v.data(), exact_out.data(), lse.data(), eo); }, flops,
      0);
  exact.error = 0;
  exact.recall = 1;
  result.push_back(exact);

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
}

// LSH (q as the shared QK); error and recall against full attention with the same score function.
Row lsh_row(const Point& point, double exact_seconds) {
  const std::int64_t H = point.H, n = point.n, d = point.d;
  const AttentionBenchOptions& o = point.o;
  const att::Inputs& in = point.in;
  const bool causal = point.causal;
  const auto& rows = point.rows;
  std::vector<float> out(static_cast<std::size_t>(H * n * d)), lse(static_cast<std::size_t>(H * n));
  att::LshOptions lo;
  lo.rounds = o.lsh_rounds;
  lo.chunk = o.lsh_chunk;
  lo.causal = causal;
  lo.seed = 1;
  lo.threads = o.threads;
  Row lsh = measured(
      "lsh", [&] { att::lsh_forward(point.dims, in.q.data(), in.v.data(), out.data(), lse.data(), lo); }, point.flops, exact_seconds);
  double num = 0, den = 0, recall = 0;
  std::int64_t counted = 0;
  for (std::int64_t h = 0; h < H; ++h) {
    const auto seen = att::lsh_attended_keys(point.dims, in.q.data(), lo, h, rows);
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
  return lsh;
}

// Hash buckets (LSH sign bits through xxh3), against exact attention on all rows.
Row bucket_row(const Point& point, const std::vector<float>& exact_out, double exact_seconds) {
  const std::int64_t H = point.H, n = point.n, d = point.d;
  const AttentionBenchOptions& o = point.o;
  const att::Inputs& in = point.in;
  const att::Dims& dims = point.dims;
  const bool causal = point.causal;
  const auto& rows = point.rows;
  std::vector<float> out(exact_out.size());
  att::BucketOptions bo;
  bo.rounds = o.bucket_rounds;
  bo.sign_bits = o.bucket_sign_bits;
  bo.causal = causal;
  bo.threads = o.threads;
  att::BucketStats stats;
  Row bucket = measured(
      "bucket",
      [&] { att::bucket_forward(dims, in.q.data(), in.k.data(), in.v.data(), nullptr, out.data(), bo, &stats); },
      point.flops, exact_seconds);
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
  return bucket;
}

// Decoding one query per head (the sampled rows as queries, every key visible): exact vs signature top-k at each
// --top-k.
void decode_rows(const Point& point, std::vector<Row>& result) {
  const std::int64_t H = point.H, n = point.n, d = point.d;
  const AttentionBenchOptions& o = point.o;
  const att::Inputs& in = point.in;
  const auto& rows = point.rows;
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

}  // namespace

std::vector<Row> run_point(const AttentionBenchOptions& o, const att::Inputs& in, bool causal) {
  const std::int64_t H = in.heads, n = in.tokens, d = in.dim;
  const Point p{o, in, causal, H, n, d, att::Dims{H, n, n, d, d},
                4.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(d) *
                    static_cast<double>(H) * (causal ? 0.5 : 1.0),
                sample_rows(n, o.samples, 7)};
  std::vector<Row> result;
  std::vector<float> exact_out(static_cast<std::size_t>(H * n * d), 0.0f);
  exact_rows(p, exact_out, result);
  const double exact_seconds = result[0].seconds;
  result.push_back(lsh_row(p, exact_seconds));
  result.push_back(bucket_row(p, exact_out, exact_seconds));
  decode_rows(p, result);
  return result;
}

}  // namespace hashmem::bench
