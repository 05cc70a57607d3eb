// hashmem hashhop generate | score | solve
#include <cstdio>
#include <memory>

#include "cli.hpp"
#include "hashmem/clock.hpp"
#include "hashmem/error.hpp"
#include "hashmem/hashhop.hpp"
#include "hashmem/output_file.hpp"
#include "hashmem/progress.hpp"

namespace hashmem::cli {
namespace {

using hashhop::Params;

struct GenerateOptions {
  std::uint64_t seed = 0;
  std::int64_t chars = 0, tokens = 0, hops = 2, hash_length = 16, queries = 5, samples = 1;
  bool cot = false, json = false;
  std::string out = "-";
};

int run_generate(const GenerateOptions& o, bool chars_given, bool tokens_given) {
  if (chars_given == tokens_given) throw Error("give exactly one of --chars or --tokens");
  if (o.samples < 1) throw Error("--samples must be >= 1, got " + std::to_string(o.samples));
  if (o.json && o.out == "-") throw Error("--json prints a summary on stdout, so it needs --out FILE for the data");
  if (tokens_given && (o.tokens <= 0 || o.tokens > (std::int64_t{1} << 53) / hashhop::kCharsPerToken)) {
    throw Error("tokens must be > 0 and <= 2^53/3, got " + std::to_string(o.tokens));
  }
  Params base;
  base.n_chars = chars_given ? o.chars : o.tokens * hashhop::kCharsPerToken;
  base.hops = o.hops;
  base.hash_length = o.hash_length;
  base.num_queries = o.queries;
  base.cot = o.cot;
  // Check every sample's parameters before the output file is created.
  std::vector<Params> all;
  for (std::int64_t i = 0; i < o.samples; ++i) {
    Params p = base;
    p.seed = o.seed + static_cast<std::uint64_t>(i);
    if (p.seed < o.seed) throw Error("seed + samples overflows");
    hashhop::validate(p);
    all.push_back(p);
  }
  const double t0 = now_seconds();
  OutputFile out(o.out);
  Progress progress("hashhop", 0);
  nlohmann::ordered_json per_sample = nlohmann::ordered_json::array();
  std::int64_t fewer = 0;
  for (const Params& p : all) {
    hashhop::GenerateStats s = hashhop::write_sample_json(p, out, &progress);
    if (s.distinct_chains < p.num_queries) ++fewer;
    per_sample.push_back({{"seed", p.seed},
                          {"chains", s.chains},
                          {"distinct_chains", s.distinct_chains},
                          {"lines", s.lines},
                          {"prompt_chars", s.prompt_chars},
                          {"bytes", s.bytes}});
  }
  out.commit();
  progress.finish();
  const double seconds = now_seconds() - t0;
  if (fewer) {
    std::fprintf(stderr,
                 "hashmem: note: %lld sample(s) have fewer distinct chains than --queries (duplicate hashes at "
                 "this hash length); their completions name every distinct chain, as the original does\n",
                 static_cast<long long>(fewer));
  }
  if (o.json) {
    print_json({{"out", o.out}, {"samples", per_sample}, {"bytes", out.bytes_written()}, {"seconds", seconds}});
  } else {
    std::fprintf(stderr, "hashmem: wrote %lld sample(s), %llu bytes, to %s in %.2f s\n",
                 static_cast<long long>(all.size()), static_cast<unsigned long long>(out.bytes_written()),
                 o.out == "-" ? "stdout" : o.out.c_str(), seconds);
  }
  return 0;
}

int run_score(const std::string& dataset_path, const std::string& predictions_path, bool all_targets, bool json,
              double min_accuracy) {
  const std::vector<hashhop::DatasetSample> dataset = hashhop::read_dataset(dataset_path);
  const hashhop::ScoreReport report = hashhop::score_file(dataset, predictions_path, all_targets);
  const double accuracy = report.accuracy();
  if (json) {
    nlohmann::ordered_json rows = nlohmann::ordered_json::array();
    for (const auto& r : report.rows) {
      rows.push_back({{"chars", r.chars},
                      {"tokens", r.chars / hashhop::kCharsPerToken},
                      {"hops", r.hops},
                      {"cot", r.cot},
                      {"samples", r.samples},
                      {"queries", r.queries},
                      {"answered", r.answered},
                      {"correct", r.correct},
                      {"accuracy", r.accuracy()}});
    }
    print_json({{"rows", rows},
                {"queries", report.queries},
                {"correct", report.correct},
                {"accuracy", accuracy},
                {"unknown_predictions", report.unknown_predictions},
                {"duplicate_predictions", report.duplicate_predictions}});
  } else {
    std::printf("%12s %5s %5s %8s %8s %8s %8s %9s\n", "chars", "hops", "cot", "samples", "queries", "answered",
                "correct", "accuracy");
    for (const auto& r : report.rows) {
      std::printf("%12lld %5lld %5s %8lld %8lld %8lld %8lld %8.2f%%\n", static_cast<long long>(r.chars),
                  static_cast<long long>(r.hops), r.cot ? "True" : "False", static_cast<long long>(r.samples),
                  static_cast<long long>(r.queries), static_cast<long long>(r.answered),
                  static_cast<long long>(r.correct), 100.0 * r.accuracy());
    }
    std::printf("%12s %5s %5s %8s %8lld %8s %8lld %8.2f%%\n", "total", "", "", "",
                static_cast<long long>(report.queries), "", static_cast<long long>(report.correct),
                100.0 * accuracy);
    if (report.unknown_predictions || report.duplicate_predictions) {
      std::printf("ignored: %lld prediction(s) for queries not scored, %lld repeated prediction(s)\n",
                  static_cast<long long>(report.unknown_predictions),
                  static_cast<long long>(report.duplicate_predictions));
    }
  }
  if (min_accuracy >= 0 && accuracy < min_accuracy) {
    std::fprintf(stderr, "hashmem: accuracy %.4f is below --min-accuracy %.4f\n", accuracy, min_accuracy);
    return 3;
  }
  return 0;
}

int run_solve(const std::string& dataset_path, const std::string& out_path, bool all_targets, bool json) {
  if (json && out_path == "-") throw Error("--json prints statistics on stdout, so it needs --out FILE");
  OutputFile out(out_path);
  Progress progress("hashhop solve", 0);
  hashhop::SolveStats s = hashhop::solve(dataset_path, out, all_targets, &progress);
  out.commit();
  progress.finish();
  const double qps = s.query_seconds > 0 ? s.queries / s.query_seconds : 0.0;
  if (json) {
    print_json({{"samples", s.samples},
                {"lines", s.lines},
                {"queries", s.queries},
                {"ambiguous", s.ambiguous},
                {"unanswered", s.unanswered},
                {"read_seconds", s.read_seconds},
                {"build_seconds", s.build_seconds},
                {"lines_per_second", s.build_seconds > 0 ? s.lines / s.build_seconds : 0.0},
                {"query_seconds", s.query_seconds},
                {"queries_per_second", qps},
                {"write_seconds", s.write_seconds}});
  } else {
    std::fprintf(stderr,
                 "hashmem: solved %lld queries over %lld prompt lines in %lld sample(s): hash map built in %.3f s "
                 "(%.1f M lines/s), %.0f queries/s; %lld ambiguous, %lld unanswered\n",
                 static_cast<long long>(s.queries), static_cast<long long>(s.lines),
                 static_cast<long long>(s.samples), s.build_seconds,
                 s.build_seconds > 0 ? s.lines / s.build_seconds / 1e6 : 0.0, qps,
                 static_cast<long long>(s.ambiguous), static_cast<long long>(s.unanswered));
  }
  return 0;
}

}  // namespace

void register_hashhop(CLI::App& app, Action& action) {
  CLI::App* hashhop = app.add_subcommand("hashhop", "HashHop multi-hop hash-chain benchmark (Magic)");
  hashhop->require_subcommand(1);

  auto g = std::make_shared<GenerateOptions>();
  CLI::App* gen = hashhop->add_subcommand(
      "generate", "Generate samples byte-exact with magicproduct/hash-hop for the same seed (JSON lines)");
  gen->add_option("--seed", g->seed, "Seed S: random.seed(S); np.random.seed(S); sample i uses S+i")
      ->capture_default_str();
  CLI::Option* chars = gen->add_option("--chars", g->chars, "Problem size in characters (n_chars_problem)");
  CLI::Option* tokens = gen->add_option("--tokens", g->tokens, "Problem size in tokens (x3 characters)");
  chars->excludes(tokens);
  gen->add_option("--hops", g->hops, "Edges per chain")->capture_default_str();
  gen->add_option("--hash-length", g->hash_length, "Letters per hash")->capture_default_str();
  gen->add_option("--queries", g->queries, "Chains named in the completion")->capture_default_str();
  gen->add_flag("--cot", g->cot, "Chain of thought: answers list every hash of the chain");
  gen->add_option("--samples", g->samples, "Number of samples (JSONL), seeds S, S+1, ...")->capture_default_str();
  gen->add_option("--out", g->out, "Output file, written atomically ('-' = stdout)")->capture_default_str();
  gen->add_flag("--json", g->json, "Print a JSON summary on stdout (needs --out)");
  gen->callback([g, chars, tokens, &action] {
    action = [g, chars, tokens] { return run_generate(*g, chars->count() > 0, tokens->count() > 0); };
  });

  auto score_dataset = std::make_shared<std::string>();
  auto score_predictions = std::make_shared<std::string>();
  auto score_all = std::make_shared<bool>(false);
  auto score_json = std::make_shared<bool>(false);
  auto score_min = std::make_shared<double>(-1.0);
  CLI::App* sc = hashhop->add_subcommand("score", "Score predictions: exact match per query, by (chars, hops, cot)");
  sc->add_option("--dataset", *score_dataset, "Dataset JSONL from 'hashhop generate'")->required();
  sc->add_option("--predictions", *score_predictions,
                 "JSONL of {\"sample\",\"query\",\"answer\"} or {\"sample\",\"completion\"} (raw model text)")
      ->required();
  sc->add_flag("--all-targets", *score_all, "Score every chain, not only the completion's queries");
  sc->add_option("--min-accuracy", *score_min, "Exit with code 3 if the overall accuracy is below this (0..1)");
  sc->add_flag("--json", *score_json, "Print the report as JSON");
  sc->callback([=, &action] {
    action = [=] { return run_score(*score_dataset, *score_predictions, *score_all, *score_json, *score_min); };
  });

  auto solve_dataset = std::make_shared<std::string>();
  auto solve_out = std::make_shared<std::string>("-");
  auto solve_all = std::make_shared<bool>(false);
  auto solve_json = std::make_shared<bool>(false);
  CLI::App* so = hashhop->add_subcommand(
      "solve", "Oracle: answer queries by following chains through a hash map of the prompt");
  so->add_option("--dataset", *solve_dataset, "Dataset JSONL from 'hashhop generate'")->required();
  so->add_option("--out", *solve_out, "Predictions JSONL, written atomically ('-' = stdout)")->capture_default_str();
  so->add_flag("--all-targets", *solve_all, "Answer every chain, not only the completion's queries");
  so->add_flag("--json", *solve_json, "Print timing statistics as JSON on stdout (needs --out)");
  so->callback([=, &action] {
    action = [=] { return run_solve(*solve_dataset, *solve_out, *solve_all, *solve_json); };
  });
}

}  // namespace hashmem::cli
