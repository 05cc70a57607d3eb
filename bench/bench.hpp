// The benchmarks behind `hashmem bench <part>`: each figure is measured beside an anchor run in the same
// invocation (the Python originals, the machine's raw rates, plain io_uring reads), so results are ratios that
// survive a noisy machine. The CLI (apps/hashmem) registers these parts; the code lives here, beside the Python
// anchors and plot scripts, as the hashmem_bench library.
//
// Benchmarks use the public headers; where a figure is about an internal piece (the cache policies'
// simulators, huge-page buffers) they include it from src/ — the only target besides the library that may.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <nlohmann/json.hpp>

namespace hashmem::bench {

// What a parsed subcommand runs; returns the exit status.
using Action = std::function<int()>;

// Registers hashhop, engram-hash, store, gather, table-create, attention, cache and offload under `bench`.
void register_parts(CLI::App* bench, Action& action);

// One registration per part (bench/<part>.cpp).
void register_hashhop(CLI::App* bench, Action& action);
void register_engram_hash(CLI::App* bench, Action& action);
void register_store(CLI::App* bench, Action& action);  // bench store, bench gather
void register_attention(CLI::App* bench, Action& action);
void register_table_create(CLI::App* bench, Action& action);
void register_cache(CLI::App* bench, Action& action);  // bench/cache_study.cpp
void register_offload(CLI::App* bench, Action& action);  // bench/offload.cpp

// Prints `value` as pretty JSON on stdout (the --json output of every part).
void print_json(const nlohmann::ordered_json& value);
// `rows` (an array of flat objects) as CSV, the first row's keys as the header; floats with 6 significant digits.
std::string csv_text(const nlohmann::ordered_json& rows);

}  // namespace hashmem::bench
