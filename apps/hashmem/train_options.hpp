// The options of `hashmem train`, shared by the CLI (which prepares the tokenizer compression) and the
// hashmem-train executable it runs (the libtorch process, which must not load libsentencepiece: its
// protobuf-lite and libtorch's protobuf crash when loaded together). No torch headers here.
#pragma once

#include <CLI/CLI.hpp>
#include <string>
#include <vector>

#include "hashmem/model.hpp"

namespace hashmem::cli {

struct TrainArgs {
  model::TrainOptions o;
  std::string engram = "on";
  bool json = false;
};

void add_train_options(CLI::App* app, TrainArgs& a);
// The same options as arguments for hashmem-train.
std::vector<std::string> train_arguments(const TrainArgs& a);

}  // namespace hashmem::cli
