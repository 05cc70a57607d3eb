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
void register_bench(CLI::App& app, Action& action);
void register_bench_engram(CLI::App* bench, Action& action);  // bench engram-hash
void register_bench_store(CLI::App* bench, Action& action);   // bench store, bench gather
void register_bench_model(CLI::App* bench, Action& action);   // bench train-step
void register_bench_attention(CLI::App* bench, Action& action);  // bench attention

void register_table(CLI::App& app, Action& action);
void register_train(CLI::App& app, Action& action);  // train, generate, lm compare
void register_data(CLI::App& app, Action& action);

// "1.50 GiB": bytes with a binary unit.
std::string human_bytes(double bytes);

// Prints `value` as pretty JSON on stdout.
void print_json(const nlohmann::ordered_json& value);

// Path of the running executable (for benchmarks that re-run it as a child).
std::string self_executable();

}  // namespace hashmem::cli
