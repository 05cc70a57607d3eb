// hashmem table create | info | verify | update
#include <cstdio>
#include <random>

#include "cli.hpp"
#include "hashmem/clock.hpp"
#include "hashmem/engram.hpp"
#include "hashmem/error.hpp"
#include "hashmem/human.hpp"
#include "hashmem/progress.hpp"
#include "hashmem/store.hpp"

namespace hashmem::cli {
namespace {

using ojson = nlohmann::ordered_json;

struct CreateArgs {
  std::string preset, config, dtype = "f32", init = "normal", out, tokenizer;
  std::int64_t dim = 0, compressed_vocab = 0;
  double stddev = 1.0;
  std::uint64_t seed = 0, checksum_block = 1 << 20;
  bool json = false;
};

ojson info_json(const store::TableInfo& info) {
  ojson tensors = ojson::array();
  for (const auto& t : info.tensors) {
    tensors.push_back({{"name", t.name}, {"layer", t.layer_id}, {"rows", t.rows}, {"offset", t.offset}, {"bytes", t.bytes}});
  }
  ojson meta = ojson::object();
  for (const auto& [k, v] : info.metadata) meta[k] = v;
  return {{"path", info.path},
          {"file_bytes", info.file_bytes},
          {"data_start", info.header_bytes},
          {"dtype", store::dtype_name(info.dtype)},
          {"dim", info.dim},
          {"row_bytes", info.row_bytes},
          {"rows", info.total_rows()},
          {"parameters", info.total_rows() * info.dim},
          {"checksum_block", info.checksum_block},
          {"tensors", tensors},
          {"metadata", meta}};
}

void print_info(const store::TableInfo& info) {
  std::printf("%s: %s, %lld rows × %lld values (%s, %zu B/row), %s, data at byte %llu\n", info.path.c_str(),
              human_bytes(static_cast<double>(info.file_bytes)).c_str(), static_cast<long long>(info.total_rows()),
              static_cast<long long>(info.dim), store::dtype_name(info.dtype), info.row_bytes,
              (std::to_string(info.total_rows() * info.dim) + " parameters").c_str(),
              static_cast<unsigned long long>(info.header_bytes));
  for (const auto& t : info.tensors) {
    std::printf("  %-10s %12lld rows  %12s  at byte %llu\n", t.name.c_str(), static_cast<long long>(t.rows),
                human_bytes(static_cast<double>(t.bytes)).c_str(), static_cast<unsigned long long>(t.offset));
  }
  std::printf("  engram: orders 2-%d, %d heads, compressed vocab %lld, seed %llu; checksums: xxh3 per %s\n",
              info.config.max_ngram, info.config.heads, static_cast<long long>(info.config.compressed_vocab),
              static_cast<unsigned long long>(info.config.seed),
              human_bytes(static_cast<double>(info.checksum_block)).c_str());
  auto it = info.metadata.find("compression_lookup_sha256");
  if (it != info.metadata.end()) std::printf("  compression lookup sha256: %s\n", it->second.c_str());
}

int run_create(const CreateArgs& a) {
  if (a.preset.empty() == a.config.empty()) throw Error("give exactly one of --preset or --config");
  store::CreateOptions o;
  o.config = a.preset.empty() ? engram::load_config(a.config) : engram::preset(a.preset);
  if (a.compressed_vocab) o.config.compressed_vocab = a.compressed_vocab;
  if (a.tokenizer.size()) {
    const engram::Compression c = engram::compress_tokenizer(a.tokenizer);
    o.config.compressed_vocab = c.compressed_vocab;
    o.compression_sha256 = engram::lookup_sha256(c);
  }
  o.dim = a.dim;
  o.config.head_dim = a.dim;
  o.dtype = store::parse_dtype(a.dtype);
  if (a.init != "normal" && a.init != "zeros") throw Error("--init must be normal or zeros, got '" + a.init + "'");
  o.init = a.init == "zeros" ? store::Init::zeros : store::Init::normal;
  o.stddev = static_cast<float>(a.stddev);
  o.seed = a.seed;
  o.checksum_block = a.checksum_block;
  const double t0 = now_seconds();
  const store::TableInfo info = store::create_table(o, a.out);
  const double seconds = now_seconds() - t0;
  if (a.json) {
    ojson j = info_json(info);
    j["seconds"] = seconds;
    print_json(j);
  } else {
    print_info(info);
    std::printf("written in %.2f s (%.0f MB/s)\n", seconds, static_cast<double>(info.file_bytes) / seconds / 1e6);
  }
  return 0;
}

struct UpdateArgs {
  std::string file, tier = "dram", policy = "s3fifo", optimizer = "sgd";
  std::int64_t steps = 10, rows = 1024, checkpoint_every = 0;
  std::uint64_t seed = 0, dram_budget = 0;
  double lr = 0.01;
  bool json = false;
};

// Random SGD updates with periodic checkpoints: a smoke test of the write path (and the victim of the crash
// test, which kills it mid-checkpoint).
int run_update(const UpdateArgs& a) {
  store::OpenOptions o;
  o.tier = store::parse_tier(a.tier);
  o.writable = true;
  o.dram_budget = a.dram_budget;
  o.policy = store::parse_policy(a.policy);
  if (a.steps < 0 || a.rows < 1) throw Error("--steps must be >= 0 and --rows >= 1");
  auto table = store::Table::open(a.file, o);
  const auto& info = table->info();
  std::mt19937_64 rng(a.seed);
  std::normal_distribution<float> normal;
  std::vector<std::int64_t> ids(static_cast<std::size_t>(a.rows));
  std::vector<float> grads(static_cast<std::size_t>(a.rows * info.dim));
  store::UpdateOptions u;
  u.lr = static_cast<float>(a.lr);
  if (a.optimizer != "sgd" && a.optimizer != "adam") throw Error("--optimizer must be sgd or adam, got '" + a.optimizer + "'");
  u.optimizer = a.optimizer == "adam" ? store::Optimizer::adam : store::Optimizer::sgd;
  std::int64_t checkpoints = 0;
  Progress progress("update " + a.file, static_cast<std::uint64_t>(a.steps));
  for (std::int64_t step = 0; step < a.steps; ++step) {
    const int tensor = static_cast<int>(rng() % info.tensors.size());
    for (auto& id : ids) id = static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(info.tensors[static_cast<std::size_t>(tensor)].rows));
    for (auto& g : grads) g = normal(rng);
    u.step = step + 1;
    table->apply_rows(tensor, ids.data(), ids.size(), grads.data(), u);
    if (a.checkpoint_every > 0 && (step + 1) % a.checkpoint_every == 0) {
      table->checkpoint();
      ++checkpoints;
    }
    progress.update(static_cast<std::uint64_t>(step + 1));
  }
  table->checkpoint();
  ++checkpoints;
  progress.finish();
  const store::Stats s = table->stats();
  if (a.json) {
    print_json({{"steps", a.steps}, {"rows_per_step", a.rows}, {"checkpoints", checkpoints},
                {"writes", s.writes}, {"bytes_written", s.bytes_written}});
  } else {
    std::printf("%lld steps of %lld rows applied, %lld checkpoints\n", static_cast<long long>(a.steps),
                static_cast<long long>(a.rows), static_cast<long long>(checkpoints));
  }
  return 0;
}

}  // namespace

void register_table(CLI::App& app, Action& action) {
  CLI::App* table = app.add_subcommand("table", "Engram table files (safetensors): create, inspect, verify, update");
  table->require_subcommand(1);
  register_table_cluster(table, action);  // push, pull (cmd_cluster.cpp)

  auto create = std::make_shared<CreateArgs>();
  CLI::App* c = table->add_subcommand("create", "Create a table for an Engram config (atomically: temp, fsync, rename)");
  c->add_option("--preset", create->preset, "Engram preset (deepseek-demo, deepseek-v4.1, paper-27b, paper-40b)");
  c->add_option("--config", create->config, "Engram config JSON (keys of hash-cases.json)");
  c->add_option("--dim", create->dim, "Values per row (one head's slice)")->required();
  c->add_option("--dtype", create->dtype, "Row dtype: f32, bf16, fp8 (e4m3 + ue8m0 scale per 32)")->capture_default_str();
  c->add_option("--init", create->init, "normal or zeros")->capture_default_str();
  c->add_option("--std", create->stddev, "Standard deviation of the normal init")->capture_default_str();
  c->add_option("--seed", create->seed, "Seed of the normal init")->capture_default_str();
  c->add_option("--compressed-vocab", create->compressed_vocab, "Override the config's compressed vocab size");
  c->add_option("--tokenizer", create->tokenizer, "Tokenizer to compress: sets compressed vocab and records its lookup hash");
  c->add_option("--checksum-block", create->checksum_block, "Bytes per checksummed block (multiple of 4096)")->capture_default_str();
  c->add_option("--out", create->out, "Output table file")->required();
  c->add_flag("--json", create->json, "Print the table's description as JSON");
  c->callback([&action, create] { action = [create] { return run_create(*create); }; });

  auto info_file = std::make_shared<std::string>();
  auto info_json_flag = std::make_shared<bool>(false);
  CLI::App* i = table->add_subcommand("info", "Describe a table: tensors, rows, dtype, Engram constants");
  i->add_option("file", *info_file, "Table file")->required();
  i->add_flag("--json", *info_json_flag, "JSON output");
  i->callback([&action, info_file, info_json_flag] {
    action = [info_file, info_json_flag] {
      const store::TableInfo info = store::read_info(*info_file);
      if (*info_json_flag) {
        print_json(info_json(info));
      } else {
        print_info(info);
      }
      return 0;
    };
  });

  auto verify_file = std::make_shared<std::string>();
  auto verify_json = std::make_shared<bool>(false);
  CLI::App* v = table->add_subcommand("verify", "Check every checksum; exit 1 if anything is damaged");
  v->add_option("file", *verify_file, "Table file")->required();
  v->add_flag("--json", *verify_json, "JSON output");
  v->callback([&action, verify_file, verify_json] {
    action = [verify_file, verify_json] {
      const double t0 = now_seconds();
      const std::vector<std::string> damaged = store::verify_table(*verify_file, true);
      const double seconds = now_seconds() - t0;
      if (*verify_json) {
        print_json({{"path", *verify_file}, {"ok", damaged.empty()}, {"damaged", damaged}, {"seconds", seconds}});
      } else if (damaged.empty()) {
        std::printf("%s: ok (every checksum matches, %.2f s)\n", verify_file->c_str(), seconds);
      } else {
        std::fprintf(stderr, "hashmem: table '%s' is damaged in %zu place(s):\n", verify_file->c_str(), damaged.size());
        for (const auto& d : damaged) std::fprintf(stderr, "  %s\n", d.c_str());
      }
      return damaged.empty() ? 0 : 1;
    };
  });

  auto update = std::make_shared<UpdateArgs>();
  CLI::App* u = table->add_subcommand("update", "Apply random SGD row updates and checkpoint (exercises the write path)");
  u->add_option("file", update->file, "Table file")->required();
  u->add_option("--tier", update->tier, "dram or ssd")->capture_default_str();
  u->add_option("--dram-budget", update->dram_budget, "SSD tier: DRAM cache bytes")->capture_default_str();
  u->add_option("--policy", update->policy, "SSD tier cache policy: lru, s3fifo, tinylfu")->capture_default_str();
  u->add_option("--steps", update->steps, "Update steps")->capture_default_str();
  u->add_option("--rows", update->rows, "Rows per step")->capture_default_str();
  u->add_option("--lr", update->lr, "Learning rate")->capture_default_str();
  u->add_option("--optimizer", update->optimizer, "sgd or adam (moments in FILE.adam, same tier)")->capture_default_str();
  u->add_option("--seed", update->seed, "Seed of the random ids and gradients")->capture_default_str();
  u->add_option("--checkpoint-every", update->checkpoint_every, "Checkpoint every K steps (and at the end)");
  u->add_flag("--json", update->json, "JSON output");
  u->callback([&action, update] { action = [update] { return run_update(*update); }; });
}

}  // namespace hashmem::cli
