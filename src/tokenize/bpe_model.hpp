// The BPE model of a tokenizer.json (model.vocab, model.merges and their flags) and the merging of one word.
//
// A word is the UTF-8 bytes of one pre-token; its first symbols are its bytes, each the vocab token of its
// byte-level character (byte_level.hpp). Merges apply lowest rank first, leftmost first among equal ranks, until
// no adjacent pair has a merge: the order transformers.js's priority queue (rank + position / length) and the
// Rust tokenizers' both follow. Ids come out as transformers.js converts tokens: an added token whose content
// equals a vocab token's string gives its own id.
//
// Threads: a BpeModel is immutable once built; merge_word may run on many threads, each with its own scratch.
// Errors: build_bpe_model throws hashmem::Error naming the origin and key; encode_word throws Error for a symbol
// that has no id (not in the vocabulary, no byte fallback, no usable unk_token).
#pragma once

#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "common/flat_index.hpp"
#include "tokenize/hf_json.hpp"

namespace hashmem::tokenize {

// (left, right) symbol ids → merge: rank (position in model.merges) and the merged token's id.
class MergeTable {
 public:
  static constexpr std::uint32_t kNoMerge = 0xffffffffu;

  // Adds or replaces (a later duplicate wins, as in both reference implementations).
  void add(std::int32_t left, std::int32_t right, std::uint32_t rank, std::int32_t merged);
  // The rank of merging left with right, kNoMerge if they do not merge; `merged` receives the result's id.
  std::uint32_t find(std::int32_t left, std::int32_t right, std::int32_t& merged) const {
    if (left < 0 || right < 0) return kNoMerge;
    const std::uint32_t k = index_.find(key(left, right), [](std::uint32_t) { return true; });  // the key is exact
    if (k == FlatIndex::kNone) return kNoMerge;
    merged = merged_[k];
    return rank_[k];
  }
  std::size_t size() const { return rank_.size(); }

 private:
  static std::uint64_t key(std::int32_t left, std::int32_t right) {
    return (std::uint64_t(std::uint32_t(left)) << 32) | std::uint32_t(right);
  }
  FlatIndex index_;
  std::vector<std::uint32_t> rank_;
  std::vector<std::int32_t> merged_;
};

struct BpeModel {
  std::vector<std::string> vocab_token;  // model.vocab id → its token (holes: "")
  std::vector<std::int32_t> output_id;   // model.vocab id → the id the encoder outputs for that token
  // Every string transformers.js converts to an id: model.vocab, then added token contents (which win).
  std::unordered_map<std::string, std::int32_t> token_ids;
  // byte → model.vocab id of its byte-level character; a byte whose character is not in model.vocab is the
  // symbol -1 - byte (it never merges) and becomes unknown_byte[byte]: the id of an added token with that
  // content, else its <0xHH> tokens (byte_fallback), else the unk_token; empty: no id (encoding it throws).
  std::array<std::int32_t, 256> byte_symbol{};
  std::array<std::vector<std::int32_t>, 256> unknown_byte;
  MergeTable merges;
  bool ignore_merges = false;  // a word that is a token as a whole is that token, unmerged
  bool byte_fallback = false;  // an unknown symbol becomes <0xHH> tokens of its UTF-8 bytes when they all exist
  std::int32_t unk_id = -1;    // the unk_token's id, -1 when there is none
  std::string unk_token;       // for messages
};

// From the model object of a tokenizer.json and its vocabulary (read_hf_vocab). Refuses what it does not
// implement rather than encoding differently: BPE dropout, continuing_subword_prefix, end_of_word_suffix,
// fuse_unk with an unk_token. Merges ("a b" strings or ["a", "b"] pairs) must name two vocab tokens whose
// concatenation is a vocab token (as the Rust tokenizers require on load).
BpeModel build_bpe_model(const nlohmann::json& model, const HfVocab& vocab, const std::string& origin);

// Per-thread buffers of merge_symbols / encode_word.
struct MergeScratch {
  std::vector<std::uint32_t> ranks;
  std::vector<std::int32_t> next, prev, merged_at;
  std::vector<std::uint64_t> heap;  // merge candidates: rank << 32 | position
  std::string word;  // byte-level form of a word (ignore_merges)
};

// Merges `symbols` (model.vocab ids; negative for a symbol outside the vocabulary, which never merges) in place.
// Short words are merged by scanning a rank array, long ones with a heap over a linked list: both give the
// lowest-rank-then-leftmost order (merge_symbols_scan / merge_symbols_heap are exposed for tests).
void merge_symbols(const MergeTable& merges, std::vector<std::int32_t>& symbols, MergeScratch& scratch);
void merge_symbols_scan(const MergeTable& merges, std::vector<std::int32_t>& symbols, MergeScratch& scratch);
void merge_symbols_heap(const MergeTable& merges, std::vector<std::int32_t>& symbols, MergeScratch& scratch);

// Appends the ids of one word (its UTF-8 bytes, non-empty) to `out`. `symbols` is scratch.
void encode_word(const BpeModel& model, std::string_view word, std::vector<std::int32_t>& symbols,
                 MergeScratch& scratch, std::vector<std::int32_t>& out);

}  // namespace hashmem::tokenize
