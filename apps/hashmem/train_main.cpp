// hashmem-train: the libtorch process behind `hashmem train` (see train_options.hpp for why it is separate).
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "hashmem/common.hpp"
#include "train_options.hpp"

namespace hashmem::cli {

int run_and_report(TrainArgs& a) {
  if (a.engram != "on" && a.engram != "off") throw Error("--engram must be on or off, got '" + a.engram + "'");
  a.o.engram = a.engram == "on";
  const model::TrainResult r = model::train(a.o);
  if (a.json) {
    const nlohmann::ordered_json j = {
        {"out", a.o.out}, {"engram", a.o.engram}, {"seed", a.o.seed}, {"steps", r.steps}, {"tokens", r.tokens},
        {"val_loss", r.val_loss}, {"val_loss_engram_off", r.val_loss_engram_off},
        {"first_train_loss", r.first_train_loss}, {"last_train_loss", r.last_train_loss},
        {"dense_parameters", r.dense_parameters}, {"table_parameters", r.table_parameters},
        {"train_flops_per_token", r.train_flops_per_token}, {"tokens_per_s", r.tokens_per_s}, {"seconds", r.seconds}};
    std::cout << j.dump(2) << std::endl;
    return 0;
  }
  std::printf("%s: %lld steps, %lld tokens in %.1f s (%.0f tokens/s); train loss %.4f -> %.4f; validation loss %.4f",
              a.o.engram ? "engram" : "baseline", static_cast<long long>(r.steps), static_cast<long long>(r.tokens),
              r.seconds, r.tokens_per_s, r.first_train_loss, r.last_train_loss, r.val_loss);
  if (r.val_loss_engram_off >= 0) std::printf(" (memory switched off: %.4f)", r.val_loss_engram_off);
  std::printf("\n  dense parameters %lld, table parameters %lld, %.3g training FLOPs per token; metrics in %s/metrics.csv\n",
              static_cast<long long>(r.dense_parameters), static_cast<long long>(r.table_parameters),
              r.train_flops_per_token, a.o.out.c_str());
  return 0;
}

}  // namespace hashmem::cli

int main(int argc, char** argv) {
  CLI::App app{"hashmem-train: the tiny LM's training process (run it through `hashmem train`)"};
  hashmem::cli::TrainArgs a;
  hashmem::cli::add_train_options(&app, a);
  app.add_option("--compression", a.o.compression, "Tokenizer compression JSON (hashmem engram compress --out)");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    return hashmem::cli::run_and_report(a);
  } catch (const hashmem::Error& e) {
    std::fprintf(stderr, "hashmem: %s\n", e.what());
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "hashmem: %s\n", e.what());
    return 1;
  }
}
