// Merging one word's symbols, and a word's ids (bpe_model.hpp).
#include <algorithm>
#include <cstdio>
#include <functional>

#include "hashmem/error.hpp"
#include "tokenize/bpe_model.hpp"
#include "tokenize/byte_level.hpp"
#include "tokenize/utf8.hpp"

namespace hashmem::tokenize {
namespace {

// Up to this many symbols a word is merged by scanning its pair ranks (a few cache lines); longer words use the
// heap, whose cost grows as n log n instead of n².
constexpr std::size_t kScanLimit = 48;

constexpr std::int32_t kDead = -1000;  // a symbol merged into its left neighbour (heap path); below every -1 - byte

}  // namespace

void merge_symbols_scan(const MergeTable& merges, std::vector<std::int32_t>& symbols, MergeScratch& scratch) {
  if (symbols.size() < 2) return;
  auto& ranks = scratch.ranks;
  auto& merged = scratch.merged_at;
  const std::size_t pairs = symbols.size() - 1;
  ranks.resize(pairs);
  merged.resize(pairs);
  for (std::size_t i = 0; i < pairs; ++i) ranks[i] = merges.find(symbols[i], symbols[i + 1], merged[i]);
  for (;;) {
    // The lowest rank, leftmost among equals.
    const auto best = std::min_element(ranks.begin(), ranks.end());
    if (best == ranks.end() || *best == MergeTable::kNoMerge) return;
    const auto i = static_cast<std::size_t>(best - ranks.begin());
    symbols[i] = merged[i];
    symbols.erase(symbols.begin() + static_cast<std::ptrdiff_t>(i) + 1);
    ranks.erase(ranks.begin() + static_cast<std::ptrdiff_t>(i));
    merged.erase(merged.begin() + static_cast<std::ptrdiff_t>(i));
    if (i > 0) ranks[i - 1] = merges.find(symbols[i - 1], symbols[i], merged[i - 1]);
    if (i < ranks.size()) ranks[i] = merges.find(symbols[i], symbols[i + 1], merged[i]);
  }
}

void merge_symbols_heap(const MergeTable& merges, std::vector<std::int32_t>& symbols, MergeScratch& scratch) {
  const std::size_t n = symbols.size();
  if (n < 2) return;
  auto& next = scratch.next;
  auto& prev = scratch.prev;
  auto& heap = scratch.heap;
  next.resize(n);
  prev.resize(n);
  for (std::size_t i = 0; i < n; ++i) {
    next[i] = i + 1 < n ? static_cast<std::int32_t>(i + 1) : -1;
    prev[i] = static_cast<std::int32_t>(i) - 1;
  }
  // Candidates are rank << 32 | position: a min-heap of them pops the lowest rank, then the leftmost.
  // (std::*_heap keep the largest first, hence std::greater.)
  heap.clear();
  heap.reserve(n);
  std::int32_t merged = 0;
  auto push = [&](std::int32_t pos) {
    const std::int32_t right = next[static_cast<std::size_t>(pos)];
    if (right < 0) return;
    const std::uint32_t rank =
        merges.find(symbols[static_cast<std::size_t>(pos)], symbols[static_cast<std::size_t>(right)], merged);
    if (rank == MergeTable::kNoMerge) return;
    heap.push_back(std::uint64_t{rank} << 32 | static_cast<std::uint32_t>(pos));
    std::push_heap(heap.begin(), heap.end(), std::greater<>());
  };
  for (std::size_t i = 0; i + 1 < n; ++i) push(static_cast<std::int32_t>(i));
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>());
    const auto rank = static_cast<std::uint32_t>(heap.back() >> 32);
    const auto pos = static_cast<std::size_t>(heap.back() & 0xffffffffu);
    heap.pop_back();
    // Still the same pair? Its position's pair has this rank only if it is the pair pushed: a rank names one
    // merge, and a merged-away symbol (kDead) or a missing right neighbour has none.
    const std::int32_t right = next[pos];
    if (symbols[pos] == kDead || right < 0 ||
        merges.find(symbols[pos], symbols[static_cast<std::size_t>(right)], merged) != rank) {
      continue;
    }
    symbols[pos] = merged;
    symbols[static_cast<std::size_t>(right)] = kDead;
    const std::int32_t after = next[static_cast<std::size_t>(right)];
    next[pos] = after;
    if (after >= 0) prev[static_cast<std::size_t>(after)] = static_cast<std::int32_t>(pos);
    if (prev[pos] >= 0) push(prev[pos]);
    push(static_cast<std::int32_t>(pos));
  }
  std::size_t kept = 0;
  for (std::int32_t i = 0; i >= 0; i = next[static_cast<std::size_t>(i)]) symbols[kept++] = symbols[static_cast<std::size_t>(i)];
  symbols.resize(kept);
}

void merge_symbols(const MergeTable& merges, std::vector<std::int32_t>& symbols, MergeScratch& scratch) {
  if (symbols.size() <= kScanLimit) {
    merge_symbols_scan(merges, symbols, scratch);
  } else {
    merge_symbols_heap(merges, symbols, scratch);
  }
}

void encode_word(const BpeModel& model, std::string_view word, std::vector<std::int32_t>& symbols,
                 MergeScratch& scratch, std::vector<std::int32_t>& out) {
  if (model.ignore_merges) {  // the whole word, if it is a token
    constexpr auto alphabet = byte_level_alphabet();
    scratch.word.clear();
    for (unsigned char b : word) append_utf8(scratch.word, alphabet[b]);
    const auto it = model.token_ids.find(scratch.word);
    if (it != model.token_ids.end()) {
      out.push_back(it->second);
      return;
    }
  }
  symbols.resize(word.size());
  for (std::size_t i = 0; i < word.size(); ++i) symbols[i] = model.byte_symbol[static_cast<unsigned char>(word[i])];
  merge_symbols(model.merges, symbols, scratch);
  for (const std::int32_t s : symbols) {
    if (s >= 0) {
      out.push_back(model.output_id[static_cast<std::size_t>(s)]);
      continue;
    }
    const auto byte = static_cast<std::size_t>(-1 - s);
    const auto& ids = model.unknown_byte[byte];
    if (ids.empty()) {
      char hex[16];
      std::snprintf(hex, sizeof hex, "0x%02X", static_cast<unsigned>(byte));
      throw Error(std::string("byte ") + hex + " has no token: its byte-level character is not in model.vocab" +
                  (model.byte_fallback ? ", its <0x..> byte tokens are missing" : "") +
                  (model.unk_token.empty() ? " and the model has no unk_token"
                                           : " and the unk_token " + model.unk_token + " is not a token"));
    }
    out.insert(out.end(), ids.begin(), ids.end());
  }
}

}  // namespace hashmem::tokenize
