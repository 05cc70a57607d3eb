#include "train_options.hpp"


namespace hashmem::cli {

void add_train_options(CLI::App* t, TrainArgs& a) {
  t->add_option("--out", a.o.out, "Run directory (metrics.csv, summary.json, engram.safetensors)")->required();
  t->add_option("--engram", a.engram, "on or off")->capture_default_str();
  t->add_option("--tokens", a.o.tokens, "Training tokens")->capture_default_str();
  t->add_option("--seed", a.o.seed, "Seed (init, batches)")->capture_default_str();
  t->add_option("--corpus", a.o.corpus, "Corpus directory (hashmem data prepare)")->capture_default_str();
  t->add_option("--dim", a.o.dim, "Model width")->capture_default_str();
  t->add_option("--layers", a.o.layers, "Blocks")->capture_default_str();
  t->add_option("--heads", a.o.heads, "Attention heads")->capture_default_str();
  t->add_option("--context", a.o.context, "Tokens per training window")->capture_default_str();
  t->add_option("--batch", a.o.batch, "Windows per step")->capture_default_str();
  t->add_option("--lr", a.o.lr, "Peak learning rate of the dense weights")->capture_default_str();
  t->add_option("--engram-layers", a.o.engram_layers, "Blocks with an Engram layer")->capture_default_str();
  t->add_option("--engram-vocab", a.o.engram_vocab_per_order, "Table size per n-gram order and head")->capture_default_str();
  t->add_option("--eval-every", a.o.eval_every, "Steps between validation losses")->capture_default_str();
  t->add_option("--threads", a.o.threads, "Threads")->capture_default_str();
  t->add_flag("--json", a.json, "Print the result as JSON");
}

std::vector<std::string> train_arguments(const TrainArgs& a) {
  std::vector<std::string> v = {"--out", a.o.out, "--engram", a.engram, "--tokens", std::to_string(a.o.tokens),
                                "--seed", std::to_string(a.o.seed), "--corpus", a.o.corpus, "--dim", std::to_string(a.o.dim),
                                "--layers", std::to_string(a.o.layers), "--heads", std::to_string(a.o.heads),
                                "--context", std::to_string(a.o.context), "--batch", std::to_string(a.o.batch),
                                "--lr", std::to_string(a.o.lr), "--engram-vocab", std::to_string(a.o.engram_vocab_per_order),
                                "--eval-every", std::to_string(a.o.eval_every), "--threads", std::to_string(a.o.threads)};
  v.push_back("--engram-layers");
  for (std::int64_t l : a.o.engram_layers) v.push_back(std::to_string(l));
  if (a.json) v.push_back("--json");
  return v;
}

}  // namespace hashmem::cli
