#include "offload_report.hpp"

#include <cstdio>
#include <sstream>
#include <sys/resource.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "bench.hpp"
#include "hashmem/error.hpp"
#include "hashmem/output_file.hpp"
#include "hashmem/process.hpp"

namespace hashmem::bench {
namespace {

using ojson = nlohmann::ordered_json;

double ratio(double a, double b) { return b > 0 ? a / b : 0.0; }

ojson decode_row(const TierRun& ssd, const TierRun& dram, std::size_t i) {
  const DecodeResult &s = ssd.decode[i], &d = dram.decode[i];
  const DecodeKey& k = ssd.keys[i];
  const double steps = static_cast<double>(s.step_seconds.size());
  return {{"schedule", k.schedule}, {"budget", ssd.budget}, {"batch", k.batch}, {"step_ms", k.step_ms},
          {"tokens_per_s", s.tokens_per_s()}, {"dram_tokens_per_s", d.tokens_per_s()},
          {"ratio", ratio(s.tokens_per_s(), d.tokens_per_s())},
          {"p50_ms", 1e3 * s.percentile_step(0.5)}, {"p99_ms", 1e3 * s.percentile_step(0.99)},
          {"dram_p50_ms", 1e3 * d.percentile_step(0.5)}, {"dram_p99_ms", 1e3 * d.percentile_step(0.99)},
          {"p99_ratio", ratio(s.percentile_step(0.99), d.percentile_step(0.99))},
          {"stall_ms_per_step", 1e3 * s.stall_seconds / steps}, {"dram_stall_ms_per_step", 1e3 * d.stall_seconds / steps},
          {"lookup_ms_per_step", 1e3 * s.lookup_seconds / steps},
          {"gather_first_ms_per_step", 1e3 * s.gather_seconds.front() / steps},
          {"gather_last_ms_per_step", 1e3 * s.gather_seconds.back() / steps},
          {"hit_ratio", s.stats.hit_ratio()},
          {"misses_per_token", ratio(static_cast<double>(s.stats.misses), static_cast<double>(s.tokens))},
          {"reads", s.stats.reads}, {"iops", ratio(static_cast<double>(s.stats.reads), s.seconds)},
          {"late_rows", s.stats.late_rows}, {"late_ms_per_step", 1e3 * s.stats.late_seconds / steps},
          {"steps", s.step_seconds.size()}};
}

ojson prefill_row(const TierRun& ssd, const TierRun& dram) {
  const PrefillResult &s = ssd.prefill, &d = dram.prefill;
  return {{"budget", ssd.budget}, {"tokens", s.tokens}, {"seconds", s.seconds}, {"dram_seconds", d.seconds},
          {"time_ratio", ratio(s.seconds, d.seconds)}, {"reads", s.stats.reads},
          {"misses_per_token", ratio(static_cast<double>(s.stats.misses), static_cast<double>(s.tokens))},
          {"hit_ratio", s.stats.hit_ratio()}, {"late_rows", s.stats.late_rows},
          {"iops", ratio(static_cast<double>(s.stats.reads), s.seconds)}};
}

ojson table_json(const store::TableInfo& t, double scale, double seconds) {
  return {{"path", t.path}, {"scale", scale}, {"rows", t.total_rows()}, {"bytes", t.data_bytes()},
          {"row_bytes", t.row_bytes}, {"dtype", store::dtype_name(t.dtype)}, {"dim", t.dim},
          {"create_seconds", seconds}, {"create_bytes_per_second", ratio(static_cast<double>(t.file_bytes), seconds)}};
}

double peak_rss_gib() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / (1 << 20);  // ru_maxrss is in KiB
}

}  // namespace

int write_report(const Report& r) {
  const OffloadOptions& o = *r.options;
  ojson decode = ojson::array(), prefill = ojson::array(), tiers = ojson::array();
  std::uint64_t verified = 0, mismatched = 0;
  for (const TierRun& ssd : r.ssd) {
    if (ssd.decode.size() != r.dram.decode.size()) throw Error("bench offload: the anchor ran other configurations");
    for (std::size_t i = 0; i < ssd.decode.size(); ++i) {
      decode.push_back(decode_row(ssd, r.dram, i));
      verified += ssd.decode[i].verified_rows;
      mismatched += ssd.decode[i].mismatched_rows;
    }
    prefill.push_back(prefill_row(ssd, r.dram));
    verified += ssd.prefill.verified_rows;
    mismatched += ssd.prefill.mismatched_rows;
    tiers.push_back({{"budget", ssd.budget}, {"open_seconds", ssd.open_seconds}, {"direct_io", ssd.direct_io}});
  }
  ojson dram_rows = ojson::array();
  for (const auto& [bytes, ns] : r.dram_row_ns) dram_rows.push_back({{"buffer_bytes", bytes}, {"ns_per_row", ns}});
  ojson raw = ojson::array();
  for (const BatchReadTimes& b : r.raw_reads) {
    raw.push_back({{"reads", b.reads}, {"p50_ms", 1e3 * b.p50_seconds}, {"p99_ms", 1e3 * b.p99_seconds}});
  }
  const ojson report = {
      {"table", table_json(r.table, o.scale, r.create_seconds)},
      {"anchor", table_json(r.anchor, o.anchor_scale, r.anchor_create_seconds)},
      {"init", o.init},
      {"store", {{"policy", o.policy}, {"static_fraction", o.static_fraction}, {"hot_set", o.hot_set}, {"queue_depth", o.queue_depth},
                 {"staging_bytes", o.staging_bytes}}},
      {"model", {{"layers", o.model_layers}, {"engram_layers", r.table.config.layers}, {"work", "sleep"},
                 {"prefill_tokens", o.prefill_tokens}, {"steps", o.steps}}},
      {"profile", {{"file", o.train}, {"tokens", r.profile.tokens}, {"accesses", r.profile.accesses},
                   {"distinct_rows", r.profile.distinct_rows}, {"seconds", r.profile.seconds}}},
      {"held_out", {{"file", o.valid}, {"documents", r.held_out_documents}}},
      {"dram_row_cost", dram_rows},
      {"raw_batch_reads", raw},
      {"tiers", tiers},
      {"prefill", prefill},
      {"decode", decode},
      {"verify", {{"rows", verified}, {"mismatched", mismatched}}},
      {"peak_rss_gib", peak_rss_gib()}};
  write_file_atomically(o.workdir + "/offload.json", report.dump(2) + "\n");
  write_file_atomically(o.workdir + "/offload-decode.csv", csv_text(decode));
  write_file_atomically(o.workdir + "/offload-prefill.csv", csv_text(prefill));
  const std::string script = std::string(HASHMEM_SOURCE_DIR) + "/bench/plot_offload.py";
  if (::access(o.python.c_str(), X_OK) == 0) {
    const ChildResult plot = run_child({o.python, script, o.workdir + "/offload.json", o.workdir + "/offload.png"});
    if (plot.exit_code != 0) std::fprintf(stderr, "bench offload: plotting failed (exit %d); the CSV files are there\n", plot.exit_code);
  } else {
    std::fprintf(stderr, "bench offload: no %s, no plot (the CSV and JSON files are there)\n", o.python.c_str());
  }
  if (o.json) {
    print_json(report);
  } else {
    std::printf("%s\n%s", csv_text(decode).c_str(), csv_text(prefill).c_str());
  }
  if (mismatched) {
    std::fprintf(stderr, "bench offload: %llu of %llu gathered rows differ from the DRAM tier's\n",
                 static_cast<unsigned long long>(mismatched), static_cast<unsigned long long>(verified));
    return 1;
  }
  return 0;
}

}  // namespace hashmem::bench
