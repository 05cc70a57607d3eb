// hashmem engram rows: text (or token ids) → token ids → compressed ids → the Engram table rows each position
// reads, per layer. The tokenizer is a Hugging Face tokenizer.json (byte-level BPE, hashmem/bpe.hpp); the rows are
// those `engram hash --row-ids` prints for the compressed ids (the same hash_layers path).
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "cli.hpp"
#include "hashmem/bpe.hpp"
#include "hashmem/clock.hpp"
#include "hashmem/data.hpp"
#include "hashmem/engram.hpp"
#include "hashmem/error.hpp"
#include "hashmem/mapped_file.hpp"

namespace hashmem::cli {
namespace {

// Positions the summary (no --json) shows.
constexpr std::size_t kShownPositions = 4;

struct RowsOptions {
  std::string preset, config, tokenizer, text, ids;
  std::int64_t compressed_vocab = 0;
  bool json = false;
};

// What the tokens came from, for the summary.
struct Tokens {
  std::vector<std::int64_t> ids;
  std::size_t text_bytes = 0;   // --text: bytes encoded
  double load_seconds = 0;      // --text: reading the tokenizer.json for the encoder
  double encode_seconds = 0;    // --text: encoding time (one thread)
};

Tokens tokens_of_text(const std::string& tokenizer_path, const std::string& text_path) {
  Tokens out;
  const double load_start = now_seconds();
  const bpe::Tokenizer tokenizer = bpe::Tokenizer::load(tokenizer_path);
  out.load_seconds = now_seconds() - load_start;
  const MappedFile file(text_path);
  bpe::Encoder encoder(tokenizer);
  out.text_bytes = file.view().size();
  const double start = now_seconds();
  std::vector<std::int32_t> ids;
  try {
    ids = encoder.encode(file.view());
  } catch (const Error& e) {
    throw Error("--text " + text_path + ": " + e.what());
  }
  out.encode_seconds = now_seconds() - start;
  out.ids.assign(ids.begin(), ids.end());
  return out;
}

// A token-id file (data.hpp, "HMTOKID1": its documents one after another) or a JSON list of ids.
Tokens tokens_of_ids(const std::string& path) {
  Tokens out;
  bool token_id_file = false;
  {
    const MappedFile file(path);
    token_id_file = file.view().substr(0, 8) == "HMTOKID1";
  }
  if (token_id_file) {
    const data::TokenIds file = data::read_token_ids(path);
    out.ids.assign(file.ids.begin(), file.ids.end());
    return out;
  }
  std::int64_t batch = 0, tokens = 0;
  out.ids = read_token_rows(path, batch, tokens);
  if (batch != 1) throw Error("--ids " + path + " holds " + std::to_string(batch) + " rows; give one sequence");
  return out;
}

void print_json_ids(std::string& out, const std::int64_t* ids, std::size_t n) {
  out += '[';
  for (std::size_t i = 0; i < n; ++i) {
    if (i) out += ',';
    out += std::to_string(ids[i]);
  }
  out += ']';
}

void print_rows_json(const Tokens& tokens, const std::vector<std::int64_t>& compressed, const engram::Layout& layout,
                     const std::vector<std::vector<std::int64_t>>& rows) {
  const auto columns = static_cast<std::size_t>(layout.config.columns());
  std::string out = "{\"tokens\":";
  print_json_ids(out, tokens.ids.data(), tokens.ids.size());
  out += ",\"compressed\":";
  print_json_ids(out, compressed.data(), compressed.size());
  out += ",\"layers\":{";
  for (std::size_t li = 0; li < layout.layers.size(); ++li) {
    out += (li ? ",\"" : "\"") + std::to_string(layout.layers[li].layer_id) + "\":[";
    for (std::size_t t = 0; t < compressed.size(); ++t) {
      if (t) out += ',';
      print_json_ids(out, rows[li].data() + t * columns, columns);
    }
    out += ']';
    if (out.size() > (std::size_t{1} << 24)) {  // keep the buffer small on long inputs
      std::fwrite(out.data(), 1, out.size(), stdout);
      out.clear();
    }
  }
  out += "}}\n";
  std::fwrite(out.data(), 1, out.size(), stdout);
}

void print_rows_summary(const RowsOptions& o, const Tokens& tokens, const engram::Compression& compression,
                        const std::vector<std::int64_t>& compressed, const engram::Layout& layout,
                        const std::vector<std::vector<std::int64_t>>& rows) {
  const engram::Config& config = layout.config;
  std::printf("tokenizer %s: %lld ids -> %lld compressed ids\n", o.tokenizer.c_str(),
              static_cast<long long>(compression.tokenizer_entries), static_cast<long long>(compression.compressed_vocab));
  if (!o.text.empty()) {
    const double s = std::max(tokens.encode_seconds, 1e-9);
    std::printf("text %s: %zu bytes -> %zu tokens, encoded in %.3f s on one thread (%.2f MB/s, %.0f tokens/s; "
                "the encoder read the tokenizer in %.2f s)\n",
                o.text.c_str(), tokens.text_bytes, tokens.ids.size(), tokens.encode_seconds,
                static_cast<double>(tokens.text_bytes) / s / 1e6, static_cast<double>(tokens.ids.size()) / s,
                tokens.load_seconds);
  } else {
    std::printf("ids %s: %zu tokens\n", o.ids.c_str(), tokens.ids.size());
  }
  std::printf("Engram: orders 2-%d x %d heads = %d row ids per position in each of layers", config.max_ngram,
              config.heads, config.columns());
  for (const auto& layer : layout.layers) std::printf(" %lld", static_cast<long long>(layer.layer_id));
  std::printf(" (compressed_vocab %lld)\n", static_cast<long long>(config.compressed_vocab));
  const auto columns = static_cast<std::size_t>(config.columns());
  const std::size_t shown = std::min<std::size_t>(compressed.size(), kShownPositions);
  for (std::size_t t = 0; t < shown; ++t) {
    std::printf("position %zu: token %lld, compressed %lld", t, static_cast<long long>(tokens.ids[t]),
                static_cast<long long>(compressed[t]));
    for (std::size_t li = 0; li < layout.layers.size(); ++li) {
      const std::int64_t* r = rows[li].data() + t * columns;
      std::printf("; layer %lld rows %lld %lld ... %lld", static_cast<long long>(layout.layers[li].layer_id),
                  static_cast<long long>(r[0]), static_cast<long long>(r[1]), static_cast<long long>(r[columns - 1]));
    }
    std::printf("\n");
  }
  if (compressed.size() > shown) std::printf("(%zu more positions; --json prints them all)\n", compressed.size() - shown);
}

int run_rows(const RowsOptions& o) {
  engram::Config config = config_of(o.preset, o.config);
  if (o.compressed_vocab) config.compressed_vocab = o.compressed_vocab;
  if (o.text.empty() == o.ids.empty()) throw Error("give exactly one of --text or --ids");
  const engram::Compression compression = engram::compress_tokenizer(o.tokenizer);
  if (compression.compressed_vocab > config.compressed_vocab) {
    throw Error("the tokenizer compresses to " + std::to_string(compression.compressed_vocab) +
                " ids but the config's compressed_vocab is " + std::to_string(config.compressed_vocab) +
                ": its larger ids cannot be hashed (give --compressed-vocab " +
                std::to_string(compression.compressed_vocab) + ")");
  }
  if (compression.compressed_vocab != config.compressed_vocab) {
    std::fprintf(stderr,
                 "hashmem: note: the tokenizer compresses to %lld ids; the multipliers are those of the config's "
                 "compressed_vocab %lld (--compressed-vocab changes them)\n",
                 static_cast<long long>(compression.compressed_vocab), static_cast<long long>(config.compressed_vocab));
  }
  const Tokens tokens = o.text.empty() ? tokens_of_ids(o.ids) : tokens_of_text(o.tokenizer, o.text);
  for (std::size_t i = 0; i < tokens.ids.size(); ++i) {
    if (tokens.ids[i] < 0 || tokens.ids[i] >= compression.tokenizer_entries) {
      throw Error("token id " + std::to_string(tokens.ids[i]) + " at position " + std::to_string(i) +
                  " is outside the tokenizer's ids [0, " + std::to_string(compression.tokenizer_entries) + ")");
    }
  }
  std::vector<std::int64_t> compressed(tokens.ids.size());
  engram::compress_ids(compression, tokens.ids.data(), tokens.ids.size(), compressed.data());
  const engram::Layout layout = engram::make_layout(config);
  // A position's rows depend only on it and the ids before it, so the summary hashes just the positions it shows
  // (all of them would take 8 bytes x columns x layers per token).
  std::vector<std::int64_t> hashed = compressed;
  if (!o.json) hashed.resize(std::min<std::size_t>(hashed.size(), kShownPositions));
  const auto length = static_cast<std::int64_t>(hashed.size());
  const std::vector<std::vector<std::int64_t>> rows =
      length ? hash_layers(layout, hashed, 1, length, /*row_ids=*/true)
             : std::vector<std::vector<std::int64_t>>(layout.layers.size());
  if (o.json) {
    print_rows_json(tokens, compressed, layout, rows);
  } else {
    print_rows_summary(o, tokens, compression, compressed, layout, rows);
  }
  return 0;
}

}  // namespace

void register_engram_rows(CLI::App* engram, Action& action) {
  auto o = std::make_shared<RowsOptions>();
  std::string presets;
  for (const auto& n : engram::preset_names()) presets += (presets.empty() ? "" : ", ") + n;
  CLI::App* rows = engram->add_subcommand(
      "rows",
      "Text or token ids -> token ids -> compressed ids -> the table row ids each position reads, per layer.\n"
      "--json prints {\"tokens\": [...], \"compressed\": [...], \"layers\": {\"<layer id>\": [[row ids of position "
      "t], ...]}}:\ntoken ids without BOS, the tokenizer's compressed ids, and per position the row ids (hash + "
      "column offset,\ncolumns order-major: 2-grams' heads, then 3-grams', ...), exactly what `engram hash "
      "--row-ids` gives for the\ncompressed ids. Without --json: counts, encoding speed and the first positions.");
  rows->add_option("--preset", o->preset, "Engram preset, one of: " + presets);
  rows->add_option("--config", o->config, "Engram JSON config file (instead of --preset)");
  rows->add_option("--compressed-vocab", o->compressed_vocab,
                   "Override the config's compressed vocabulary size (it sizes the hash multipliers)");
  rows->add_option("--tokenizer", o->tokenizer,
                   "Hugging Face tokenizer.json (byte-level BPE); with --ids a SentencePiece model also works")
      ->required();
  rows->add_option("--text", o->text, "UTF-8 text file to encode (as one text, without special tokens)");
  rows->add_option("--ids", o->ids,
                   "Token ids instead of text: a token-id file (HMTOKID1, its documents one after another) or a "
                   "JSON list of ids");
  rows->add_flag("--json", o->json, "Print everything as JSON");
  rows->callback([o, &action] { action = [o] { return run_rows(*o); }; });
}

}  // namespace hashmem::cli
