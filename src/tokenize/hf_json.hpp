// Reading a Hugging Face tokenizer.json with a BPE model: the checks and the vocabulary every reader of the file
// needs (the Engram compression, engram/compress.cpp, and the BPE encoder, tokenize/bpe_tokenizer.cpp), written once.
//
// Threads: pure functions. Errors: hashmem::Error whose message starts with the file's origin (its path) and
// names the key at fault.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace hashmem::tokenize {

// Above this an id is surely malformed (every id up to the largest gets a slot in the readers' tables).
constexpr std::int64_t kMaxTokenizerIds = std::int64_t{1} << 26;

struct HfAddedToken {
  std::string content;
  std::int32_t id = 0;
  // The flags as written (missing or null = false).
  bool lstrip = false, rstrip = false, single_word = false, normalized = false, special = false;
};

struct HfVocab {
  std::vector<std::pair<std::string, std::int32_t>> vocab;  // model.vocab, in key order
  std::vector<HfAddedToken> added;                          // added_tokens, in file order
  std::int64_t entries = 0;                                 // largest id named + 1; 0 when nothing is named
};

// Parses the text as JSON and checks the frame: a top-level object with a "model" object whose "type" is "BPE".
// Throws Error "<origin>: not a tokenizer.json: ...", "... the top level is not an object", "... no \"model\"
// object", "... model.type is X, only byte-level BPE tokenizers are supported".
nlohmann::json parse_hf_bpe_tokenizer(std::string_view text, const std::string& origin);

// model.vocab and added_tokens of a document parse_hf_bpe_tokenizer accepted. Throws Error when model.vocab is
// not an object, ids are mostly holes (the largest at least 2 × the named tokens + 256: refused before anything
// is allocated), added_tokens is not a list of {"id": integer, "content": string} with boolean (or null) flags,
// an id is not an integer in [0, 2^26), or model.vocab gives one id to two tokens. An added token may share its
// id with a vocab token (it then wins, as in every reader of these files).
HfVocab read_hf_vocab(const nlohmann::json& tokenizer, const std::string& origin);

}  // namespace hashmem::tokenize
