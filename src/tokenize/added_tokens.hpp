// Added (and special) tokens of a tokenizer.json, found in text before anything else runs — transformers.js's
// _encode_text: a trie finds, from each position left to right, the longest token content starting there; the text
// between matches is left for normalisation and pre-tokenization. Then, in order, a token with lstrip trims the
// JavaScript whitespace at the end of the section before it and one with rstrip the start of the section after
// it; a section that is (now) exactly some token's content is that token. single_word and normalized are not
// used by transformers.js when splitting, and not here (tokens match anywhere, in the raw text).
//
// Threads: an AddedTokens is immutable once built; split may run on many threads at once.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenize/hf_json.hpp"

namespace hashmem::tokenize {

struct Section {
  std::string_view text;  // a view into the split text
  std::int32_t id = -1;   // the added token's id, or -1 for text to encode
};

class AddedTokens {
 public:
  // A token's id and flags are those of the last added token with its content (as in transformers.js's Maps).
  explicit AddedTokens(const std::vector<HfAddedToken>& tokens);

  bool empty() const { return tokens_.empty(); }
  // The sections of `text` in order, empty ones dropped. REQUIRES: well-formed UTF-8.
  void split(std::string_view text, std::vector<Section>& out) const;

 private:
  struct Node {
    std::vector<std::pair<unsigned char, std::int32_t>> children;  // sorted by byte
    std::int32_t token = -1;                                        // index into tokens_ when a content ends here
  };
  // The length of the longest content starting at text[i], 0 if none.
  std::size_t longest_match(std::string_view text, std::size_t i) const;
  // The token whose content is exactly `text`, or null.
  const HfAddedToken* by_content(std::string_view text) const;

  std::vector<HfAddedToken> tokens_;  // one per distinct content (the last one named)
  std::unordered_map<std::string_view, std::size_t> index_;  // content → tokens_ index (views into tokens_)
  std::vector<Node> trie_;
  bool first_byte_[256] = {};
};

}  // namespace hashmem::tokenize
