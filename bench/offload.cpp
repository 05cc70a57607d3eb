// hashmem bench offload (offload.hpp): the table, the profile, the requests, and the runs on each tier.
#include "offload.hpp"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <random>
#include <unistd.h>

#include "bench.hpp"
#include "cache_trace.hpp"
#include "common/huge_pages.hpp"
#include "hashmem/bpe.hpp"
#include "hashmem/clock.hpp"
#include "hashmem/engram_memory.hpp"
#include "hashmem/error.hpp"
#include "hashmem/mapped_file.hpp"
#include "hashmem/progress.hpp"
#include "offload_loop.hpp"
#include "offload_report.hpp"

namespace hashmem::bench {
namespace {

namespace fs = std::filesystem;

// The tables this run writes, removed on exit, on an error, and on SIGINT/SIGTERM/SIGHUP (unlink is
// async-signal-safe; the paths are fixed before the handler is installed).
char g_doomed[2][4096];
void remove_and_reraise(int sig) {
  for (auto& path : g_doomed) {
    if (path[0]) ::unlink(path);
  }
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}
struct TableFiles {
  std::vector<std::string> paths;
  bool keep = false;
  TableFiles(std::vector<std::string> p, bool k) : paths(std::move(p)), keep(k) {
    if (keep) return;
    for (std::size_t i = 0; i < paths.size() && i < 2; ++i) {
      std::snprintf(g_doomed[i], sizeof g_doomed[i], "%s", paths[i].c_str());
    }
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) std::signal(sig, remove_and_reraise);
  }
  ~TableFiles() {
    if (keep) return;
    std::error_code ec;
    for (const auto& p : paths) fs::remove(p, ec);
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) std::signal(sig, SIG_DFL);
    std::memset(g_doomed, 0, sizeof g_doomed);
  }
  TableFiles(const TableFiles&) = delete;
  TableFiles& operator=(const TableFiles&) = delete;
};

void progress_line(const char* fmt, const std::string& what) {
  if (::isatty(2)) std::fprintf(stderr, fmt, what.c_str());
}

// The training text's rows ranked hottest first (table-global ids: layer 14's rows after layer 1's), ties by id.
std::vector<std::int64_t> ranked_profile(const TraceSource& source, const OffloadOptions& o, ProfileFigures& fig) {
  const double start = now_seconds();
  RowTrace trace = build_trace(source, {o.train}, o.max_train_tokens);
  const std::int64_t rows = total_rows(source.layout);
  std::vector<std::uint32_t> counts(static_cast<std::size_t>(rows), 0);
  for (std::int64_t r : trace.rows) {
    std::uint32_t& c = counts[static_cast<std::size_t>(r)];
    if (c != UINT32_MAX) ++c;
  }
  fig.tokens = trace.tokens;
  fig.accesses = static_cast<std::int64_t>(trace.rows.size());
  trace = RowTrace{};
  std::vector<std::uint64_t> keys;  // (UINT32_MAX − count) << 32 | row: ascending = hottest first, ties by row
  for (std::size_t r = 0; r < counts.size(); ++r) {
    if (counts[r]) keys.push_back((std::uint64_t{UINT32_MAX - counts[r]} << 32) | r);
  }
  counts = {};
  std::sort(keys.begin(), keys.end());
  std::vector<std::int64_t> ranked(keys.size());
  for (std::size_t i = 0; i < keys.size(); ++i) ranked[i] = static_cast<std::int64_t>(keys[i] & 0xffffffffu);
  fig.distinct_rows = static_cast<std::int64_t>(ranked.size());
  fig.seconds = now_seconds() - start;
  return ranked;
}

// The tensor of a table-global row id, and the id within it.
std::pair<std::size_t, std::int64_t> tensor_row(const engram::Layout& layout, std::int64_t row) {
  std::size_t t = 0;
  while (row >= layout.layers[t].rows) row -= layout.layers[t++].rows;
  return {t, row};
}

// `n` ranked rows as OpenOptions::hot_rows (per tensor, hottest first). hot_set "global": the n hottest of the
// table; "lead": the layers in model order (the least lead first) each take their hottest rows until n are taken —
// layer 1, whose rows are wanted 0.47 ms after the token is known, before layer 14, which has 6.5 ms.
std::vector<std::vector<std::int64_t>> hot_rows(const engram::Layout& layout, const std::vector<std::int64_t>& ranked,
                                                std::int64_t n, const std::string& hot_set) {
  std::vector<std::vector<std::int64_t>> hot(layout.layers.size());
  if (hot_set == "global") {
    for (std::size_t i = 0; i < ranked.size() && static_cast<std::int64_t>(i) < n; ++i) {
      const auto [t, row] = tensor_row(layout, ranked[i]);
      hot[t].push_back(row);
    }
    return hot;
  }
  for (std::size_t layer = 0; layer < layout.layers.size() && n > 0; ++layer) {  // layers are in model order
    for (std::size_t i = 0; i < ranked.size() && n > 0; ++i) {
      const auto [t, row] = tensor_row(layout, ranked[i]);
      if (t != layer) continue;
      hot[t].push_back(row);
      --n;
    }
  }
  return hot;
}

// Writes the table at `path`, or with --reuse keeps one a --keep run left there if it has this layout.
store::TableInfo create(const OffloadOptions& o, const engram::Layout& layout, const std::string& path, double* seconds) {
  if (o.reuse && fs::exists(path)) {
    store::TableInfo info = store::read_info(path);
    const engram::Layout there = engram::make_layout(info.config);
    bool same = there.layers.size() == layout.layers.size() && info.dtype == store::DType::fp8 &&
                info.dim == layout.config.head_dim;
    for (std::size_t t = 0; same && t < there.layers.size(); ++t) same = there.layers[t].primes == layout.layers[t].primes;
    if (same) {
      progress_line("bench offload: reusing %s\n", path);
      return info;
    }
  }
  const engram::Config& config = layout.config;
  store::CreateOptions c;
  c.config = config;
  c.dim = config.head_dim;
  c.dtype = store::DType::fp8;
  c.init = o.init == "zeros" ? store::Init::zeros : store::Init::normal;
  c.seed = 1;
  const double start = now_seconds();
  progress_line("bench offload: writing %s...\n", path);
  store::TableInfo info = store::create_table(c, path);
  *seconds = now_seconds() - start;
  return info;
}

// Nanoseconds per random 264 B row copied from a DRAM buffer of `bytes` (2 MiB pages, software prefetch, batches
// of 192 rows: one decode step of B = 8 on one layer): does the anchor's smaller table flatter DRAM?
double dram_ns_per_row(std::uint64_t bytes, std::size_t row_bytes) {
  HugeVector<std::uint8_t> table(bytes);
  for (std::size_t i = 0; i < table.size(); i += 4096) table[i] = static_cast<std::uint8_t>(i >> 12);
  const std::uint64_t rows = bytes / row_bytes;
  std::mt19937_64 rng(5);
  std::vector<std::uint64_t> ids(1 << 20);
  for (auto& id : ids) id = rng() % rows;
  std::vector<std::uint8_t> out(192 * row_bytes);
  double best = 1e300;
  for (int round = 0; round < 3; ++round) {
    const double t0 = now_seconds();
    for (std::size_t at = 0; at + 192 <= ids.size(); at += 192) {
      for (std::size_t i = 0; i < 192; ++i) {
        if (i + 16 < 192) {
          const std::uint8_t* p = table.data() + ids[at + i + 16] * row_bytes;
          for (std::size_t c = 0; c < row_bytes; c += 64) __builtin_prefetch(p + c);
        }
        std::memcpy(out.data() + i * row_bytes, table.data() + ids[at + i] * row_bytes, row_bytes);
      }
    }
    best = std::min(best, (now_seconds() - t0) / static_cast<double>(ids.size() / 192 * 192));
  }
  return best * 1e9;
}

// Every decode configuration, in a fixed order, each on its own requests (the same ones on every tier).
struct Config {
  Schedule schedule;
  double step_ms;
  std::int64_t batch;
};
std::vector<Config> decode_configs(const OffloadOptions& o) {
  std::vector<Config> out;
  for (const std::string& s : o.schedules) {
    if (s != "layered" && s != "step-end") throw Error("--schedules: unknown schedule '" + s + "' (layered, step-end)");
    for (double ms : o.step_ms) {
      for (std::int64_t b : o.batches) out.push_back({s == "layered" ? Schedule::layered : Schedule::step_end, ms, b});
    }
  }
  return out;
}

// Prefill and every decode configuration on `memory`'s table; the requests are replayed from the start.
TierRun run_tier(engram::Memory& memory, RequestSource& source, const OffloadOptions& o, store::Table* reference,
                 const std::string& label) {
  TierRun run;
  source.rewind();
  const std::vector<std::int64_t> prompt = source.take(o.prefill_tokens);
  run.prefill = prefill(memory, prompt, reference);
  const std::vector<Config> configs = decode_configs(o);
  Progress progress("bench offload: " + label, configs.size());
  for (std::size_t i = 0; i < configs.size(); ++i) {
    const Config& c = configs[i];
    std::vector<std::vector<std::int64_t>> requests;
    for (std::int64_t b = 0; b < c.batch; ++b) requests.push_back(source.take(o.steps));
    DecodeRun d;
    d.batch = c.batch;
    d.steps = o.steps;
    d.model_step_seconds = c.step_ms / 1e3;
    d.schedule = c.schedule;
    d.model_layers = o.model_layers;
    run.decode.push_back(decode_loop(memory, requests, d, reference));
    run.keys.push_back({schedule_name(c.schedule), c.step_ms, c.batch});
    progress.update(i + 1);
  }
  progress.finish();
  return run;
}

// The SSD tier at one DRAM budget: opened with the profile's hot set, then the prefill and every decode run.
TierRun run_budget(const OffloadOptions& o, const engram::Layout& layout, const engram::Compression& compression,
                   const std::string& path, const std::vector<std::int64_t>& ranked, double budget,
                   RequestSource& source, store::Table* reference) {
  const store::TableInfo info = store::read_info(path);
  engram::Memory memory(layout, info.dim, compression);
  store::OpenOptions ssd;
  ssd.tier = store::Tier::ssd;
  ssd.dram_budget = static_cast<std::uint64_t>(budget * static_cast<double>(info.data_bytes()));
  ssd.policy = store::parse_policy(o.policy);
  ssd.static_fraction = o.static_fraction;
  ssd.queue_depth = o.queue_depth;
  ssd.staging_bytes = o.staging_bytes;
  const auto slots = static_cast<std::int64_t>(ssd.dram_budget / info.row_bytes);
  ssd.hot_rows = hot_rows(layout, ranked, static_cast<std::int64_t>(o.static_fraction * static_cast<double>(slots)), o.hot_set);
  char label[64];
  std::snprintf(label, sizeof label, "SSD tier, budget %.0f %%", 100 * budget);
  progress_line("bench offload: opening the %s...\n", label);
  const double t0 = now_seconds();
  memory.open(path, ssd);
  const double open_seconds = now_seconds() - t0;
  TierRun run = run_tier(memory, source, o, reference, label);
  run.budget = budget;
  run.open_seconds = open_seconds;
  run.direct_io = memory.table().stats().direct_io;
  return run;
}

void check_options(const OffloadOptions& o) {
  if (o.budgets.empty() || o.batches.empty() || o.step_ms.empty() || o.schedules.empty()) {
    throw Error("--budgets, --batches, --step-ms and --schedules each need at least one value");
  }
  for (double b : o.budgets) {
    if (!(b > 0 && b <= 1)) throw Error("--budgets: each budget is a fraction of the table in (0, 1], got " + std::to_string(b));
  }
  for (std::int64_t b : o.batches) {
    if (b < 1 || b > 4096) throw Error("--batches: each batch must be in [1, 4096], got " + std::to_string(b));
  }
  for (double s : o.step_ms) {
    if (!(s >= 0 && s <= 10000)) throw Error("--step-ms: each model step must be in [0, 10000] ms, got " + std::to_string(s));
  }
  if (o.steps < 1) throw Error("--steps must be >= 1");
  if (o.prefill_tokens < 1) throw Error("--prefill-tokens must be >= 1");
  if (o.model_layers < 1) throw Error("--model-layers must be >= 1");
  if (o.init != "normal" && o.init != "zeros") throw Error("--init must be normal or zeros, got '" + o.init + "'");
  if (!(o.static_fraction >= 0 && o.static_fraction <= 1)) throw Error("--static-fraction must be in [0, 1]");
  if (o.queue_depth < 1 || o.queue_depth > 4096) throw Error("--queue-depth must be in [1, 4096]");
  store::parse_policy(o.policy);  // before the table is written, not after
  if (o.hot_set != "global" && o.hot_set != "lead") throw Error("--hot-set must be global or lead, got '" + o.hot_set + "'");
  for (std::int64_t layer : engram::preset(o.preset).layers) {
    if (layer >= o.model_layers) throw Error("--model-layers " + std::to_string(o.model_layers) + " leaves out Engram layer " + std::to_string(layer));
  }
  for (const std::string* f : {&o.tokenizer, &o.train, &o.valid}) {
    if (!fs::exists(*f)) throw Error("'" + *f + "' does not exist (run ./run build, which fetches the data)");
  }
}

}  // namespace

int run_offload_bench(OffloadOptions o) {
  if (o.quick) {  // a table of ~50 MB, correctness only: every gathered row checked against the DRAM tier
    o.scale = o.anchor_scale = 4096;
    o.budgets = {0.05, 0.5};
    o.batches = {1, 4};
    o.step_ms = {1};
    o.steps = 12;
    o.prefill_tokens = 256;
    o.max_train_tokens = 20000;
    o.verify = true;
  }
  check_options(o);
  engram::Compression compression = engram::compress_tokenizer(o.tokenizer);
  const engram::Config full = engram::preset(o.preset);
  if (compression.compressed_vocab > full.compressed_vocab) {
    throw Error("the tokenizer compresses to " + std::to_string(compression.compressed_vocab) + " ids, more than preset " +
                o.preset + "'s compressed_vocab " + std::to_string(full.compressed_vocab));
  }
  if (full.head_dim % 32 != 0 || full.head_dim < 32) throw Error("preset " + o.preset + " has no fp8 row width (head_dim)");
  // The preset's hashing (its multipliers depend on compressed_vocab); the tokenizer's ids are a subset.
  compression.compressed_vocab = full.compressed_vocab;
  const engram::Layout layout = engram::make_layout(engram::scaled(full, o.scale));
  const engram::Layout anchor_layout = engram::make_layout(engram::scaled(full, o.anchor_scale));
  const bool same_table = o.anchor_scale == o.scale;
  fs::create_directories(o.workdir);
  const std::string big = o.workdir + "/table.safetensors", anchor = o.workdir + "/anchor.safetensors";
  const TableFiles files(same_table ? std::vector<std::string>{big} : std::vector<std::string>{big, anchor}, o.keep);

  Report report;
  report.options = &o;
  progress_line("bench offload: %s\n", "profiling the training text and tokenising the held-out text");
  std::vector<std::int64_t> ranked = ranked_profile({o.tokenizer, layout, compression}, o, report.profile);
  {  // only the largest budget's static set is ever needed (of each layer, when one layer may take it all)
    const double most = *std::max_element(o.budgets.begin(), o.budgets.end());
    const auto cap = static_cast<std::int64_t>(static_cast<double>(total_rows(layout)) * most * o.static_fraction) + 1;
    std::vector<std::int64_t> kept(layout.layers.size(), 0);
    std::size_t out = 0;
    for (std::size_t i = 0; i < ranked.size(); ++i) {
      std::int64_t& k = o.hot_set == "global" ? kept[0] : kept[tensor_row(layout, ranked[i]).first];
      if (k < cap) ranked[out++] = ranked[i], ++k;
    }
    ranked.resize(out);
    ranked.shrink_to_fit();
  }
  RequestSource source(held_out_documents(o.tokenizer, o.valid));
  report.held_out_documents = static_cast<std::int64_t>(source.documents());

  const store::TableInfo info = create(o, layout, big, &report.create_seconds);
  report.table = info;
  store::TableInfo anchor_info = info;
  if (!same_table) anchor_info = create(o, anchor_layout, anchor, &report.anchor_create_seconds);
  report.anchor = anchor_info;
  for (std::uint64_t bytes : {std::uint64_t{512} << 20, anchor_info.data_bytes(), std::uint64_t{6} << 30}) {
    if (o.quick) bytes = std::min<std::uint64_t>(bytes, 64 << 20);
    report.dram_row_ns.push_back({bytes, dram_ns_per_row(bytes, info.row_bytes)});
  }

  // What a layer's misses cost at the device with nothing but this thread on the path: ~12 reads per token.
  for (std::int64_t b : o.batches) {
    const store::TensorInfo& t = info.tensors.front();
    report.raw_reads.push_back(raw_batch_reads(big, t.offset, t.offset + t.bytes, static_cast<int>(12 * b), o.quick ? 5 : 200));
  }
  {  // The anchor: the whole (smaller) table in DRAM.
    engram::Memory memory(same_table ? layout : anchor_layout, info.dim, compression);
    memory.open(same_table ? big : anchor, store::OpenOptions{});
    report.dram = run_tier(memory, source, o, nullptr, "DRAM anchor");
  }
  std::unique_ptr<store::Table> reference;
  if (o.verify) reference = store::Table::open(big, store::OpenOptions{});
  for (double budget : o.budgets) {
    report.ssd.push_back(run_budget(o, layout, compression, big, ranked, budget, source, reference.get()));
  }
  reference.reset();
  return write_report(report);
}

void register_offload(CLI::App* bench, Action& action) {
  auto o = std::make_shared<OffloadOptions>();
  CLI::App* c = bench->add_subcommand("offload", "Engram rows of DeepSeek-V4.1's shape served from SSD behind a DRAM cache: "
                                                 "decode and prefill vs the same loops with the table in DRAM");
  c->add_option("--workdir", o->workdir, "Directory for the tables (deleted after) and the CSV/JSON/PNG")->capture_default_str();
  c->add_option("--tokenizer", o->tokenizer, "tokenizer.json (DeepSeek-V3's)")->capture_default_str();
  c->add_option("--train", o->train, "Text for the access profile (documents separated by empty lines)")->capture_default_str();
  c->add_option("--valid", o->valid, "Held-out text: the prompt and the decode requests")->capture_default_str();
  c->add_option("--preset", o->preset, "Engram preset")->capture_default_str();
  c->add_option("--scale", o->scale, "Tables this many times smaller than the preset's (>= 1)")->capture_default_str();
  c->add_option("--anchor-scale", o->anchor_scale, "The DRAM anchor's scale (its table must fit in memory)")->capture_default_str();
  c->add_option("--init", o->init, "Row values: normal or zeros")->capture_default_str();
  c->add_option("--budgets", o->budgets, "DRAM budgets, fractions of the table")->delimiter(',')->capture_default_str();
  c->add_option("--batches", o->batches, "Decode batch sizes B")->delimiter(',')->capture_default_str();
  c->add_option("--step-ms", o->step_ms, "Model step times S in ms")->delimiter(',')->capture_default_str();
  c->add_option("--schedules", o->schedules, "layered (gather at each Engram layer's position), step-end")
      ->delimiter(',')->capture_default_str();
  c->add_option("--steps", o->steps, "Decode steps per (schedule, S, B)")->capture_default_str();
  c->add_option("--model-layers", o->model_layers, "Layers of the model (V4-Flash: 43); layer l is reached at l/N of S")
      ->capture_default_str();
  c->add_option("--prefill-tokens", o->prefill_tokens, "Prompt length of the prefill")->capture_default_str();
  c->add_option("--max-train-tokens", o->max_train_tokens, "Cap on the profile's tokens (0 = all)")->capture_default_str();
  c->add_option("--policy", o->policy, "Dynamic cache policy: lru, s3fifo, tinylfu")->capture_default_str();
  c->add_option("--static-fraction", o->static_fraction, "Share of the budget for the profile's hot set")->capture_default_str();
  c->add_option("--hot-set", o->hot_set, "global (the table's hottest rows) or lead (layer 1's hottest first: the least lead)")
      ->capture_default_str();
  c->add_option("--queue-depth", o->queue_depth, "io_uring reads in flight")->capture_default_str();
  c->add_option("--staging-bytes", o->staging_bytes, "Read buffers in flight, bytes")->capture_default_str();
  c->add_flag("--quick", o->quick, "A ~50 MB table, 12 steps, every row checked against the DRAM tier (for tests)");
  c->add_flag("--verify", o->verify, "Check every gathered row against the table opened in DRAM (needs the RAM)");
  c->add_flag("--keep", o->keep, "Keep the tables");
  c->add_flag("--reuse", o->reuse, "Use the tables a --keep run left in the workdir if they have this layout");
  c->add_flag("--json", o->json, "Print the figures as JSON instead of CSV");
  c->callback([o, &action] { action = [o] { return run_offload_bench(*o); }; });
}

}  // namespace hashmem::bench
