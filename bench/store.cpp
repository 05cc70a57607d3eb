// hashmem bench store | gather: the tiered store against the machine's own rates, measured in the same run.
//   1. DRAM tier gather of 128 B and 512 B rows vs a raw prefetching gather loop over the same bytes.
//   2. SSD tier rows/s with no cache vs plain io_uring O_DIRECT 4 KiB random reads of the same file at QD64.
//   3. An Engram-shaped text workload on a table >= 8 GiB, DRAM budget 1/4 of it: tokens/s vs the same
//      stream with the whole table in DRAM, and hit ratio vs the oracle hot set of the same size; plus the
//      hit-ratio curves (policy × cache size) and the row-frequency profile as CSV (and PNG via matplotlib).
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <liburing.h>
#include <random>
#include <unistd.h>

#include "bench.hpp"
#include "cluster_gather.hpp"
#include "timing.hpp"
#include "common/huge_pages.hpp"
#include "hashmem/clock.hpp"
#include "hashmem/error.hpp"
#include "hashmem/human.hpp"
#include "hashmem/store.hpp"
#include "store/cache_policy.hpp"
#include "store_workload.hpp"

namespace hashmem::bench {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;
using store::Table;

// The anchor of figure 1: what a careful hand-written loop gets from the same memory.
void raw_gather(const std::uint8_t* base, std::size_t rb, const std::int64_t* ids, std::size_t n, std::uint8_t* out) {
  constexpr std::size_t kAhead = 16;
  for (std::size_t i = 0; i < n; ++i) {
    if (i + kAhead < n) {
      const std::uint8_t* p = base + static_cast<std::size_t>(ids[i + kAhead]) * rb;
      for (std::size_t c = 0; c < rb; c += 64) __builtin_prefetch(p + c);
    }
    std::memcpy(out + i * rb, base + static_cast<std::size_t>(ids[i]) * rb, rb);
  }
}

// Deletes a scratch table when the benchmark ends, also when it fails half way.
struct RemoveOnExit {
  std::string path;
  bool keep = false;
  ~RemoveOnExit() {
    std::error_code ec;
    if (!keep) fs::remove(path, ec);
  }
};

// An Engram config whose single layer has about `rows` rows (orders 2–3, 8 heads).
engram::Config config_with_rows(std::int64_t rows, std::int64_t compressed_vocab) {
  engram::Config c;
  c.max_ngram = 3;
  c.heads = 8;
  c.layers = {1};
  c.compressed_vocab = compressed_vocab;
  c.vocab_per_order = {rows / 16, rows / 16};
  return c;
}

std::string make_table(const std::string& path, const engram::Config& config, std::int64_t dim, store::DType dtype) {
  store::CreateOptions o;
  o.config = config;
  o.dim = dim;
  o.dtype = dtype;
  o.init = store::Init::zeros;  // throughput does not depend on the values; the tests check them
  std::fprintf(stderr, "bench store: writing %s...\n", path.c_str());
  store::create_table(o, path);
  return path;
}

ojson bench_dram_gather(const std::string& workdir, std::int64_t dim, double seconds) {
  const std::string path = workdir + "/dram-" + std::to_string(dim) + ".safetensors";
  const RemoveOnExit cleanup{path};
  const std::size_t rb = store::row_bytes(store::DType::f32, dim);
  const std::int64_t rows_wanted = static_cast<std::int64_t>((std::size_t{1} << 30) / rb);  // 1 GiB
  make_table(path, config_with_rows(rows_wanted, 1000), dim, store::DType::f32);
  auto table = Table::open(path);
  const store::TableInfo& info = table->info();
  // The same bytes in a second buffer of the same kind (2 MiB pages) for the raw loop.
  HugeVector<std::uint8_t> copy(info.tensors[0].bytes);
  {
    std::vector<std::int64_t> all_ids;
    const std::int64_t chunk = (16 << 20) / static_cast<std::int64_t>(rb);
    std::vector<float> buf(static_cast<std::size_t>(chunk * dim));
    for (std::int64_t r = 0; r < info.tensors[0].rows; r += chunk) {
      const std::int64_t n = std::min(chunk, info.tensors[0].rows - r);
      all_ids.resize(static_cast<std::size_t>(n));
      for (std::int64_t i = 0; i < n; ++i) all_ids[static_cast<std::size_t>(i)] = r + i;
      table->gather(0, all_ids.data(), all_ids.size(), buf.data());
      std::memcpy(copy.data() + static_cast<std::size_t>(r) * rb, buf.data(), static_cast<std::size_t>(n) * rb);
    }
  }
  const std::size_t batch = 4096;
  std::mt19937_64 rng(1);
  std::vector<std::int64_t> ids(batch * 64);
  for (auto& id : ids) id = static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(info.tensors[0].rows));
  std::vector<float> out(batch * static_cast<std::size_t>(dim));
  std::size_t at = 0;
  const double ours = calls_per_second([&] {
    table->gather(0, ids.data() + at, batch, out.data());
    at = (at + batch) % ids.size();
  }, seconds) * batch;
  at = 0;
  const double raw = calls_per_second([&] {
    raw_gather(copy.data(), rb, ids.data() + at, batch, reinterpret_cast<std::uint8_t*>(out.data()));
    at = (at + batch) % ids.size();
  }, seconds) * batch;
  table.reset();
  return {{"row_bytes", rb}, {"table_bytes", info.tensors[0].bytes}, {"rows_per_s", ours},
          {"raw_rows_per_s", raw}, {"gb_per_s", ours * rb / 1e9}, {"raw_gb_per_s", raw * rb / 1e9},
          {"ratio", ours / raw}};
}

// The anchor of figure 2: random 4 KiB O_DIRECT reads of the file's data region at queue depth `qd`.
double raw_uring_iops(const std::string& path, std::uint64_t begin, std::uint64_t end, int qd, double seconds) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
  if (fd < 0) throw Error("cannot open '" + path + "' with O_DIRECT: " + std::strerror(errno));
  io_uring ring;
  if (io_uring_queue_init(static_cast<unsigned>(qd), &ring, 0) < 0) throw Error("io_uring_queue_init failed");
  std::uint8_t* buffers = static_cast<std::uint8_t*>(std::aligned_alloc(4096, static_cast<std::size_t>(qd) * 4096));
  std::mt19937_64 rng(3);
  const std::uint64_t blocks = (end - begin) / 4096;
  auto submit_one = [&](int slot) {
    io_uring_sqe* sqe = io_uring_get_sqe(&ring);
    const std::uint64_t off = (begin + 4095) / 4096 * 4096 + (rng() % (blocks - 1)) * 4096;
    io_uring_prep_read(sqe, fd, buffers + static_cast<std::size_t>(slot) * 4096, 4096, off);
    io_uring_sqe_set_data64(sqe, static_cast<std::uint64_t>(slot));
  };
  for (int s = 0; s < qd; ++s) submit_one(s);
  io_uring_submit(&ring);
  std::uint64_t done = 0;
  const double t0 = now_seconds();
  double t = t0;
  while (t - t0 < seconds) {
    io_uring_cqe* cqe;
    io_uring_wait_cqe(&ring, &cqe);
    if (cqe->res < 0) throw Error(std::string("raw io_uring read failed: ") + std::strerror(-cqe->res));
    const int slot = static_cast<int>(io_uring_cqe_get_data64(cqe));
    io_uring_cqe_seen(&ring, cqe);
    ++done;
    submit_one(slot);
    io_uring_submit(&ring);
    if ((done & 255) == 0) t = now_seconds();
  }
  t = now_seconds();
  // Drain.
  for (int s = 0; s < qd; ++s) {
    io_uring_cqe* cqe;
    io_uring_wait_cqe(&ring, &cqe);
    io_uring_cqe_seen(&ring, cqe);
  }
  io_uring_queue_exit(&ring);
  std::free(buffers);
  ::close(fd);
  return static_cast<double>(done) / (t - t0);
}

// Rows/s of the SSD tier with no cache (every row a read), tickets pipelined two deep.
double ssd_rows_per_s(const std::string& path, int qd, double seconds, store::Stats* stats) {
  store::OpenOptions o;
  o.tier = store::Tier::ssd;
  o.queue_depth = qd;
  o.staging_bytes = 256u << 20;
  auto table = Table::open(path, o);
  const std::int64_t rows = table->info().tensors[0].rows;
  const std::size_t batch = 1024;
  std::mt19937_64 rng(4);
  std::vector<std::vector<std::int64_t>> ids(2, std::vector<std::int64_t>(batch));
  std::vector<float> out(batch * static_cast<std::size_t>(table->info().dim));
  auto fill = [&](std::vector<std::int64_t>& v) {
    for (auto& id : v) id = static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(rows));
  };
  fill(ids[0]);
  store::Ticket next = table->prefetch(0, ids[0].data(), batch);
  std::uint64_t rows_done = 0;
  const double t0 = now_seconds();
  double t = t0;
  for (int step = 1; t - t0 < seconds; ++step) {
    store::Ticket current = std::move(next);
    fill(ids[step % 2]);
    next = table->prefetch(0, ids[step % 2].data(), batch);
    table->gather(current, out.data());
    rows_done += batch;
    t = now_seconds();
  }
  table->gather(next, out.data());
  *stats = table->stats();
  return static_cast<double>(rows_done) / (t - t0);
}


// Figure 2: the SSD tier with no cache against raw io_uring reads of the same file, alternated over `rounds`
// rounds (raw, ours, raw, ours, ...) so the virtual disk's drift hits both alike; the ratio is the median of the
// rounds' ratios, and the range is printed.
ojson bench_ssd_iops(const std::string& big, const store::TableInfo& info, double seconds, int rounds, int qd) {
  std::vector<double> raws, ours, ratios;
  store::Stats s;
  const std::uint64_t begin = info.tensors[0].offset, end = begin + info.tensors[0].bytes;
  for (int r = 0; r < std::max(rounds, 1); ++r) {
    raws.push_back(raw_uring_iops(big, begin, end, 64, seconds));
    ours.push_back(ssd_rows_per_s(big, qd, seconds, &s));
    ratios.push_back(ours.back() / raws.back());
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v.size() % 2 ? v[v.size() / 2] : (v[v.size() / 2 - 1] + v[v.size() / 2]) / 2;
  };
  const auto [lo, hi] = std::minmax_element(ratios.begin(), ratios.end());
  std::printf("SSD tier, no cache, %zu B rows, QD%d: %.1f k rows/s (= reads/s, max queue depth %llu) vs raw io_uring "
              "O_DIRECT 4 KiB reads at QD64 %.1f k IOPS: %.0f %% (median of %zu alternated rounds; %.0f-%.0f %%)\n",
              info.row_bytes, qd, median(ours) / 1e3, static_cast<unsigned long long>(s.max_queue_depth),
              median(raws) / 1e3, 100 * median(ratios), ratios.size(), 100 * *lo, 100 * *hi);
  std::fflush(stdout);
  return {{"rows_per_s", median(ours)}, {"raw_iops", median(raws)}, {"ratio", median(ratios)},
          {"ratio_min", *lo}, {"ratio_max", *hi}, {"rounds", ratios.size()}, {"rows_per_s_rounds", ours},
          {"raw_iops_rounds", raws}, {"max_queue_depth", s.max_queue_depth}, {"queue_depth", qd}};
}

}  // namespace

int run_store_bench(const StoreBenchOptions& o) {
  fs::create_directories(o.workdir);
  ojson report;
  auto wanted = [&](const char* part) { return std::find(o.parts.begin(), o.parts.end(), part) != o.parts.end(); };
  for (const std::string& p : o.parts) {
    if (p != "dram" && p != "ssd" && p != "text") throw Error("unknown bench store part '" + p + "' (known: dram, ssd, text)");
  }
  // 1. DRAM tier vs raw gather.
  ojson dram = ojson::array();
  for (std::int64_t dim : {32, 128}) {
    if (!wanted("dram")) break;
    const ojson r = bench_dram_gather(o.workdir, dim, o.seconds);
    std::printf("DRAM tier gather, %lld B rows (1 GiB table, random ids, batches of 4096): %.1f M rows/s "
                "(%.2f GB/s) vs raw prefetching loop %.1f M rows/s (%.2f GB/s): %.0f %%\n",
                static_cast<long long>(r["row_bytes"].get<std::size_t>()), r["rows_per_s"].get<double>() / 1e6,
                r["gb_per_s"].get<double>(), r["raw_rows_per_s"].get<double>() / 1e6, r["raw_gb_per_s"].get<double>(),
                100 * r["ratio"].get<double>());
    std::fflush(stdout);
    dram.push_back(r);
  }
  if (wanted("dram")) report["dram_gather"] = dram;
  if (!wanted("ssd") && !wanted("text")) {
    if (o.json) print_json(report);
    return 0;
  }

  // 2 and 3 share the big table.
  const std::string big = o.workdir + "/big.safetensors";
  const RemoveOnExit cleanup{big, o.keep};
  const std::int64_t big_rows = static_cast<std::int64_t>(o.big_table_bytes / store::row_bytes(store::DType::f32, o.big_dim));
  Workload workload;
  if (wanted("text")) workload = load_text_workload(o);
  make_table(big, config_with_rows(big_rows, wanted("text") ? workload.compressed_vocab : 1000), o.big_dim, store::DType::f32);
  const store::TableInfo big_info = store::read_info(big);
  if (wanted("ssd")) report["ssd_iops"] = bench_ssd_iops(big, big_info, o.seconds, o.rounds, o.queue_depth);
  if (wanted("text")) report["text"] = run_text_workload(o, workload, big, big_info);
  if (o.json) print_json(report);
  return 0;
}

}  // namespace hashmem::bench

namespace hashmem::bench {
namespace {

struct GatherBenchOptions {
  std::string tier = "ssd", table, workload = "zipf:1.0", policy = "s3fifo", corpus = "build/data/corpus";
  std::uint64_t dram_budget = 0;
  double static_fraction = 0.0, seconds = 5.0;
  std::int64_t step_rows = 32768, lookups = 4'000'000;
  bool dram_anchor = true, json = false;
};

// Zipf(alpha) over `keys` ranks (inverse CDF by binary search), each rank mapped to a pseudo-random row.
std::vector<std::int64_t> zipf_stream(double alpha, std::int64_t rows, std::int64_t n, std::uint64_t seed) {
  const std::int64_t keys = std::min<std::int64_t>(rows, 10'000'000);
  std::vector<double> cdf(static_cast<std::size_t>(keys));
  double sum = 0;
  for (std::int64_t k = 0; k < keys; ++k) cdf[static_cast<std::size_t>(k)] = sum += std::pow(static_cast<double>(k + 1), -alpha);
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0.0, sum);
  std::vector<std::int64_t> out(static_cast<std::size_t>(n));
  for (auto& r : out) {
    const auto k = static_cast<std::uint64_t>(std::lower_bound(cdf.begin(), cdf.end(), u(rng)) - cdf.begin());
    r = static_cast<std::int64_t>((k * 0x9e3779b97f4a7c15ull + 12345) % static_cast<std::uint64_t>(rows));
  }
  return out;
}

int run_gather_bench(const GatherBenchOptions& o) {
  const store::TableInfo info = store::read_info(o.table);
  std::vector<std::int64_t> stream;
  if (o.workload.rfind("zipf:", 0) == 0) {
    double alpha = 0;
    try {
      alpha = std::stod(o.workload.substr(5));
    } catch (const std::exception&) {
      throw Error("--workload zipf:ALPHA needs a number, got '" + o.workload + "'");
    }
    if (!(alpha > 0 && alpha < 10)) throw Error("zipf alpha must be in (0, 10), got " + o.workload.substr(5));
    stream = zipf_stream(alpha, info.tensors[0].rows, o.lookups, 7);
  } else if (o.workload.rfind("text:", 0) == 0) {
    StoreBenchOptions so;
    so.corpus = o.corpus;
    const std::string file = o.workload.substr(5);
    Workload w = load_text_file_workload(so, file);
    stream = row_stream(info, w.valid);
  } else {
    throw Error("--workload must be zipf:ALPHA or text:FILE, got '" + o.workload + "'");
  }
  const std::vector<std::int64_t> hot =
      o.static_fraction > 0 ? store::hottest_rows(stream.data(), stream.size(), static_cast<std::int64_t>(o.dram_budget / info.row_bytes))
                            : std::vector<std::int64_t>{};
  double measured_seconds = 0;
  auto run = [&](const store::OpenOptions& opt, store::Stats* stats) {
    auto table = Table::open(o.table, opt);
    std::vector<float> out(static_cast<std::size_t>(o.step_rows * info.dim));
    const std::size_t step = static_cast<std::size_t>(o.step_rows);
    double seconds = 0;
    for (int pass = 0; pass < 2; ++pass) {  // the first pass warms the cache
      table->reset_stats();
      const double t0 = now_seconds();
      store::Ticket next = table->prefetch(0, stream.data(), std::min(step, stream.size()));
      for (std::size_t at = 0; at < stream.size(); at += step) {
        store::Ticket current = std::move(next);
        if (at + step < stream.size()) next = table->prefetch(0, stream.data() + at + step, std::min(step, stream.size() - at - step));
        table->gather(current, out.data());
      }
      seconds = now_seconds() - t0;
    }
    *stats = table->stats();
    measured_seconds = seconds;
    return static_cast<double>(stream.size()) / seconds;
  };
  store::OpenOptions ssd;
  ssd.tier = store::Tier::ssd;
  ssd.dram_budget = o.dram_budget;
  ssd.policy = store::parse_policy(o.policy);
  ssd.static_fraction = o.static_fraction;
  if (!hot.empty()) ssd.hot_rows = {hot};
  store::Stats s, d;
  const double ssd_rate = run(ssd, &s);
  const double iops = static_cast<double>(s.reads) / measured_seconds;
  const double dram_rate = o.dram_anchor ? run(store::OpenOptions{}, &d) : 0.0;
  const ojson j = {{"table", o.table}, {"workload", o.workload}, {"lookups", stream.size()}, {"policy", o.policy},
                   {"dram_budget", o.dram_budget}, {"rows_per_s", ssd_rate}, {"dram_rows_per_s", dram_rate},
                   {"hit_ratio", s.hit_ratio()}, {"static_hits", s.static_hits}, {"cache_hits", s.cache_hits},
                   {"inflight_hits", s.inflight_hits}, {"misses", s.misses}, {"reads", s.reads},
                   {"bytes_read", s.bytes_read}, {"iops", iops}, {"late_rows", s.late_rows}, {"late_seconds", s.late_seconds},
                   {"max_queue_depth", s.max_queue_depth}, {"direct_io", s.direct_io}};
  if (o.json) {
    print_json(j);
  } else {
    std::printf("%s, %s, %zu lookups: SSD tier (%s DRAM, %s) %.2f M rows/s, hit ratio %.4f, %llu reads (%.1f k IOPS), %llu late rows",
                o.table.c_str(), o.workload.c_str(), stream.size(), human_bytes(static_cast<double>(o.dram_budget)).c_str(),
                o.policy.c_str(), ssd_rate / 1e6, s.hit_ratio(), static_cast<unsigned long long>(s.reads), iops / 1e3,
                static_cast<unsigned long long>(s.late_rows));
    if (o.dram_anchor) std::printf("; whole table in DRAM %.2f M rows/s (%.1f %%)", dram_rate / 1e6, 100 * ssd_rate / dram_rate);
    std::printf("\n");
  }
  return 0;
}

}  // namespace

void register_store(CLI::App* bench, Action& action) {
  auto o = std::make_shared<StoreBenchOptions>();
  CLI::App* s = bench->add_subcommand("store", "Tiered store: DRAM gather, SSD IOPS, text workload (>= 8 GiB table)");
  s->add_option("--workdir", o->workdir, "Scratch directory for the tables (deleted after)")->capture_default_str();
  s->add_option("--corpus", o->corpus, "Corpus directory (hashmem data prepare)")->capture_default_str();
  s->add_option("--seconds", o->seconds, "Seconds per measured figure")->capture_default_str();
  s->add_option("--queue-depth", o->queue_depth, "The SSD tier's queue depth in the SSD figure (raw io_uring: QD64)")->capture_default_str();
  s->add_option("--rounds", o->rounds, "Alternated rounds of the SSD figure (raw io_uring, then ours)")->capture_default_str();
  s->add_option("--table-bytes", o->big_table_bytes, "Size of the text-workload table")->capture_default_str();
  s->add_option("--dim", o->big_dim, "f32 values per row of that table")->capture_default_str();
  s->add_option("--budget-fraction", o->budget_fraction, "DRAM budget as a share of the table")->capture_default_str();
  s->add_option("--policy", o->policy, "Dynamic cache policy: lru, s3fifo, tinylfu")->capture_default_str();
  s->add_option("--static-fraction", o->static_fraction, "Share of the budget for the static hot set")->capture_default_str();
  s->add_option("--step-tokens", o->step_tokens, "Tokens per prefetch/gather step")->capture_default_str();
  s->add_option("--max-tokens", o->max_train_tokens, "Cap on tokens per corpus split")->capture_default_str();
  s->add_option("--model-tokens-per-s", o->model_tokens_per_s, "Compute stand-in overlapping the prefetch")->capture_default_str();
  s->add_option("--python", o->python, "Python with matplotlib for the plots")->capture_default_str();
  s->add_option("--parts", o->parts, "Which figures: dram, ssd, text")->delimiter(',')->capture_default_str();
  s->add_flag("--keep", o->keep, "Keep the big table");
  s->add_flag("--json", o->json, "Print the figures as JSON");
  s->callback([o, &action] { action = [o] { return run_store_bench(*o); }; });

  auto g = std::make_shared<GatherBenchOptions>();
  CLI::App* ga = bench->add_subcommand("gather", "Stream a workload through a table on the SSD tier (and in DRAM), or "
                                                 "(--tier cluster) V4.1 rows from Redis Clusters vs redis-benchmark");
  ga->add_option("--tier", g->tier, "ssd (a --table file), or cluster (clusters, table and anchor made by the run)")
      ->check(CLI::IsMember({"ssd", "cluster"}))->capture_default_str();
  ga->add_option("--table", g->table, "Table file (--tier ssd)");
  ga->add_option("--dram-budget", g->dram_budget, "DRAM cache bytes")->capture_default_str();
  ga->add_option("--workload", g->workload, "zipf:ALPHA or text:FILE (tokenised with the corpus' SentencePiece model)")->capture_default_str();
  ga->add_option("--policy", g->policy, "lru, s3fifo, tinylfu")->capture_default_str();
  ga->add_option("--static-fraction", g->static_fraction, "Share of the budget for the stream's own hottest rows")->capture_default_str();
  ga->add_option("--lookups", g->lookups, "zipf: row lookups")->capture_default_str();
  ga->add_option("--step-rows", g->step_rows, "Rows per prefetch/gather step")->capture_default_str();
  ga->add_option("--corpus", g->corpus, "Corpus directory with spm.model (text workloads)")->capture_default_str();
  ga->add_flag("!--no-dram-anchor", g->dram_anchor, "Skip the whole-table-in-DRAM run");
  ga->add_flag("--json", g->json, "JSON output");
  auto c = std::make_shared<ClusterGatherOptions>();
  add_cluster_gather_options(ga, *c);
  ga->callback([g, c, &action] {
    action = [g, c] {
      if (g->tier == "cluster") {
        c->json = g->json;
        return run_cluster_gather_bench(*c);
      }
      if (g->table.empty()) throw Error("bench gather --tier ssd needs --table FILE");
      return run_gather_bench(*g);
    };
  });
}

}  // namespace hashmem::bench
