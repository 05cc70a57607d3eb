// The output of `hashmem bench gather --tier cluster` (cluster_report.hpp).
#include "cluster_report.hpp"

#include <cstdio>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "bench.hpp"
#include "hashmem/output_file.hpp"

namespace hashmem::bench {
namespace {

using ojson = nlohmann::ordered_json;

double ratio(double a, double b) { return b > 0 ? a / b : 0.0; }

ojson point_row(const GatherPoint& p) {
  ojson row = {{"masters", p.masters}, {"rtt_ms", p.rtt_ms},
               {"rows_per_s", p.ours.rows_per_s}, {"anchor_rows_per_s", p.anchor.rows_per_s},
               {"ratio", ratio(p.ours.rows_per_s, p.anchor.rows_per_s)},
               {"p50_ms", 1e3 * p.ours_latency.p50_seconds}, {"p99_ms", 1e3 * p.ours_latency.p99_seconds},
               {"anchor_p50_ms", 1e3 * p.anchor_latency.p50_seconds}, {"anchor_p99_ms", 1e3 * p.anchor_latency.p99_seconds},
               {"stream_p50_ms", 1e3 * p.ours.p50_seconds}, {"stream_p99_ms", 1e3 * p.ours.p99_seconds},
               {"cpu_us_per_row", 1e6 * p.ours.cpu_seconds_per_row}, {"anchor_cpu_us_per_row", 1e6 * p.anchor.cpu_seconds_per_row}};
  std::uint64_t verified = 0, mismatched = 0;
  for (const GatherDecodeFigure& d : p.decode) {
    const std::string s = d.schedule == Schedule::step_end ? "step_end" : "layered";
    row[s + "_tokens_per_s"] = d.tokens_per_s;
    row[s + "_dram_tokens_per_s"] = d.dram_tokens_per_s;
    row[s + "_ratio"] = ratio(d.tokens_per_s, d.dram_tokens_per_s);
    row[s + "_p99_ratio"] = ratio(d.p99_step_seconds, d.dram_p99_step_seconds);
    row[s + "_lookup_ms"] = 1e3 * d.lookup_seconds_per_step;
    row[s + "_gather_ms"] = 1e3 * d.gather_seconds_per_step;
    row[s + "_dram_stall_ms"] = 1e3 * d.dram_stall_seconds_per_step;
    verified += d.verified_rows;
    mismatched += d.mismatched_rows;
  }
  row["push_seconds"] = p.push_seconds;
  row["verified_rows"] = verified;
  row["mismatched_rows"] = mismatched;
  return row;
}

}  // namespace

void GatherInputs::close() {
  reference = nullptr;
  dram.reset();
  if (!path.empty()) {
    std::error_code ec;
    std::filesystem::remove(path, ec);
    path.clear();
  }
}

int write_gather_report(const GatherReport& report) {
  const ClusterGatherOptions& o = *report.options;
  ojson rows = ojson::array();
  std::uint64_t mismatched = 0;
  for (const GatherPoint& p : report.points) {
    rows.push_back(point_row(p));
    mismatched += rows.back()["mismatched_rows"].get<std::uint64_t>();
  }
  const ojson all = {
      {"table", {{"rows", report.table.total_rows()}, {"row_bytes", report.table.row_bytes},
                 {"bytes", report.table.data_bytes()}, {"scale", o.scale}, {"create_seconds", report.create_seconds}}},
      {"decode", {{"batch", o.batch}, {"steps", o.steps}, {"step_ms", o.step_ms}, {"model_layers", o.model_layers}}},
      {"cpus", {{"clients", o.client_cpus}, {"cluster", o.cluster_cpus}}},
      {"stream", {{"ahead", o.ahead}, {"queue_depth", o.queue_depth}, {"io_threads", o.io_threads}, {"anchor_clients", o.clients},
                  {"seconds", o.seconds}, {"rounds", o.rounds}}},
      {"delay", "userspace proxy (the kernel has no netem); rtt_ms is the added round trip"},
      {"anchor_fill_seconds", report.fill_seconds},
      {"points", rows}};
  write_file_atomically(o.workdir + "/cluster-gather.csv", csv_text(rows));
  write_file_atomically(o.workdir + "/cluster-gather.json", all.dump(2) + "\n");
  if (o.json) {
    print_json(all);
  } else {
    std::printf("%s", csv_text(rows).c_str());
  }
  if (mismatched) std::fprintf(stderr, "bench gather: %llu rows from the cluster differed from the DRAM table\n",
                               static_cast<unsigned long long>(mismatched));
  return mismatched ? 1 : 0;
}

}  // namespace hashmem::bench
