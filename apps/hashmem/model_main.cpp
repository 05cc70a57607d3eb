// hashmem-model: the libtorch process behind `hashmem train`, `hashmem generate` and `hashmem bench train-step`.
// It is separate because libsentencepiece (which the hashmem CLI links for tokenizing) and libtorch carry
// protobuf builds that crash when loaded into one process. The CLI resolves presets and configs, tokenizes, and
// passes plain values here (a resolved config as JSON text, token ids); results come back as JSON on stdout.
#include <cstdio>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <unistd.h>
#include <iostream>
#include <string>
#include <nlohmann/json.hpp>
#include <CLI/CLI.hpp>

#include "hashmem/error.hpp"
#include "hashmem/mapped_file.hpp"
#include "hashmem/model.hpp"

namespace {

using hashmem::model::Config;

Config parse_config(const std::string& text) {
  Config c = hashmem::model::config_from_json(text, Config{}, "--config-text");
  hashmem::model::validate(c);
  return c;
}

void print(const nlohmann::ordered_json& j) { std::cout << j.dump(2) << std::endl; }

}  // namespace

int main(int argc, char** argv) {
  // libtorch's OpenMP workers and OpenBLAS's own threads share the cores. Idle, both spin by default (libgomp on
  // the CPU, OpenBLAS in sched_yield) and take the cores from whichever is working: the quick preset trained at
  // 750 tokens/s so, 5.6 k with passive OpenMP waits and 9.6 k with OpenBLAS's spin cut short too. And glibc
  // serves every block above 32 MiB (a step's logits are 65 MiB) with a fresh mmap, so each step page-faulted
  // and zeroed its big tensors anew (15 % of the time): keeping freed memory in the heap took the tiny preset
  // from 3.8 k to 6.3 k tokens/s. The libraries read these variables when they are loaded, before main(), so the
  // process sets them and runs itself again.
  if (!std::getenv("HASHMEM_MODEL_ENV")) {
    ::setenv("OMP_WAIT_POLICY", "PASSIVE", /*overwrite=*/0);
    ::setenv("OPENBLAS_THREAD_TIMEOUT", "4", /*overwrite=*/0);  // spin 2^4 cycles, then sleep
    const char* tunables = std::getenv("GLIBC_TUNABLES");
    const std::string heap = "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=68719476736";
    ::setenv("GLIBC_TUNABLES", tunables && *tunables ? (std::string(tunables) + ":" + heap).c_str() : heap.c_str(), 1);
    ::setenv("HASHMEM_MODEL_ENV", "1", 1);
    ::execv("/proc/self/exe", argv);
    std::fprintf(stderr, "hashmem-model: cannot re-run itself (%s); continuing with spinning thread pools\n",
                 std::strerror(errno));
  }
  CLI::App app{"hashmem-model: the tiny LM's libtorch process (run it through hashmem train / generate)"};
  app.require_subcommand(1);
  std::string config_text;
  hashmem::model::TrainOptions t;
  bool no_progress = false;

  CLI::App* train = app.add_subcommand("train", "Train or resume a run");
  train->add_option("--config-text", config_text, "The resolved config (JSON)");
  train->add_option("--corpus", t.corpus)->required();
  train->add_option("--out", t.out)->required();
  train->add_option("--compression", t.compression);
  train->add_flag("--resume", t.resume);
  train->add_option("--stop-after", t.stop_after);
  train->add_option("--dump-qkv", t.dump_qkv);
  train->add_flag("--no-progress", no_progress);

  hashmem::model::GenerateOptions g;
  std::string prompt_ids;
  CLI::App* gen = app.add_subcommand("generate", "Generate token ids from a run");
  gen->add_option("--run", g.run)->required();
  gen->add_option("--prompt-ids", prompt_ids, "Comma-separated token ids")->required();
  gen->add_option("--max-new-tokens", g.max_new_tokens);
  gen->add_option("--top-k", g.top_k);
  gen->add_option("--temperature", g.temperature);
  gen->add_option("--seed", g.seed);
  gen->add_option("--stop-token", g.stop_token);
  gen->add_option("--dram-budget", g.dram_budget);
  gen->add_flag("--engram-off", g.engram_off);
  gen->add_flag("--no-cache", g.no_cache, "Recompute the window for every token (a check of the KV cache)");
  gen->add_option("--threads", g.threads);

  std::int64_t steps = 10;
  int rounds = 3;
  CLI::App* bench = app.add_subcommand("bench-step", "Training-step time with and without Engram");
  bench->add_option("--config-text", config_text)->required();
  bench->add_option("--corpus", t.corpus)->required();
  bench->add_option("--compression", t.compression);
  bench->add_option("--workdir", t.out);
  bench->add_option("--steps", steps);
  bench->add_option("--rounds", rounds);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    if (*train) {
      if (!t.resume) t.config = parse_config(config_text);
      t.progress = !no_progress;
      hashmem::model::train(t);
      // The run's summary.json is the result (one description of a run, for the CLI and for lm compare).
      const hashmem::MappedFile summary(t.out + "/summary.json");
      std::cout << summary.view() << std::flush;
    } else if (*gen) {
      std::size_t pos = 0;
      while (pos < prompt_ids.size()) {
        std::size_t comma = prompt_ids.find(',', pos);
        if (comma == std::string::npos) comma = prompt_ids.size();
        g.prompt.push_back(std::stoll(prompt_ids.substr(pos, comma - pos)));
        pos = comma + 1;
      }
      const auto r = hashmem::model::generate(g);
      print({{"tokens", r.tokens},
             {"prefill_seconds", r.prefill_seconds},
             {"decode_seconds", r.decode_seconds},
             {"tokens_per_s", r.tokens_per_s},
             {"tier", r.tier},
             {"table_bytes", r.table_bytes},
             {"dram_budget", r.dram_budget},
             {"hit_ratio", r.hit_ratio},
             {"lookups", r.lookups},
             {"reads", r.reads},
             {"late_rows", r.late_rows}});
    } else if (*bench) {
      t.config = parse_config(config_text);
      const auto r = hashmem::model::bench_step(t, steps, rounds);
      print({{"steps", r.steps},
             {"baseline_ms", r.baseline_ms},
             {"engram_ms", r.engram_ms},
             {"ratio", r.ratio},
             {"lookup_ms", r.lookup_ms},
             {"update_ms", r.update_ms}});
    }
    return 0;
  } catch (const std::exception& e) {  // hashmem::Error, and torch's c10::Error
    std::fprintf(stderr, "hashmem: %s\n", e.what());
    return 1;
  }
}
