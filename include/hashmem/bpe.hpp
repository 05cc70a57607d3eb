// hashmem/bpe.hpp — byte-level BPE encoding with a Hugging Face tokenizer.json (DeepSeek-V3's, and files of the
// same shape: GPT-2, Llama 3, Qwen 2), token for token as transformers.js (npm @lenml/tokenizers 3.7) encodes text
// without special tokens (no BOS). docs/tokenizer.md has the details and the measured speed.
//
//   text ──added tokens (longest match; lstrip/rstrip)──▶ sections ──normalizer──▶ ──Split regexes (PCRE2)──▶
//        ──ByteLevel──▶ words ──bytes → GPT-2 alphabet → BPE merges by rank──▶ ids
//
// Supported: model BPE (vocab, merges as "a b" or ["a", "b"], unk_token, byte_fallback, ignore_merges);
// pre_tokenizer Sequence of Split (a Regex in JavaScript syntax or a String; "Isolated", or "Removed" with invert)
// ending in ByteLevel (add_prefix_space, use_regex); normalizer null or NFC/NFD/NFKC/NFKD (or a Sequence of
// them); added_tokens with lstrip/rstrip (single_word and normalized are ignored, as transformers.js does).
// Anything else (another model or pre-tokenizer type, BPE dropout, other Split behaviours) is refused on load
// rather than encoded differently. tokenizer_config.json is not read: DeepSeek-V3's (LlamaTokenizerFast, legacy)
// changes nothing in transformers.js's encoding.
//
// Text must be well-formed UTF-8: a JavaScript string cannot hold anything else, so there is no reference to follow;
// encode throws Error naming the byte offset of the first ill-formed sequence instead of guessing.
//
// Threads: a Tokenizer is immutable after loading and may be used from any number of threads. An Encoder (a cache
// of word → ids and regex scratch) belongs to one thread at a time; make one per thread.
// Ownership: Tokenizer is a cheap handle to shared immutable data; an Encoder keeps its tokenizer's data alive.
// Errors: hashmem::Error, naming the file and key for a bad tokenizer.json (not JSON, not BPE, merges missing or
// naming unknown tokens, a regex that does not compile, an unsupported component) and the byte offset for bad text.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "hashmem/error.hpp"

namespace hashmem::bpe {

struct TokenizerData;  // vocabulary, merges, compiled regexes, added tokens (src/tokenize)

class Tokenizer {
 public:
  // Reads a tokenizer.json. Throws Error naming `path` and the problem.
  static Tokenizer load(const std::string& path);
  // The same from the file's text; `origin` names it in errors.
  static Tokenizer from_json_text(std::string_view json_text, const std::string& origin);

  // Ids run over [0, id_count()): the largest id of model.vocab and added_tokens, plus one (holes included).
  std::int64_t id_count() const;
  // The id of a vocab token (in its byte-level spelling, "Ġthe") or an added token's content, or -1.
  std::int32_t token_id(std::string_view token) const;

 private:
  friend class Encoder;
  explicit Tokenizer(std::shared_ptr<const TokenizerData> data) : data_(std::move(data)) {}
  std::shared_ptr<const TokenizerData> data_;
};

class Encoder {
 public:
  explicit Encoder(const Tokenizer& tokenizer);
  ~Encoder();
  Encoder(Encoder&&) noexcept;
  Encoder& operator=(Encoder&&) noexcept;

  // The ids of `text`, without special tokens. Throws Error if `text` is not well-formed UTF-8 (naming the byte
  // offset), a regex hits PCRE2's match limit, or a byte has no token (a vocabulary without some byte character,
  // without byte fallback or unk_token).
  std::vector<std::int32_t> encode(std::string_view text);
  // The same, appended to `ids` (left as it was if this throws).
  void encode_append(std::string_view text, std::vector<std::int32_t>& ids);

  // Words whose ids are cached (the cache is bounded; words longer than 256 bytes are not cached).
  std::size_t cached_words() const;

 private:
  struct State;
  std::shared_ptr<const TokenizerData> data_;
  std::unique_ptr<State> state_;
};

// Encodes with a fresh Encoder (no cache carried between calls): for one-off use.
std::vector<std::int32_t> encode(const Tokenizer& tokenizer, std::string_view text);

}  // namespace hashmem::bpe
