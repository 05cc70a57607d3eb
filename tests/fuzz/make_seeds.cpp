// Writes the seed corpora of the fuzz targets (tests/fuzz/<target>/): small valid files made by the library's own
// writers, as the CLI would make them. Built beside the targets (fuzz_make_seeds); the committed seeds came from
//   build/fuzz/bin/fuzz_make_seeds tests/fuzz
// Deterministic: the same library writes the same bytes. Not a fuzz target (it has a main).
#include <sentencepiece_trainer.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <unordered_map>
#include <vector>

#include "hashmem/attention.hpp"
#include "hashmem/data.hpp"
#include "hashmem/engram.hpp"
#include "hashmem/error.hpp"
#include "hashmem/hashhop.hpp"
#include "hashmem/model.hpp"
#include "hashmem/output_file.hpp"
#include "hashmem/safetensors.hpp"
#include "hashmem/store.hpp"
#include "model/run_files.hpp"
#include "../bpe_test_tokenizers.hpp"

namespace {

namespace fs = std::filesystem;
using namespace hashmem;

std::string root;

std::string seed_path(const std::string& target, const std::string& name) {
  fs::create_directories(root + "/" + target);
  return root + "/" + target + "/" + name;
}

void put(const std::string& target, const std::string& name, const std::string& bytes) {
  write_file_atomically(seed_path(target, name), bytes);
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The hand-made byte-level BPE tokenizer of tests/test_engram_compress.cpp, and a variant with a Sequence decoder.
const char* kSmallTokenizer = R"({
  "version": "1.0",
  "added_tokens": [{"id": 9, "content": "<s>", "special": true}, {"id": 13, "content": "<|EOT|>", "special": true}],
  "normalizer": null,
  "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
  "model": {"type": "BPE", "merges": [], "vocab": {
    "hello": 0, "\u0120hello": 1, "Hello": 2, "\u0120HELLO": 3, "\u00c3": 4, "\u00c3\u00a9": 5, "e": 6,
    "\u0120": 7, "\u010a\u010a": 8, "<s>": 9, "\u00ef\u00bc\u00a8": 11, "h": 12}}
}
)";
const char* kSequenceTokenizer = R"({"added_tokens": [{"id": 0, "content": "<|begin|>"}],
 "decoder": {"type": "Sequence", "decoders": [{"type": "Replace"}, {"type": "ByteLevel"}]},
 "model": {"type": "BPE", "vocab": {"a": 1, "\u0120a": 2, "\u0120\u0120": 3, "\u00e2\u0122\u013b": 4}}}
)";

const char* kText =
    "In the beginning God created the heaven and the earth.\n"
    "And the earth was without form, and void; and darkness was upon the face of the deep.\n"
    "The Fulton County Grand Jury said Friday an investigation of Atlanta's recent primary election produced "
    "no evidence that any irregularities took place.\n"
    "The os module provides a portable way of using operating system dependent functionality: 42, 3.14.\n";

// A SentencePiece model without a normalisation table (identity), so it stays a few KB.
std::string spm_model(const std::string& type, int vocab, bool byte_fallback) {
  std::unordered_map<std::string, std::string> kwargs = {
      {"model_type", type},     {"vocab_size", std::to_string(vocab)}, {"normalization_rule_name", "identity"},
      {"minloglevel", "2"},     {"byte_fallback", byte_fallback ? "true" : "false"},
      {"character_coverage", "1.0"}, {"num_threads", "1"}, {"shuffle_input_sentence", "false"},
      {"hard_vocab_limit", "false"}};
  std::vector<std::string> lines;
  std::string text = kText;
  for (int copy = 0; copy < 4; ++copy) text += kText;  // enough pairs for a few merges
  class Lines : public sentencepiece::SentenceIterator {
   public:
    explicit Lines(const std::string& t) : t_(t) { Next(); }
    bool done() const override { return done_; }
    void Next() override {
      if (pos_ >= t_.size()) {
        done_ = true;
        return;
      }
      std::size_t eol = t_.find('\n', pos_);
      if (eol == std::string::npos) eol = t_.size();
      value_ = t_.substr(pos_, eol - pos_);
      pos_ = eol + 1;
    }
    const std::string& value() const override { return value_; }
    sentencepiece::util::Status status() const override { return {}; }

   private:
    const std::string& t_;
    std::size_t pos_ = 0;
    std::string value_;
    bool done_ = false;
  } it(text);
  std::string model;
  const auto status = sentencepiece::SentencePieceTrainer::Train(kwargs, &it, &model);
  if (!status.ok()) throw Error("SentencePiece training failed: " + status.ToString());
  return model;
}

engram::Config tiny_engram(int max_ngram, int heads, std::vector<std::int64_t> layers) {
  engram::Config c;
  c.vocab_per_order.assign(static_cast<std::size_t>(max_ngram - 1), 5);
  c.max_ngram = max_ngram;
  c.heads = heads;
  c.layers = std::move(layers);
  c.compressed_vocab = 10;
  c.head_dim = 4;
  return c;
}

void seed_hf_tokenizer() {
  put("hf_tokenizer", "small.json", kSmallTokenizer);
  put("hf_tokenizer", "sequence.json", kSequenceTokenizer);
}

// bpe_tokenizer seeds: a tokenizer.json, a NUL byte, a text. The hand-made tokenizer of the encoder's tests, one of
// DeepSeek-V3's shape (its pre-tokenizer regexes and added-token style over a vocabulary of the 256 byte characters
// and a few merges), and one of GPT-2's shape (ByteLevel with its own regex, a normalizer, byte fallback).
nlohmann::json byte_vocab_tokenizer() {
  nlohmann::json j = nlohmann::json::parse(R"({"added_tokens": [], "normalizer": null, "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "vocab": {}, "merges": []}})");
  std::string chars[256];
  for (int b = 0, next = 256; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    const int c = printable ? b : next++;
    chars[b] = c < 0x80 ? std::string(1, static_cast<char>(c))
                        : std::string{static_cast<char>(0xC0 | (c >> 6)), static_cast<char>(0x80 | (c & 0x3F))};
    j["model"]["vocab"][chars[b]] = b;
  }
  int id = 256;
  auto merge = [&](const std::string& a, const std::string& b) {
    j["model"]["merges"].push_back(a + " " + b);
    if (!j["model"]["vocab"].contains(a + b)) j["model"]["vocab"][a + b] = id++;
  };
  const std::string space = chars[0x20];
  merge(space, "t");
  merge("h", "e");
  merge(space + "t", "he");
  merge("i", "n");
  merge(space, space);
  merge("1", "2");
  merge(chars[0xE4], chars[0xBD]);
  return j;
}

void seed_bpe_tokenizer() {
  auto put_seed = [](const std::string& name, const nlohmann::json& tokenizer, const std::string& text) {
    put("bpe_tokenizer", name, tokenizer.dump() + std::string(1, '\0') + text);
  };
  put_seed("small.bin", testing::small_tokenizer(), "abc bca aab  x12 <s> c <x> c\n");

  nlohmann::json deepseek = byte_vocab_tokenizer();
  deepseek["pre_tokenizer"] = nlohmann::json::parse(R"({"type": "Sequence", "pretokenizers": [
    {"type": "Split", "pattern": {"Regex": "\\p{N}{1,3}"}, "behavior": "Isolated", "invert": false},
    {"type": "Split", "pattern": {"Regex": "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+"}, "behavior": "Isolated",
     "invert": false},
    {"type": "Split", "pattern": {"Regex": "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"},
     "behavior": "Isolated", "invert": false},
    {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]})");
  deepseek["added_tokens"] = nlohmann::json::parse(R"([
    {"id": 300, "content": "<\uff5cbegin\u2581of\u2581sentence\uff5c>", "special": true, "lstrip": false, "rstrip": false},
    {"id": 301, "content": "<\uff5cUser\uff5c>", "special": false, "normalized": true}])");
  put_seed("deepseek-shape.bin", deepseek,
           "<\uff5cbegin\u2581of\u2581sentence\uff5c>The 12345 \u4f60\u597d, world!\r\n\tdon't \U0001F44D\U0001F3FD"
           "  \u00e9e\u0301 <\uff5cUser\uff5c>x");

  nlohmann::json gpt2 = byte_vocab_tokenizer();
  gpt2["pre_tokenizer"] = nlohmann::json::parse(R"({"type": "ByteLevel", "add_prefix_space": true, "use_regex": true})");
  gpt2["normalizer"] = nlohmann::json::parse(R"({"type": "Sequence", "normalizers": [{"type": "NFKC"}]})");
  gpt2["model"]["byte_fallback"] = true;
  gpt2["model"]["ignore_merges"] = true;
  gpt2["added_tokens"] = nlohmann::json::parse(R"([{"id": 400, "content": "<|endoftext|>", "lstrip": true, "rstrip": true}])");
  put_seed("gpt2-shape.bin", gpt2, "the in 12 \uff21  <|endoftext|>  the'll\n\n");
}

void seed_sentencepiece() {
  put("sentencepiece", "bpe-bytes.model", spm_model("bpe", 300, true));
  put("sentencepiece", "unigram.model", spm_model("unigram", 60, false));
}

void seed_safetensors() {
  const std::vector<float> f = {1.5f, -2.0f, 0.0f, 3.25f, 1e-3f, -7.0f};
  const std::vector<std::int64_t> i = {-1, 0, 1ll << 40};
  const std::vector<std::uint32_t> u = {7, 0, 4000000000u, 1};
  const std::vector<std::uint8_t> b = {0, 255, 17};
  write_safetensors(seed_path("safetensors", "four-dtypes.safetensors"),
                    {{"w", "F32", {2, 3}, f.data()}, {"ids", "I64", {3}, i.data()}, {"counts", "U32", {2, 2}, u.data()},
                     {"bytes", "U8", {3}, b.data()}, {"empty", "F32", {0, 4}, nullptr}, {"scalar", "F32", {}, f.data()}},
                    {{"format", "hashmem-weights"}});
  write_safetensors(seed_path("safetensors", "profile.safetensors"), {{"counts.1", "U32", {4}, u.data()}},
                    {{"format", "hashmem-row-profile"}});
}

void seed_attention_inputs() {
  attention::Inputs in;
  in.heads = 2, in.tokens = 3, in.dim = 4;
  for (int i = 0; i < 24; ++i) {
    in.q.push_back(0.1f * i);
    in.k.push_back(-0.05f * i);
    in.v.push_back(static_cast<float>(i % 5));
  }
  attention::save_inputs(seed_path("attention_inputs", "qkv.safetensors"), in);
}

void seed_table_header() {
  struct Case {
    const char* name;
    store::DType dtype;
    std::int64_t dim;
    engram::Config config;
  };
  const Case cases[] = {{"f32.safetensors", store::DType::f32, 4, tiny_engram(2, 1, {0})},
                        {"bf16-two-layers.safetensors", store::DType::bf16, 2, tiny_engram(3, 2, {1, 3})},
                        {"fp8.safetensors", store::DType::fp8, 32, tiny_engram(2, 1, {2})}};
  for (const Case& c : cases) {
    store::CreateOptions o;
    o.config = c.config;
    o.dim = c.dim;
    o.dtype = c.dtype;
    o.checksum_block = 4096;
    o.seed = 1;
    o.threads = 1;
    store::create_table(o, seed_path("table_header", c.name));
  }
}

void seed_engram_config() {
  put("engram_config", "small-config.json", slurp(root + "/../data/store/small-config.json"));
  put("engram_config", "preset.json", R"({"preset": "deepseek-demo", "compressed_vocab": 128000, "seed": 3})" "\n");
  // Explicit multipliers and primes, as a table's metadata records them.
  put("engram_config", "explicit.json", engram::config_to_json_text(engram::make_layout(tiny_engram(3, 2, {0, 5}))) + "\n");
}

void seed_token_ids() {
  data::TokenIds t;
  t.vocab_size = 300;
  t.ids = {5, 17, 299, 0, 42, 42, 7};
  t.document_starts = {0, 3, 3, 7};
  OutputFile out(seed_path("token_ids", "three-documents.ids"));
  data::write_token_ids(out, t);
  out.commit();
}

hashhop::Params hashhop_params(bool cot) {
  hashhop::Params p;  // the fixed dataset of the hashhop_predictions target
  p.seed = cot ? 8 : 7;
  p.n_chars = 400;
  p.hops = 2;
  p.hash_length = 4;
  p.num_queries = 3;
  p.cot = cot;
  return p;
}

void seed_hashhop() {
  const std::string dataset = seed_path("hashhop_dataset", "two-samples.jsonl");
  {
    OutputFile out(dataset);
    hashhop::write_sample_json(hashhop_params(false), out);
    hashhop::write_sample_json(hashhop_params(true), out);
    out.commit();
  }
  {
    OutputFile out(seed_path("hashhop_predictions", "solved.jsonl"));
    hashhop::solve(dataset, out, false);
    out.commit();
  }
  // Raw completions: the first query right, the second wrong, and a line that is no prediction.
  const hashhop::Sample s = hashhop::generate(hashhop_params(false));
  std::string completion = s.targets[0].first + " = '" + s.targets[0].second + "'\n" + s.targets[1].first +
                           " = 'ZZZZ'\nnot a prediction\n";
  put("hashhop_predictions", "completion.jsonl",
      "{\"sample\": 0, \"completion\": " + nlohmann::json(completion).dump() + "}\n{\"sample\": 5, \"query\": \"x\", \"answer\": \"y\"}\n");
}

void seed_model_files() {
  put("model_config", "quick.json", model::config_to_json(model::preset("quick")) + "\n");
  put("model_config", "overrides.json",
      "// hashmem train --config: keys override the preset\n"
      R"({"engram_layers": [0, 2], "attention": "mixed", "exact_heads": 1, "ablate": ["gate", "conv"],)"
      R"( "lr": 0.005, "seed": 18446744073709551615, "engram": true})" "\n");
  model::RunState s;
  s.step = 3;
  s.first_train_loss = 9.1;
  s.smooth_loss = 8.5;
  s.train_seconds = 1.25;
  s.metrics = {{1, 512, 9.1, -1, 0.001, 400.5, 1.2}, {2, 1024, 8.7, 8.9, 0.002, 410, 2.5}};
  put("run_state", "state.json", model::run_state_json(s, true, {4096, 512}));
  // The compression `hashmem train` writes for the small tokenizer above.
  const std::string tok = seed_path("hf_tokenizer", "small.json");
  put("compression_file", "compression.json", engram::compression_json(engram::compress_hf_tokenizer(tok)));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s DIR   (DIR = tests/fuzz: writes DIR/<target>/<seed>)\n", argv[0]);
    return 2;
  }
  root = argv[1];
  try {
    seed_hf_tokenizer();
    seed_bpe_tokenizer();
    seed_sentencepiece();
    seed_safetensors();
    seed_attention_inputs();
    seed_table_header();
    seed_engram_config();
    seed_token_ids();
    seed_hashhop();
    seed_model_files();
  } catch (const hashmem::Error& e) {
    std::fprintf(stderr, "fuzz_make_seeds: %s\n", e.what());
    return 1;
  }
  return 0;
}
