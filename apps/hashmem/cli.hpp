// Shared plumbing of the hashmem CLI: each subcommand registers itself on the CLI11 app and stores the
// action to run after parsing; main() runs it and turns hashmem::Error into "hashmem: <message>", exit 1.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "hashmem/engram.hpp"

namespace hashmem::cli {

using Action = std::function<int()>;

void register_hashhop(CLI::App& app, Action& action);
void register_engram(CLI::App& app, Action& action);
void register_bench(CLI::App& app, Action& action);          // bench <part> (bench/)
void register_bench_model(CLI::App* bench, Action& action);  // bench train-step

void register_table(CLI::App& app, Action& action);
void register_train(CLI::App& app, Action& action);  // train, generate, lm compare
void register_data(CLI::App& app, Action& action);
void register_cluster(CLI::App& app, Action& action);  // cluster up / down / status (cmd_cluster.cpp)
void register_table_cluster(CLI::App* table, Action& action);  // table push / pull (cmd_cluster.cpp)

void register_engram_rows(CLI::App* engram, Action& action);  // engram rows (cmd_engram_rows.cpp)

// ---- shared by the engram commands (cmd_engram.cpp) ----

// The config of exactly one of --preset / --config (Error otherwise).
engram::Config config_of(const std::string& preset, const std::string& config_path);
// A JSON file of token ids: a list of equally long rows, or one flat list (one row). Sets batch and tokens.
std::vector<std::int64_t> read_token_rows(const std::string& path, std::int64_t& batch, std::int64_t& tokens);
// Hashes (or, with row_ids, table row ids: hash + the column's offset) of compressed ids [batch, tokens] in every
// layer of `layout`: [layer] → [batch][tokens][columns] flattened. The one hashing path of `engram hash` and
// `engram rows`.
std::vector<std::vector<std::int64_t>> hash_layers(const engram::Layout& layout, const std::vector<std::int64_t>& ids,
                                                   std::int64_t batch, std::int64_t tokens, bool row_ids);

// Prints `value` as pretty JSON on stdout.
void print_json(const nlohmann::ordered_json& value);

}  // namespace hashmem::cli
