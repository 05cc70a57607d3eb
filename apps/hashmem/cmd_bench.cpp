// hashmem bench <part>: the benchmarks of bench/ (hashmem_bench), plus train-step, which runs in the model
// process and shares the train command's config flags (cmd_model.cpp).
#include "bench.hpp"
#include "cli.hpp"

namespace hashmem::cli {

void register_bench(CLI::App& app, Action& action) {
  CLI::App* bench = app.add_subcommand("bench", "Benchmarks, each against an anchor measured in the same run");
  bench->require_subcommand(1);
  bench::register_parts(bench, action);
  register_bench_model(bench, action);
}

}  // namespace hashmem::cli
