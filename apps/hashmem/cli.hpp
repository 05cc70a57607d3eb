// Shared plumbing of the hashmem CLI: each subcommand registers itself on the CLI11 app and stores the
// action to run after parsing; main() runs it and turns hashmem::Error into "hashmem: <message>", exit 1.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>

namespace hashmem::cli {

using Action = std::function<int()>;

void register_hashhop(CLI::App& app, Action& action);
void register_engram(CLI::App& app, Action& action);
void register_bench(CLI::App& app, Action& action);          // bench <part> (bench/)
void register_bench_model(CLI::App* bench, Action& action);  // bench train-step

void register_table(CLI::App& app, Action& action);
void register_train(CLI::App& app, Action& action);  // train, generate, lm compare
void register_data(CLI::App& app, Action& action);

// Prints `value` as pretty JSON on stdout.
void print_json(const nlohmann::ordered_json& value);

}  // namespace hashmem::cli
