// hashmem engram layout | hash | compress | check-layer (and rows: cmd_engram_rows.cpp)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <sstream>

#include "cli.hpp"
#include "hashmem/engram.hpp"
#include "hashmem/engram_layer.hpp"
#include "hashmem/error.hpp"
#include "hashmem/human.hpp"
#include "hashmem/output_file.hpp"

namespace hashmem::cli {

engram::Config config_of(const std::string& preset, const std::string& config_path) {
  if (preset.empty() == config_path.empty()) throw Error("give exactly one of --preset or --config");
  return preset.empty() ? engram::load_config(config_path) : engram::preset(preset);
}

namespace {

using engram::Config;
using engram::Layout;
using ojson = nlohmann::ordered_json;

struct LayoutOptions {
  std::string preset, config, dtype = "f32";
  std::int64_t compressed_vocab = 0, head_dim = 0;
  bool json = false;
};

// Bytes of one table row of `head_dim` values: fp8 e4m3 carries one ue8m0 scale byte per 32 values.
double row_bytes(const std::string& dtype, std::int64_t head_dim) {
  if (dtype == "f32") return 4.0 * head_dim;
  if (dtype == "bf16") return 2.0 * head_dim;
  if (dtype == "fp8") return static_cast<double>(head_dim + (head_dim + 31) / 32);
  throw Error("--dtype must be f32, bf16 or fp8, got '" + dtype + "'");
}

int run_layout(const LayoutOptions& o) {
  Config config = config_of(o.preset, o.config);
  if (o.compressed_vocab) config.compressed_vocab = o.compressed_vocab;
  if (o.head_dim) config.head_dim = o.head_dim;
  const Layout layout = engram::make_layout(config);
  const double per_row = row_bytes(o.dtype, config.head_dim);
  ojson layers = ojson::array();
  std::int64_t total_rows = 0;
  for (const auto& layer : layout.layers) {
    total_rows += layer.rows;
    layers.push_back({{"layer", layer.layer_id},
                      {"multipliers", layer.multipliers},
                      {"primes", layer.primes},
                      {"offsets", layer.offsets},
                      {"rows", layer.rows},
                      {"parameters", layer.rows * config.head_dim},
                      {"bytes", per_row * static_cast<double>(layer.rows)}});
  }
  if (o.json) {
    print_json({{"vocab_per_order", config.vocab_per_order},
                {"max_ngram", config.max_ngram},
                {"heads", config.heads},
                {"pad_id", config.pad_id},
                {"seed", config.seed},
                {"compressed_vocab", config.compressed_vocab},
                {"head_dim", config.head_dim},
                {"dtype", o.dtype},
                {"layers", layers},
                {"total_rows", total_rows},
                {"total_parameters", total_rows * config.head_dim},
                {"total_bytes", per_row * static_cast<double>(total_rows)}});
    return 0;
  }
  std::printf("Engram layout: orders 2-%d, %d heads per order, compressed vocab %lld, pad %lld, seed %llu, "
              "head_dim %lld, %s\n",
              config.max_ngram, config.heads, static_cast<long long>(config.compressed_vocab),
              static_cast<long long>(config.pad_id), static_cast<unsigned long long>(config.seed),
              static_cast<long long>(config.head_dim), o.dtype.c_str());
  for (const auto& layer : layout.layers) {
    std::printf("layer %lld: %lld rows, %lld parameters, %s\n  multipliers:", static_cast<long long>(layer.layer_id),
                static_cast<long long>(layer.rows), static_cast<long long>(layer.rows * config.head_dim),
                human_bytes(per_row * static_cast<double>(layer.rows)).c_str());
    for (auto m : layer.multipliers) std::printf(" %lld", static_cast<long long>(m));
    std::printf("\n");
    for (std::size_t n = 0; n < layer.primes.size(); ++n) {
      std::printf("  %zu-gram primes:", n + 2);
      for (auto p : layer.primes[n]) std::printf(" %lld", static_cast<long long>(p));
      std::printf("\n  %zu-gram offsets:", n + 2);
      for (std::size_t j = 0; j < layer.primes[n].size(); ++j) {
        std::printf(" %lld", static_cast<long long>(layer.offsets[n * layer.primes[n].size() + j]));
      }
      std::printf("\n");
    }
  }
  std::printf("total: %lld rows, %lld parameters, %s\n", static_cast<long long>(total_rows),
              static_cast<long long>(total_rows * config.head_dim),
              human_bytes(per_row * static_cast<double>(total_rows)).c_str());
  return 0;
}

}  // namespace

// A JSON list of equally long rows of integer ids, or one flat list of ids (a single row).
std::vector<std::int64_t> read_token_rows(const std::string& path, std::int64_t& batch, std::int64_t& tokens) {
  std::ifstream in(path);
  if (!in) throw Error("cannot read tokens '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(ss.str(), nullptr, false);
  if (j.is_discarded()) throw Error("tokens '" + path + "' are not valid JSON");
  if (!j.is_array() || j.empty()) throw Error("tokens '" + path + "' must be a non-empty JSON list of rows of ids");
  if (!j[0].is_array()) j = nlohmann::json::array({std::move(j)});  // a flat list is one row
  batch = static_cast<std::int64_t>(j.size());
  tokens = -1;
  std::vector<std::int64_t> ids;
  for (std::size_t b = 0; b < j.size(); ++b) {
    const auto& row = j[b];
    if (!row.is_array()) throw Error("tokens '" + path + "': row " + std::to_string(b) + " is not a list");
    if (tokens >= 0 && static_cast<std::int64_t>(row.size()) != tokens) {
      throw Error("tokens '" + path + "': row " + std::to_string(b) + " has " + std::to_string(row.size()) +
                  " ids, row 0 has " + std::to_string(tokens) + " (rows must have equal length)");
    }
    tokens = static_cast<std::int64_t>(row.size());
    for (const auto& v : row) {
      if (!v.is_number_integer()) throw Error("tokens '" + path + "': row " + std::to_string(b) + " holds a non-integer");
      ids.push_back(v.get<std::int64_t>());
    }
  }
  return ids;
}

std::vector<std::vector<std::int64_t>> hash_layers(const Layout& layout, const std::vector<std::int64_t>& ids,
                                                   std::int64_t batch, std::int64_t tokens, bool row_ids) {
  std::vector<std::vector<std::int64_t>> out(layout.layers.size());
  for (std::size_t li = 0; li < layout.layers.size(); ++li) {
    out[li].resize(ids.size() * static_cast<std::size_t>(layout.config.columns()));
    engram::hash_batch(layout, li, ids.data(), batch, tokens, out[li].data(), row_ids, 0);
  }
  return out;
}

namespace {

int run_hash(const std::string& config_path, const std::string& tokens_path, bool row_ids, const std::string& out_path) {
  const Layout layout = engram::make_layout(engram::load_config(config_path));
  std::int64_t batch = 0, tokens = 0;
  const std::vector<std::int64_t> ids = read_token_rows(tokens_path, batch, tokens);
  const std::int64_t columns = layout.config.columns();
  const std::vector<std::vector<std::int64_t>> hashed = hash_layers(layout, ids, batch, tokens, row_ids);
  ojson layers = ojson::object();
  for (std::size_t li = 0; li < layout.layers.size(); ++li) {
    const auto& layer = layout.layers[li];
    ojson hashes = ojson::array();
    for (std::int64_t b = 0; b < batch; ++b) {
      ojson row = ojson::array();
      for (std::int64_t t = 0; t < tokens; ++t) {
        const auto* p = hashed[li].data() + (b * tokens + t) * columns;
        row.push_back(std::vector<std::int64_t>(p, p + columns));
      }
      hashes.push_back(std::move(row));
    }
    layers[std::to_string(layer.layer_id)] = {{"multipliers", layer.multipliers},
                                              {"primes", layer.primes},
                                              {"rows", layer.rows},
                                              {row_ids ? "row_ids" : "hashes", std::move(hashes)}};
  }
  const std::string text = ojson{{"layers", std::move(layers)}}.dump() + "\n";
  if (out_path == "-") {
    std::fwrite(text.data(), 1, text.size(), stdout);
  } else {
    write_file_atomically(out_path, text);
  }
  return 0;
}

struct CompressOptions {
  std::string tokenizer, out;
  bool json = false;
};

// Summary on stdout (text or --json); the whole lookup, with each compressed id's key, to --out.
int run_compress(const CompressOptions& o) {
  const engram::Compression c = engram::compress_tokenizer(o.tokenizer);
  const std::string sha = engram::lookup_sha256(c);
  if (!o.out.empty()) write_file_atomically(o.out, engram::compression_json(c));
  ojson sample = ojson::object();
  for (std::int64_t id : {std::int64_t{0}, std::int64_t{1}, std::int64_t{2}, std::int64_t{100}, std::int64_t{1000},
                          std::int64_t{50000}, std::int64_t{127999}, std::int64_t{128000}, c.tokenizer_entries - 1}) {
    if (id >= 0 && id < c.tokenizer_entries) sample[std::to_string(id)] = c.lookup[static_cast<std::size_t>(id)];
  }
  if (o.json) {
    print_json({{"tokenizer", o.tokenizer},
                {"tokenizer_entries", c.tokenizer_entries},
                {"compressed_vocab", c.compressed_vocab},
                {"lookup_sha256", sha},
                {"sample", sample}});
    return 0;
  }
  std::printf("%s: %lld tokenizer entries -> %lld compressed ids (%.1f%% fewer)\nlookup sha256: %s\n",
              o.tokenizer.c_str(), static_cast<long long>(c.tokenizer_entries),
              static_cast<long long>(c.compressed_vocab),
              100.0 * (1.0 - static_cast<double>(c.compressed_vocab) / static_cast<double>(c.tokenizer_entries)),
              sha.c_str());
  if (!o.out.empty()) std::printf("lookup written to %s\n", o.out.c_str());
  return 0;
}

// Our float32 forward on a case of ../shared/reference/engram_layer_ref.py against its float64 expected output.
int run_check_layer(const std::string& path, bool json) {
  const engram::LayerCase c = engram::load_layer_case(path);
  if (c.expected.empty()) throw Error("layer case '" + path + "' has no expected.output to check against");
  auto to_f32 = [](const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); };
  engram::LayerWeights<float> w{to_f32(c.weights.key_w),   to_f32(c.weights.key_b), to_f32(c.weights.value_w),
                                to_f32(c.weights.value_b), to_f32(c.weights.norm1), to_f32(c.weights.norm2),
                                to_f32(c.weights.conv_norm), to_f32(c.weights.conv_w)};
  const std::vector<float> h = to_f32(c.hidden), e = to_f32(c.embeddings);
  std::vector<float> out(c.expected.size());
  engram::layer_forward<float>(c.dims, w, h.data(), e.data(), out.data(), nullptr);
  double max_abs = 0, max_rel = 0, worst_ratio = 0;
  for (std::size_t i = 0; i < out.size(); ++i) {
    const double err = std::fabs(static_cast<double>(out[i]) - c.expected[i]);
    max_abs = std::max(max_abs, err);
    max_rel = std::max(max_rel, err / std::max(std::fabs(c.expected[i]), 1e-12));
    worst_ratio = std::max(worst_ratio, err / (1e-4 * (1 + std::fabs(c.expected[i]))));
  }
  const bool pass = worst_ratio <= 1.0;
  const auto& d = c.dims;
  if (json) {
    print_json({{"case", path},
                {"dims", {{"batch", d.batch}, {"seq", d.seq}, {"hc_mult", d.hc_mult}, {"hidden", d.hidden},
                          {"engram_dim", d.engram_dim}, {"kernel", d.kernel}, {"dilation", d.dilation}}},
                {"max_abs_error", max_abs},
                {"max_rel_error", max_rel},
                {"tolerance", "1e-4 * (1 + |expected|)"},
                {"pass", pass}});
  } else {
    std::printf("%s: B %lld, T %lld, G %lld, H %lld, E %lld, kernel %lld, dilation %lld: max abs error %.3g, max rel "
                "error %.3g -> %s\n",
                path.c_str(), static_cast<long long>(d.batch), static_cast<long long>(d.seq),
                static_cast<long long>(d.hc_mult), static_cast<long long>(d.hidden), static_cast<long long>(d.engram_dim),
                static_cast<long long>(d.kernel), static_cast<long long>(d.dilation), max_abs, max_rel,
                pass ? "pass" : "FAIL (above 1e-4 * (1 + |expected|))");
  }
  return pass ? 0 : 1;
}

}  // namespace

void register_engram(CLI::App& app, Action& action) {
  CLI::App* engram = app.add_subcommand("engram", "Engram addressing: layouts, n-gram hashing, tokenizer compression");
  engram->require_subcommand(1);

  auto lo = std::make_shared<LayoutOptions>();
  std::string presets;
  for (const auto& n : engram::preset_names()) presets += (presets.empty() ? "" : ", ") + n;
  CLI::App* layout = engram->add_subcommand("layout", "Multipliers, primes, offsets, rows and table size per layer");
  layout->add_option("--preset", lo->preset, "One of: " + presets);
  layout->add_option("--config", lo->config, "JSON config file (keys of hash-cases.json, optional preset)");
  layout->add_option("--compressed-vocab", lo->compressed_vocab, "Override the compressed vocabulary size");
  layout->add_option("--head-dim", lo->head_dim, "Override the row width per head");
  layout->add_option("--dtype", lo->dtype, "Row dtype for the size: f32, bf16 or fp8 (e4m3 + ue8m0 scale per 32)")
      ->capture_default_str();
  layout->add_flag("--json", lo->json, "Print as JSON");
  layout->callback([lo, &action] { action = [lo] { return run_layout(*lo); }; });

  auto config = std::make_shared<std::string>();
  auto tokens = std::make_shared<std::string>();
  auto out = std::make_shared<std::string>("-");
  auto row_ids = std::make_shared<bool>(false);
  CLI::App* hash = engram->add_subcommand(
      "hash", "Hash compressed ids: {\"layers\": {id: {multipliers, primes, rows, hashes [B][T][columns]}}}");
  hash->add_option("--config", *config, "JSON config (keys of hash-cases.json)")->required();
  hash->add_option("--tokens", *tokens, "JSON list of rows of compressed ids (or one flat list: one row)")->required();
  hash->add_flag("--row-ids", *row_ids, "Add each column's offset: table row ids instead of hashes");
  hash->add_option("--out", *out, "Output file, written atomically ('-' = stdout)")->capture_default_str();
  // Bound to nothing: a flag variable would have to outlive this function (the callback does not use it).
  hash->add_flag("--json")->description("Output is always JSON (accepted for uniformity)");
  hash->callback([=, &action] { action = [=] { return run_hash(*config, *tokens, *row_ids, *out); }; });

  auto co = std::make_shared<CompressOptions>();
  CLI::App* compress = engram->add_subcommand(
      "compress", "Compress a tokenizer's vocabulary (Hugging Face byte-level BPE tokenizer.json or SentencePiece model)");
  compress->add_option("--tokenizer", co->tokenizer, "tokenizer.json or SentencePiece .model")->required();
  compress->add_option("--out", co->out, "Write the lookup (and each compressed id's key) as JSON, atomically");
  compress->add_flag("--json", co->json, "Print the summary as JSON");
  compress->callback([co, &action] { action = [co] { return run_compress(*co); }; });

  auto layer_case = std::make_shared<std::string>();
  auto layer_json = std::make_shared<bool>(false);
  CLI::App* check = engram->add_subcommand(
      "check-layer", "Run our float32 Engram layer forward on a reference case; exit 0 iff |error| <= 1e-4(1+|expected|)");
  check->add_option("case", *layer_case, "Case JSON written by shared/reference/engram_layer_ref.py")->required();
  check->add_flag("--json", *layer_json, "JSON output");
  check->callback([=, &action] { action = [=] { return run_check_layer(*layer_case, *layer_json); }; });

  register_engram_rows(engram, action);
}

}  // namespace hashmem::cli
