// hashmem train / generate / lm compare / bench train-step: the tiny LM from the CLI. This process resolves the
// config (preset → --config file → flags), tokenizes and detokenizes (libsentencepiece), prepares the tokenizer
// compression, and runs hashmem-model (libtorch) beside this executable for the tensor work: the two libraries
// cannot share a process (their protobuf builds clash).
#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <unistd.h>

#include "hashmem/process.hpp"
#include "cli.hpp"
#include "hashmem/error.hpp"
#include "hashmem/human.hpp"
#include "hashmem/mapped_file.hpp"
#include "hashmem/output_file.hpp"
#include "hashmem/data.hpp"
#include "hashmem/engram.hpp"
#include "hashmem/model.hpp"
#include "hashmem/store.hpp"

namespace hashmem::cli {
namespace {

namespace fs = std::filesystem;
using model::Config;

std::string model_executable() { return (fs::path(self_executable()).parent_path() / "hashmem-model").string(); }

// ---- config options shared by train and bench train-step ----

struct ConfigArgs {
  std::string preset = "tiny", config_file, engram, corpus = "build/data/corpus";
  Config flags;  // values of the flags given (only those are applied)
  std::vector<std::pair<CLI::Option*, std::function<void(Config&, const Config&)>>> given;
};

template <class T>
void flag(CLI::App* app, ConfigArgs& a, const std::string& name, T Config::*field, const std::string& help) {
  CLI::Option* opt = app->add_option(name, a.flags.*field, help);
  if constexpr (!std::is_same_v<T, std::vector<std::int64_t>>) opt->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  a.given.emplace_back(opt, [field](Config& c, const Config& f) { c.*field = f.*field; });
}

void add_config_options(CLI::App* app, ConfigArgs& a) {
  app->add_option("--preset", a.preset, "Starting config: tiny (the demo) or quick (seconds)")->capture_default_str();
  app->add_option("--config", a.config_file, "JSON file whose keys override the preset (keys: hashmem train --print-config)");
  app->add_option("--engram", a.engram, "on or off (overrides the config's \"engram\")");
  app->add_option("--corpus", a.corpus, "Corpus directory (hashmem data prepare)")->capture_default_str();
  flag(app, a, "--tokens", &Config::tokens, "Training tokens");
  flag(app, a, "--seed", &Config::seed, "Seed (initialisation, batches)");
  flag(app, a, "--dim", &Config::dim, "Model width");
  flag(app, a, "--layers", &Config::layers, "Blocks");
  flag(app, a, "--heads", &Config::heads, "Attention heads");
  flag(app, a, "--context", &Config::context, "Tokens per training window");
  flag(app, a, "--batch", &Config::batch, "Windows per step");
  flag(app, a, "--lr", &Config::lr, "Peak learning rate of the dense weights");
  flag(app, a, "--engram-layers", &Config::engram_layers, "Blocks with an Engram layer");
  flag(app, a, "--engram-vocab", &Config::engram_vocab_per_order, "Rows per head and n-gram order (next prime above)");
  flag(app, a, "--eval-every", &Config::eval_every, "Steps between validation losses");
  flag(app, a, "--checkpoint-every", &Config::checkpoint_every, "Steps between checkpoints (0: at the end)");
  flag(app, a, "--threads", &Config::threads, "Threads");
  flag(app, a, "--attention", &Config::attention, "exact (our tiled kernel), torch (plain libtorch), lsh, bucket or mixed");
  CLI::Option* ablate = app->add_option("--ablate", a.flags.ablate, "Ablations: gate, compression, conv (repeat or comma-separate)")
                            ->delimiter(',');
  a.given.emplace_back(ablate, [](Config& c, const Config& f) { c.ablate = f.ablate; });
}

bool any_config_flag(const ConfigArgs& a) {
  return std::any_of(a.given.begin(), a.given.end(), [](const auto& g) { return g.first->count() > 0; });
}

Config resolve_config(const ConfigArgs& a) {
  Config c = model::preset(a.preset);
  if (!a.config_file.empty()) {
    const MappedFile file(a.config_file);
    c = model::config_from_json(std::string(file.view()), c, a.config_file);
  }
  for (const auto& [opt, apply] : a.given) {
    if (opt->count() > 0) apply(c, a.flags);
  }
  if (!a.engram.empty()) {
    if (a.engram != "on" && a.engram != "off") throw Error("--engram must be on or off, got '" + a.engram + "'");
    c.engram = a.engram == "on";
  }
  if (!c.engram) c.ablate.clear();
  model::validate(c);
  return c;
}

// The corpus' tokenizer compression as a file hashmem-model reads (the `hashmem engram compress --out` format).
void write_compression(const std::string& corpus, const std::string& path) {
  write_file_atomically(path, engram::compression_json(engram::compress_tokenizer(corpus + "/spm.model")));
}

bool needs_compression(const Config& c) { return c.engram && !c.has_ablation("compression"); }

nlohmann::json run_model(const std::vector<std::string>& args, const std::string& what) {
  std::vector<std::string> argv = {model_executable()};
  argv.insert(argv.end(), args.begin(), args.end());
  std::fflush(stdout);
  const ChildResult r = run_child(argv);
  if (r.exit_code != 0) throw Error(what + " failed (hashmem-model exit code " + std::to_string(r.exit_code) + ")");
  const auto j = nlohmann::json::parse(r.stdout_text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) throw Error(what + ": hashmem-model printed no JSON result");
  return j;
}

std::string fmt(const char* f, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

// ---- hashmem train ----

struct TrainArgs {
  ConfigArgs config;
  std::string out, dump_qkv;
  bool resume = false, json = false, print_config = false;
  std::int64_t stop_after = 0;
};

int run_train(const TrainArgs& a) {
  if (a.resume && (any_config_flag(a.config) || !a.config.config_file.empty() || !a.config.engram.empty())) {
    throw Error("--resume continues the run with its own config.json: drop the config options");
  }
  const Config c = a.resume ? Config{} : resolve_config(a.config);
  if (a.print_config) {
    std::printf("%s\n", model::config_to_json(c).c_str());
    return 0;
  }
  if (a.out.empty()) throw Error("--out is required");
  if (a.resume && !fs::exists(a.out + "/config.json")) throw Error("'" + a.out + "' holds no run to resume (no config.json)");
  if (!a.resume && (fs::exists(a.out + "/config.json") || fs::exists(a.out + "/checkpoint"))) {
    const bool checkpointed = fs::exists(a.out + "/checkpoint") || fs::exists(a.out + "/checkpoint.old");
    throw Error("'" + a.out + "' already holds a run: " +
                (checkpointed ? std::string("continue it with --resume, or choose another --out")
                              : std::string("it stopped before its first checkpoint (nothing to resume); remove the "
                                            "directory to start again, or choose another --out")));
  }
  if (!fs::exists(a.config.corpus + "/manifest.json")) {
    throw Error("corpus '" + a.config.corpus + "' is missing (./run prepares it; or hashmem data prepare --out DIR)");
  }
  std::vector<std::string> args = {"train", "--corpus", a.config.corpus, "--out", a.out};
  if (a.resume) {
    args.push_back("--resume");
  } else {
    fs::create_directories(a.out);
    // The run keeps its tokenizer (generate reads it) and, with Engram, the compression the table is hashed by.
    const MappedFile spm(a.config.corpus + "/spm.model");
    write_file_atomically(a.out + "/tokenizer.model", spm.view());
    if (needs_compression(c)) write_compression(a.config.corpus, a.out + "/compression.json");
    args.insert(args.end(), {"--config-text", model::config_to_json(c)});
  }
  if (fs::exists(a.out + "/compression.json")) args.insert(args.end(), {"--compression", a.out + "/compression.json"});
  if (a.stop_after > 0) args.insert(args.end(), {"--stop-after", std::to_string(a.stop_after)});
  if (!a.dump_qkv.empty()) args.insert(args.end(), {"--dump-qkv", a.dump_qkv});
  const nlohmann::json r = run_model(args, "training");
  if (a.json) {
    std::printf("%s\n", r.dump(2).c_str());
    return 0;
  }
  const double val = r["val_loss"], off = r["val_loss_engram_off"];
  std::printf("%s: %lld steps, %lld tokens at %.0f tokens/s (this call %.1f s with evaluation); train loss %.3f -> %.3f; "
              "validation loss %.4f (perplexity %.1f)",
              a.out.c_str(), r["steps"].get<long long>(), r["tokens"].get<long long>(), r["tokens_per_s"].get<double>(),
              r["seconds"].get<double>(), r["first_train_loss"].get<double>(), r["last_train_loss"].get<double>(), val,
              std::exp(val));
  if (off >= 0) std::printf(", %.4f with the memory switched off", off);
  std::printf("\n  dense parameters %lld, table parameters %lld, %.3g training FLOPs per token%s\n",
              r["dense_parameters"].get<long long>(), r["table_parameters"].get<long long>(),
              r["train_flops_per_token"].get<double>(), r["finished"].get<bool>() ? "" : " (stopped early: --resume continues)");
  return 0;
}

// ---- hashmem generate ----

struct GenerateArgs {
  std::string run, prompt, prompt_file;
  std::int64_t tokens = 64, top_k = 0;
  double temperature = 1.0, dram_fraction = 0;
  std::uint64_t seed = 0, dram_budget = 0;
  bool check_dram = false, engram_off = false, no_cache = false, json = false;
  int threads = 2;
};

nlohmann::json generate_once(const GenerateArgs& a, const std::vector<std::int32_t>& prompt, std::uint64_t budget) {
  std::string ids;
  for (std::size_t i = 0; i < prompt.size(); ++i) ids += (i ? "," : "") + std::to_string(prompt[i]);
  std::vector<std::string> args = {"generate", "--run", a.run, "--prompt-ids", ids, "--max-new-tokens",
                                   std::to_string(a.tokens), "--top-k", std::to_string(a.top_k), "--temperature",
                                   fmt("%.17g", a.temperature), "--seed", std::to_string(a.seed), "--dram-budget",
                                   std::to_string(budget), "--threads", std::to_string(a.threads)};
  if (a.engram_off) args.push_back("--engram-off");
  if (a.no_cache) args.push_back("--no-cache");
  return run_model(args, "generation");
}

int run_generate(const GenerateArgs& a) {
  if (!fs::exists(a.run + "/config.json")) throw Error("'" + a.run + "' is not a run directory (no config.json)");
  if (a.prompt.empty() == a.prompt_file.empty()) throw Error("give the prompt as --prompt TEXT or --prompt-file F");
  if (a.dram_fraction < 0 || a.dram_fraction > 1) throw Error("--dram-fraction must be in [0, 1]");
  const MappedFile spm(a.run + "/tokenizer.model");
  std::string text = a.prompt;
  if (!a.prompt_file.empty()) text = std::string(MappedFile(a.prompt_file).view());
  const std::vector<std::int32_t> prompt = data::encode_text(spm.view(), text);
  if (prompt.empty()) throw Error("the prompt encodes to no tokens");
  std::uint64_t budget = a.dram_budget;
  const std::string table = a.run + "/checkpoint/engram.safetensors";
  if (a.dram_fraction > 0) {
    if (!fs::exists(table)) throw Error("--dram-fraction: run '" + a.run + "' has no Engram table");
    budget = std::max<std::uint64_t>(1, static_cast<std::uint64_t>(a.dram_fraction * static_cast<double>(store::read_info(table).data_bytes())));
  }
  nlohmann::json r = generate_once(a, prompt, budget);
  std::vector<std::int32_t> out = r["tokens"].get<std::vector<std::int32_t>>();
  nlohmann::json check;
  if (a.check_dram) {
    check = generate_once(a, prompt, 0);
    check["same_tokens"] = check["tokens"] == r["tokens"];
    check.erase("tokens");
  }
  std::string completion = data::decode_continuation(spm.view(), prompt, out);
  // The prompt is printed as given: a space it ends with already separates it from the completion.
  if (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())) && !completion.empty() && completion[0] == ' ') {
    completion.erase(0, 1);
  }
  if (a.json) {
    nlohmann::ordered_json j = {{"prompt", text}, {"prompt_tokens", prompt.size()}, {"completion", completion}};
    for (auto& [k, v] : r.items()) j[k] = v;
    if (a.check_dram) j["dram"] = check;
    std::printf("%s\n", j.dump(2).c_str());
  } else {
    std::printf("%s%s\n--\n", text.c_str(), completion.c_str());
    std::printf("%zu tokens in %.2f s (%.1f tokens/s; prompt of %zu tokens in %.3f s)", out.size(), r["decode_seconds"].get<double>(),
                r["tokens_per_s"].get<double>(), prompt.size(), r["prefill_seconds"].get<double>());
    const std::string tier = r["tier"];
    if (tier == "ssd") {
      std::printf("; Engram table %s on the SSD tier behind %s of DRAM: hit ratio %.3f, %llu reads, %llu late rows",
                  human_bytes(r["table_bytes"].get<double>()).c_str(), human_bytes(r["dram_budget"].get<double>()).c_str(),
                  r["hit_ratio"].get<double>(), r["reads"].get<unsigned long long>(), r["late_rows"].get<unsigned long long>());
    } else if (tier == "dram") {
      std::printf("; Engram table %s in DRAM", human_bytes(r["table_bytes"].get<double>()).c_str());
    }
    std::printf("\n");
    if (a.check_dram) {
      std::printf("with the whole table in DRAM: %.1f tokens/s, %s\n", check["tokens_per_s"].get<double>(),
                  check["same_tokens"].get<bool>() ? "the same tokens" : "DIFFERENT tokens");
    }
  }
  return a.check_dram && !check["same_tokens"].get<bool>() ? 1 : 0;
}

// ---- hashmem lm compare ----

struct Arm {
  std::string name;
  std::vector<nlohmann::json> runs;
};

std::string arm_name(const nlohmann::json& s) {
  if (!s.value("engram", false)) return "baseline";
  std::string n = "engram";
  for (const auto& a : s.value("ablate", nlohmann::json::array())) n += " -" + a.get<std::string>();
  return n;
}

// Mean and sample standard deviation (0 for one value).
std::pair<double, double> mean_std(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m += x;
  m /= static_cast<double>(v.size());
  double ss = 0;
  for (double x : v) ss += (x - m) * (x - m);
  return {m, v.size() > 1 ? std::sqrt(ss / static_cast<double>(v.size() - 1)) : 0.0};
}

struct CompareArgs {
  std::vector<std::string> runs;
  std::string png;
  bool json = false;
};

int run_compare(const CompareArgs& a) {
  std::vector<Arm> arms;
  for (const auto& run : a.runs) {
    const std::string path = run + "/summary.json";
    if (!fs::exists(path)) throw Error("run '" + run + "' has no summary.json (not trained to the end?)");
    const auto s = nlohmann::json::parse(std::string(MappedFile(path).view()), nullptr, false);
    if (s.is_discarded() || !s.contains("val_loss")) throw Error("'" + path + "' is not a run summary");
    const std::string name = arm_name(s);
    auto it = std::find_if(arms.begin(), arms.end(), [&](const Arm& x) { return x.name == name; });
    if (it == arms.end()) it = arms.insert(arms.end(), Arm{name, {}});
    it->runs.push_back(s);
  }
  nlohmann::ordered_json report = nlohmann::ordered_json::array();
  auto stat = [](const Arm& arm, const char* key) {
    std::vector<double> v;
    for (const auto& r : arm.runs) {
      if (r.contains(key) && r[key].get<double>() >= 0) v.push_back(r[key].get<double>());
    }
    return v.empty() ? std::pair<double, double>{-1, 0} : mean_std(v);
  };
  if (!a.json) {
    std::printf("%-22s %5s %17s %10s %17s %11s %11s %10s %10s\n", "arm", "seeds", "val loss", "perplexity",
                "memory off", "dense par.", "table par.", "FLOPs/tok", "tokens/s");
  }
  for (const Arm& arm : arms) {
    const auto loss = stat(arm, "val_loss"), off = stat(arm, "val_loss_engram_off"), tps = stat(arm, "tokens_per_s");
    const auto& r0 = arm.runs.front();
    report.push_back({{"arm", arm.name}, {"seeds", arm.runs.size()}, {"val_loss_mean", loss.first}, {"val_loss_std", loss.second},
                      {"perplexity", std::exp(loss.first)}, {"val_loss_engram_off_mean", off.first},
                      {"val_loss_engram_off_std", off.second}, {"dense_parameters", r0["dense_parameters"]},
                      {"table_parameters", r0["table_parameters"]}, {"train_flops_per_token", r0["train_flops_per_token"]},
                      {"tokens", r0["tokens"]}, {"tokens_per_s_mean", tps.first}});
    if (a.json) continue;
    std::printf("%-22s %5zu %8.4f ± %6.4f %10.1f %17s %11lld %11lld %10.3g %10.0f\n", arm.name.c_str(), arm.runs.size(),
                loss.first, loss.second, std::exp(loss.first),
                off.first < 0 ? "-" : (fmt("%.4f", off.first) + " ± " + fmt("%.4f", off.second)).c_str(),
                r0["dense_parameters"].get<long long>(), r0["table_parameters"].get<long long>(),
                r0["train_flops_per_token"].get<double>(), tps.first);
  }
  if (a.json) std::printf("%s\n", report.dump(2).c_str());
  if (!a.png.empty()) {
    std::vector<std::string> argv = {HASHMEM_SYSTEM_PYTHON, std::string(HASHMEM_SOURCE_DIR) + "/bench/plot_lm.py", a.png};
    argv.insert(argv.end(), a.runs.begin(), a.runs.end());
    const ChildResult r = run_child(argv);
    if (r.exit_code != 0) {
      std::fprintf(stderr, "hashmem: the loss-curve plot failed (exit %d; needs %s with matplotlib)\n", r.exit_code,
                   HASHMEM_SYSTEM_PYTHON);
      return 1;
    }
    if (!a.json) std::printf("loss curves: %s\n", a.png.c_str());
  }
  return 0;
}

// ---- hashmem bench train-step ----

struct StepBenchArgs {
  ConfigArgs config;
  std::int64_t steps = 10;
  int rounds = 3;
  std::string workdir = "build/bench-train-step";
  bool json = false;
};

int run_step_bench(const StepBenchArgs& a) {
  Config c = resolve_config(a.config);
  if (!c.engram) throw Error("bench train-step compares the Engram config against itself without Engram: drop --engram off");
  fs::create_directories(a.workdir);
  std::vector<std::string> args = {"bench-step", "--config-text", model::config_to_json(c), "--corpus", a.config.corpus,
                                   "--workdir", a.workdir, "--steps", std::to_string(a.steps), "--rounds", std::to_string(a.rounds)};
  if (needs_compression(c)) {
    write_compression(a.config.corpus, a.workdir + "/compression.json");
    args.insert(args.end(), {"--compression", a.workdir + "/compression.json"});
  }
  nlohmann::json r = run_model(args, "bench train-step");
  if (a.json) {
    std::printf("%s\n", r.dump(2).c_str());
    return 0;
  }
  std::printf("training step (%s preset, batch %lld × %lld tokens, median of %lld steps each, alternating):\n"
              "  baseline %.1f ms, with Engram %.1f ms: ratio %.3f (+%.1f %%); of the Engram step, lookups %.1f ms, "
              "sparse Adam on the rows %.1f ms\n",
              a.config.preset.c_str(), static_cast<long long>(c.batch), static_cast<long long>(c.context),
              r["steps"].get<long long>(), r["baseline_ms"].get<double>(), r["engram_ms"].get<double>(),
              r["ratio"].get<double>(), 100 * (r["ratio"].get<double>() - 1), r["lookup_ms"].get<double>(),
              r["update_ms"].get<double>());
  return 0;
}

}  // namespace

void register_train(CLI::App& app, Action& action) {
  auto a = std::make_shared<TrainArgs>();
  CLI::App* t = app.add_subcommand("train", "Train the tiny LM on the corpus, with or without Engram (or resume a run)");
  add_config_options(t, a->config);
  t->add_option("--out", a->out, "Run directory: config.json, metrics.csv, summary.json, checkpoint/");
  t->add_flag("--resume", a->resume, "Continue the run in --out from its checkpoint");
  t->add_option("--stop-after", a->stop_after, "Stop (with a checkpoint) after this many more steps");
  t->add_option("--dump-qkv", a->dump_qkv, "After training, write block 0's Q/K/V on validation text here (safetensors)");
  t->add_flag("--print-config", a->print_config, "Print the resolved config as JSON and exit");
  t->add_flag("--json", a->json, "Print the result as JSON");
  t->callback([a, &action] { action = [a] { return run_train(*a); }; });

  auto g = std::make_shared<GenerateArgs>();
  CLI::App* gen = app.add_subcommand("generate", "Generate text from a trained run (Engram table optionally on the SSD tier)");
  gen->add_option("--run", g->run, "Run directory (hashmem train --out)")->required();
  gen->add_option("--prompt", g->prompt, "Prompt text");
  gen->add_option("--prompt-file", g->prompt_file, "Prompt text from a file");
  gen->add_option("--tokens", g->tokens, "Tokens to generate")->capture_default_str();
  gen->add_option("--top-k", g->top_k, "Sample from the k most likely tokens (0: greedy)")->capture_default_str();
  gen->add_option("--temperature", g->temperature, "Sampling temperature (with --top-k)")->capture_default_str();
  gen->add_option("--seed", g->seed, "Sampling seed")->capture_default_str();
  gen->add_option("--dram-budget", g->dram_budget, "Bytes of DRAM for the Engram table; below its size it is served "
                                                    "from the SSD tier (0: all in DRAM)")->capture_default_str();
  gen->add_option("--dram-fraction", g->dram_fraction, "The DRAM budget as a fraction of the table's size");
  gen->add_flag("--check-dram", g->check_dram, "Also generate with the table in DRAM; exit 1 unless the tokens are identical");
  gen->add_flag("--engram-off", g->engram_off, "Switch the Engram memory off");
  gen->add_flag("--no-cache", g->no_cache, "Recompute the window for every token instead of using the KV cache "
                                           "(slow; the same tokens while prompt + tokens fit the context)");
  gen->add_option("--threads", g->threads, "Threads")->capture_default_str();
  gen->add_flag("--json", g->json, "Print the result as JSON");
  gen->callback([g, &action] { action = [g] { return run_generate(*g); }; });

  auto c = std::make_shared<CompareArgs>();
  CLI::App* lm = app.add_subcommand("lm", "Tiny-LM reports");
  lm->require_subcommand(1);
  CLI::App* cmp = lm->add_subcommand("compare", "Side-by-side table of runs, seeds of one arm pooled (mean ± std)");
  cmp->add_option("runs", c->runs, "Run directories")->required();
  cmp->add_option("--png", c->png, "Also plot the validation-loss curves into this PNG");
  cmp->add_flag("--json", c->json, "Print the table as JSON");
  cmp->callback([c, &action] { action = [c] { return run_compare(*c); }; });
}

void register_bench_model(CLI::App* bench, Action& action) {
  auto a = std::make_shared<StepBenchArgs>();
  CLI::App* b = bench->add_subcommand("train-step", "Tiny-LM training step with Engram vs the same model without it");
  add_config_options(b, a->config);
  b->add_option("--steps", a->steps, "Steps per round and arm")->capture_default_str();
  b->add_option("--rounds", a->rounds, "Rounds (arms alternate)")->capture_default_str();
  b->add_option("--workdir", a->workdir, "Scratch directory (the table, deleted after)")->capture_default_str();
  b->add_flag("--json", a->json, "Print the result as JSON");
  b->callback([a, &action] { action = [a] { return run_step_bench(*a); }; });
}

}  // namespace hashmem::cli
