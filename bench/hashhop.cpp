// hashmem bench hashhop: HashHop generation vs the Python originals (outputs compared byte for byte), the
// 300M-character problem streamed to disk, and the oracle over it.
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <sstream>

#include "bench.hpp"
#include "hashmem/error.hpp"
#include "hashmem/hashhop.hpp"
#include "hashmem/mapped_file.hpp"
#include "hashmem/process.hpp"

namespace hashmem::bench {
namespace {

namespace fs = std::filesystem;

struct HashHopBenchOptions {
  std::int64_t chars = 30'000'000;
  std::int64_t big_chars = 300'000'000;
  std::int64_t hops = 2, hash_length = 16, queries = 5;
  std::uint64_t seed = 0;
  std::string workdir = "build/bench-hashhop";
  std::string python = HASHMEM_SYSTEM_PYTHON;
  std::string shared = HASHMEM_SHARED_DIR;
  bool skip_python = false, keep = false, json = false;
};

bool same_file_contents(const std::string& a, const std::string& b) {
  MappedFile fa(a), fb(b);
  return fa.view() == fb.view();
}

ChildResult run_checked(const std::vector<std::string>& argv, const std::string& what) {
  ChildResult r = run_child(argv);
  if (r.exit_code != 0) throw Error(what + " failed with exit code " + std::to_string(r.exit_code));
  return r;
}

int run_hashhop_bench(const HashHopBenchOptions& o) {
  fs::create_directories(o.workdir);
  const std::string self = self_executable();
  const std::string script = std::string(HASHMEM_SOURCE_DIR) + "/bench/hashhop_python.py";
  auto generate_args = [&](std::int64_t chars, const std::string& out) {
    return std::vector<std::string>{self, "hashhop", "generate", "--seed", std::to_string(o.seed), "--chars",
                                    std::to_string(chars), "--hops", std::to_string(o.hops), "--hash-length",
                                    std::to_string(o.hash_length), "--queries", std::to_string(o.queries),
                                    "--out", out};
  };
  nlohmann::ordered_json report;
  report["params"] = {{"seed", o.seed}, {"hops", o.hops}, {"hash_length", o.hash_length}, {"queries", o.queries}};

  // 1. ours vs the Python anchors at `chars`, outputs compared byte for byte.
  const std::string ours_path = o.workdir + "/ours.jsonl";
  double ours_best = 1e300;
  ChildResult ours;
  for (int rep = 0; rep < 3; ++rep) {
    ours = run_checked(generate_args(o.chars, ours_path), "hashmem hashhop generate");
    ours_best = std::min(ours_best, ours.seconds);
  }
  nlohmann::ordered_json small = {{"chars", o.chars},
                                  {"hashmem_seconds", ours_best},
                                  {"hashmem_max_rss_mib", ours.max_rss_mib},
                                  {"output_bytes", fs::file_size(ours_path)}};
  if (!o.skip_python) {
    const std::string params_path = o.workdir + "/params.jsonl";
    {
      std::ofstream params(params_path);
      params << nlohmann::json{{"seed", o.seed},   {"chars", o.chars},     {"hops", o.hops},
                               {"hash_length", o.hash_length}, {"queries", o.queries}, {"cot", false}}
                    .dump()
             << "\n";
    }
    const bool have_shared = fs::exists(o.shared + "/reference/hashhop_rng_model.py");
    for (const char* impl : {"numpy", "model"}) {
      const std::string name = std::string("python_") + impl;
      if (std::string(impl) == "model" && !have_shared) {
        small[name] = {{"skipped", "no " + o.shared + "/reference/hashhop_rng_model.py"}};
        continue;
      }
      const std::string out = o.workdir + "/" + impl + ".jsonl";
      std::fprintf(stderr, "bench hashhop: running the Python %s anchor at %lld chars...\n", impl,
                   static_cast<long long>(o.chars));
      ChildResult r = run_child({o.python, script, "--impl", impl, "--shared", o.shared, "--params", params_path,
                                 "--out", out});
      if (r.exit_code != 0) {
        small[name] = {{"skipped", "exit code " + std::to_string(r.exit_code) + " (numpy missing?)"}};
        continue;
      }
      small[name] = {{"seconds", r.seconds},
                     {"max_rss_mib", r.max_rss_mib},
                     {"speedup", r.seconds / ours_best},
                     {"identical_output", same_file_contents(out, ours_path)}};
      if (!o.keep) fs::remove(out);
    }
    if (!o.keep) fs::remove(params_path);
  }
  if (!o.keep) fs::remove(ours_path);
  report["small"] = small;

  // 2. The "100M-token" problem: 300 M characters, streamed to disk; then the oracle over it.
  if (o.big_chars > 0) {
    const std::string big_path = o.workdir + "/big.jsonl";
    const std::string predictions = o.workdir + "/big-predictions.jsonl";
    std::fprintf(stderr, "bench hashhop: generating %lld chars...\n", static_cast<long long>(o.big_chars));
    ChildResult gen = run_checked(generate_args(o.big_chars, big_path), "hashmem hashhop generate (big)");
    const double bytes = static_cast<double>(fs::file_size(big_path));
    std::fprintf(stderr, "bench hashhop: solving every chain...\n");
    ChildResult solve = run_checked({self, "hashhop", "solve", "--dataset", big_path, "--all-targets", "--out",
                                     predictions, "--json"},
                                    "hashmem hashhop solve");
    ChildResult score = run_checked({self, "hashhop", "score", "--dataset", big_path, "--predictions", predictions,
                                     "--all-targets", "--json"},
                                    "hashmem hashhop score");
    auto solve_stats = nlohmann::json::parse(solve.stdout_text);
    auto score_stats = nlohmann::json::parse(score.stdout_text);
    report["big"] = {{"chars", o.big_chars},
                     {"generate_seconds", gen.seconds},
                     {"generate_max_rss_mib", gen.max_rss_mib},
                     {"output_mib", bytes / (1024.0 * 1024.0)},
                     {"rss_over_output", gen.max_rss_mib * 1024.0 * 1024.0 / bytes},
                     {"solve_seconds", solve.seconds},
                     {"solve_max_rss_mib", solve.max_rss_mib},
                     {"solve_build_seconds", solve_stats["build_seconds"]},
                     {"solve_lines_per_second", solve_stats["lines_per_second"]},
                     {"solve_queries", solve_stats["queries"]},
                     {"solve_queries_per_second", solve_stats["queries_per_second"]},
                     {"oracle_accuracy", score_stats["accuracy"]}};
    if (!o.keep) {
      fs::remove(big_path);
      fs::remove(predictions);
    }
  }
  if (!o.keep) {
    std::error_code ec;
    fs::remove(o.workdir, ec);  // only if empty
  }

  if (o.json) {
    print_json(report);
    return 0;
  }
  std::printf("HashHop generation, hops=%lld, hash length=%lld, queries=%lld, seed=%llu\n",
              static_cast<long long>(o.hops), static_cast<long long>(o.hash_length),
              static_cast<long long>(o.queries), static_cast<unsigned long long>(o.seed));
  std::printf("  %lld chars: hashmem %.3f s (best of 3, %.0f MiB peak RSS)\n", static_cast<long long>(o.chars),
              ours_best, ours.max_rss_mib);
  for (const char* impl : {"python_numpy", "python_model"}) {
    if (!small.contains(impl)) continue;
    const auto& r = small[impl];
    if (r.contains("skipped")) {
      std::printf("  %-13s skipped: %s\n", impl, r["skipped"].get<std::string>().c_str());
    } else {
      std::printf("  %-13s %.2f s (%.0f MiB)  ->  hashmem is %.1fx faster; outputs %s\n", impl,
                  r["seconds"].get<double>(), r["max_rss_mib"].get<double>(), r["speedup"].get<double>(),
                  r["identical_output"].get<bool>() ? "byte-identical" : "DIFFER");
    }
  }
  if (report.contains("big")) {
    const auto& b = report["big"];
    std::printf("  %lld chars: generate %.2f s, peak RSS %.0f MiB for %.0f MiB of output (%.2fx)\n",
                static_cast<long long>(o.big_chars), b["generate_seconds"].get<double>(),
                b["generate_max_rss_mib"].get<double>(), b["output_mib"].get<double>(),
                b["rss_over_output"].get<double>());
    std::printf("  oracle: hash map of %.1f M lines/s (%.2f s), %.0f queries/s over %lld chains, accuracy %.2f%%\n",
                b["solve_lines_per_second"].get<double>() / 1e6, b["solve_build_seconds"].get<double>(),
                b["solve_queries_per_second"].get<double>(), b["solve_queries"].get<long long>(),
                100.0 * b["oracle_accuracy"].get<double>());
  }
  return 0;
}

}  // namespace

void register_hashhop(CLI::App* bench, Action& action) {
  auto o = std::make_shared<HashHopBenchOptions>();
  CLI::App* hh = bench->add_subcommand(
      "hashhop", "HashHop generation vs the Python originals, the 300M-char problem, and the oracle");
  hh->add_option("--chars", o->chars, "Size compared against the Python anchors")->capture_default_str();
  hh->add_option("--big-chars", o->big_chars, "Size of the large run (0 skips it)")->capture_default_str();
  hh->add_option("--hops", o->hops)->capture_default_str();
  hh->add_option("--hash-length", o->hash_length)->capture_default_str();
  hh->add_option("--queries", o->queries)->capture_default_str();
  hh->add_option("--seed", o->seed)->capture_default_str();
  hh->add_option("--workdir", o->workdir, "Scratch directory (files are deleted after)")->capture_default_str();
  hh->add_option("--python", o->python, "Python with numpy")->capture_default_str();
  hh->add_option("--shared", o->shared, "The shared/ folder with reference/")->capture_default_str();
  hh->add_flag("--skip-python", o->skip_python, "Do not run the Python anchors");
  hh->add_flag("--keep", o->keep, "Keep the generated files");
  hh->add_flag("--json", o->json, "Print the figures as JSON");
  hh->callback([o, &action] { action = [o] { return run_hashhop_bench(*o); }; });
}

void register_parts(CLI::App* bench, Action& action) {
  register_hashhop(bench, action);
  register_engram_hash(bench, action);
  register_store(bench, action);
  register_table_create(bench, action);
  register_attention(bench, action);
  register_cache(bench, action);
  register_offload(bench, action);
}

void print_json(const nlohmann::ordered_json& value) { std::cout << value.dump(2) << std::endl; }

std::string csv_text(const nlohmann::ordered_json& rows) {
  std::ostringstream out;
  if (rows.empty()) return "";
  bool first = true;
  for (const auto& [key, value] : rows[0].items()) out << (first ? "" : ",") << key, first = false;
  out << '\n';
  for (const auto& row : rows) {
    first = true;
    for (const auto& [key, value] : row.items()) {
      out << (first ? "" : ",");
      first = false;
      if (value.is_string()) {
        out << value.get<std::string>();
      } else if (value.is_number_float()) {
        char buf[32];
        std::snprintf(buf, sizeof buf, "%.6g", value.get<double>());
        out << buf;
      } else {
        out << value.dump();
      }
    }
    out << '\n';
  }
  return out.str();
}



}  // namespace hashmem::bench
