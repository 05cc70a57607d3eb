// Hand-made byte-level BPE tokenizer.json files shared by the encoder's unit tests (test_bpe.cpp) and its
// comparison with transformers.js (test_bpe_conformance.cpp).
#pragma once

#include <nlohmann/json.hpp>

namespace hashmem::testing {

// A tiny byte-level tokenizer. "Ġ" is the space byte in the byte-level alphabet, "Ċ" the newline.
//   ids: a 0, b 1, c 2, Ġ 3, ab 4, bc 5, abc 6, Ġab 7, aa 8, Ċ 9, x 10, 1 11, 2 12, 12 13
//   merges by rank: a b, b c, ab c, Ġ ab, a a, 1 2
// Pre-tokenizer: digits apart, then letters with an optional leading space, then whitespace runs; then ByteLevel.
// Added: <s> (id 20), <x> (id 21, lstrip + rstrip), and "ab" again as an added token with id 22 (an added token
// whose content is a vocab token: transformers.js outputs the added id for it).
inline nlohmann::json small_tokenizer() {
  return nlohmann::json::parse(R"({
    "version": "1.0",
    "added_tokens": [
      {"id": 20, "content": "<s>", "special": true, "lstrip": false, "rstrip": false},
      {"id": 21, "content": "<x>", "special": true, "lstrip": true, "rstrip": true},
      {"id": 22, "content": "ab", "special": false}
    ],
    "normalizer": null,
    "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
      {"type": "Split", "pattern": {"Regex": "\\d"}, "behavior": "Isolated", "invert": false},
      {"type": "Split", "pattern": {"Regex": " ?[a-z]+|\\s+"}, "behavior": "Isolated", "invert": false},
      {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false}]},
    "decoder": {"type": "ByteLevel"},
    "model": {"type": "BPE", "dropout": null, "unk_token": null, "fuse_unk": false, "byte_fallback": false,
      "vocab": {"a": 0, "b": 1, "c": 2, "\u0120": 3, "ab": 4, "bc": 5, "abc": 6, "\u0120ab": 7, "aa": 8,
                "\u010a": 9, "x": 10, "1": 11, "2": 12, "12": 13},
      "merges": ["a b", "b c", "ab c", "\u0120 ab", "a a", "1 2"]}
  })");
}

}  // namespace hashmem::testing
