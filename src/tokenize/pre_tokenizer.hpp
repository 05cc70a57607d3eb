// The pre-tokenizer of a byte-level BPE tokenizer.json: Split steps (regexes through PCRE2, regex.hpp), then one
// ByteLevel step, each applied to every piece the previous step produced — transformers.js's PreTokenizerSequence.
//
//   Split, invert false, behavior "Isolated": the pieces between matches and the matches, in order, empty ones
//       dropped (transformers.js's regexSplit)
//   Split, invert true, behavior "Removed": the matches only (String.prototype.match)
//   ByteLevel: a space before a piece that does not start with one (add_prefix_space), then with use_regex (the
//       default) the matches of GPT-2's pattern in it, else the piece whole; the bytes of what comes out are the
//       words BPE merges (the byte → character mapping is the BPE model's, bpe_model.hpp)
// Other Split behaviours (which transformers.js encodes as "Isolated" and the Rust tokenizers do not) and other
// pre-tokenizer types are refused, as is a pre-tokenizer without ByteLevel or with steps after it.
//
// Threads: a PreTokenizer is immutable once built; pre_tokenize may run on many threads, each with its own
// MatchScratch. Errors: hashmem::Error naming the origin and key (building), or the regex (matching limits).
#pragma once

#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "tokenize/regex.hpp"

namespace hashmem::tokenize {

struct PreTokenizer {
  struct Split {
    std::unique_ptr<Regex> regex;
    bool matches_only = false;  // invert: keep the matches and drop the rest
  };
  std::vector<Split> splits;               // in order
  bool add_prefix_space = false;           // ByteLevel
  std::unique_ptr<Regex> byte_level_regex;  // ByteLevel with use_regex: GPT-2's pattern; null without
};

// From tokenizer.json's "pre_tokenizer" value (REQUIRES: non-null pointer; a JSON null is refused).
PreTokenizer build_pre_tokenizer(const nlohmann::json* config, const std::string& origin);

namespace detail {
void byte_level_words(const PreTokenizer& pre, MatchScratch& scratch, std::string_view piece,
                      const std::function<void(std::string_view)>& on_word);
}  // namespace detail

// Calls on_word(word) for each word of `text` (one section: the text between added tokens, normalised), in order.
// Words are views into `text` or into a buffer that lives during the call. REQUIRES: well-formed UTF-8.
template <class OnWord>
void pre_tokenize(const PreTokenizer& pre, MatchScratch& scratch, std::string_view text, OnWord&& on_word,
                  std::size_t step = 0) {
  if (step == pre.splits.size()) {
    if (!pre.add_prefix_space && !pre.byte_level_regex) {
      on_word(text);  // the common case (DeepSeek-V3, Llama 3, Qwen 2): the piece is the word
    } else {
      detail::byte_level_words(pre, scratch, text, on_word);
    }
    return;
  }
  const PreTokenizer::Split& split = pre.splits[step];
  if (split.matches_only) {
    for_each_js_match(*split.regex, scratch, text, [&](std::size_t begin, std::size_t end) {
      pre_tokenize(pre, scratch, text.substr(begin, end - begin), on_word, step + 1);
    });
    return;
  }
  std::size_t done = 0;
  for_each_js_match(*split.regex, scratch, text, [&](std::size_t begin, std::size_t end) {
    if (done < begin) pre_tokenize(pre, scratch, text.substr(done, begin - done), on_word, step + 1);
    if (end > begin) pre_tokenize(pre, scratch, text.substr(begin, end - begin), on_word, step + 1);
    done = end;
  });
  if (done < text.size()) pre_tokenize(pre, scratch, text.substr(done), on_word, step + 1);
}

}  // namespace hashmem::tokenize
