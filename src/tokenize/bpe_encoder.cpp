// Encoding text (hashmem/bpe.hpp, Encoder): added tokens, normaliser, pre-tokenizer, then each word's ids from a
// cache of word → ids or from the merges.
#include <string>

#include "common/flat_index.hpp"
#include "hashmem/bpe.hpp"
#include "tokenize/tokenizer_data.hpp"
#include "tokenize/utf8.hpp"

namespace hashmem::bpe {
namespace {

// Words up to this long are cached (transformers.js caches below 256 UTF-16 units; any bound gives the same ids).
constexpr std::size_t kMaxCachedWord = 256;
// The cache starts over when it holds this many words or this many bytes of keys and ids: prose has far fewer
// distinct words, so this only bounds memory on adversarial text.
constexpr std::size_t kMaxCachedWords = std::size_t{1} << 20;
constexpr std::size_t kMaxCacheBytes = std::size_t{64} << 20;

}  // namespace

struct Encoder::State {
  tokenize::MatchScratch match;
  tokenize::MergeScratch merge;
  std::vector<std::int32_t> symbols;
  std::vector<tokenize::Section> sections;
  std::string normalized;

  // The word cache: entry k's key is keys[key_at[k], key_at[k + 1]), its ids ids[id_at[k], id_at[k + 1]).
  FlatIndex index;
  std::string keys;
  std::vector<std::int32_t> ids;
  std::vector<std::uint32_t> key_at{0}, id_at{0};

  void clear_cache() {
    index = FlatIndex();
    keys.clear();
    ids.clear();
    key_at.assign(1, 0);
    id_at.assign(1, 0);
  }

  void word(const TokenizerData& data, std::string_view word, std::vector<std::int32_t>& out) {
    if (word.empty()) return;
    if (word.size() > kMaxCachedWord) {
      tokenize::encode_word(data.model, word, symbols, merge, out);
      return;
    }
    const std::uint64_t fp = text_fingerprint(word);
    const std::uint32_t k = index.find(fp, [&](std::uint32_t e) {
      return std::string_view(keys).substr(key_at[e], key_at[e + 1] - key_at[e]) == word;
    });
    if (k != FlatIndex::kNone) {
      out.insert(out.end(), ids.begin() + id_at[k], ids.begin() + id_at[k + 1]);
      return;
    }
    const std::size_t before = out.size();
    tokenize::encode_word(data.model, word, symbols, merge, out);
    if (key_at.size() > kMaxCachedWords || keys.size() + 4 * ids.size() > kMaxCacheBytes) clear_cache();
    const auto entry = static_cast<std::uint32_t>(key_at.size() - 1);
    keys.append(word);
    ids.insert(ids.end(), out.begin() + static_cast<std::ptrdiff_t>(before), out.end());
    key_at.push_back(static_cast<std::uint32_t>(keys.size()));
    id_at.push_back(static_cast<std::uint32_t>(ids.size()));
    index.find_or_insert(fp, entry, [](std::uint32_t) { return false; });  // known to be absent
  }

  void text(const TokenizerData& data, std::string_view text, std::vector<std::int32_t>& out) {
    const std::size_t bad = tokenize::invalid_utf8_offset(text);
    if (bad != std::string_view::npos) {
      throw Error("the text is not well-formed UTF-8: ill-formed sequence at byte " + std::to_string(bad) +
                  " (of " + std::to_string(text.size()) + ")");
    }
    data.added.split(text, sections);
    for (const tokenize::Section& section : sections) {
      if (section.id >= 0) {
        out.push_back(section.id);
        continue;
      }
      std::string_view piece = section.text;
      if (!data.normalizer.empty()) {
        normalized = data.normalizer.apply(piece);
        if (normalized.empty()) continue;
        piece = normalized;
      }
      tokenize::pre_tokenize(data.pre_tokenizer, match, piece, [&](std::string_view w) { word(data, w, out); });
    }
  }
};

Encoder::Encoder(const Tokenizer& tokenizer) : data_(tokenizer.data_), state_(std::make_unique<State>()) {}
Encoder::~Encoder() = default;
Encoder::Encoder(Encoder&&) noexcept = default;
Encoder& Encoder::operator=(Encoder&&) noexcept = default;

void Encoder::encode_append(std::string_view text, std::vector<std::int32_t>& ids) {
  const std::size_t before = ids.size();
  try {
    state_->text(*data_, text, ids);
  } catch (...) {
    ids.resize(before);
    throw;
  }
}

std::vector<std::int32_t> Encoder::encode(std::string_view text) {
  std::vector<std::int32_t> ids;
  ids.reserve(text.size() / 3);
  encode_append(text, ids);
  return ids;
}

std::size_t Encoder::cached_words() const { return state_->key_at.size() - 1; }

std::vector<std::int32_t> encode(const Tokenizer& tokenizer, std::string_view text) {
  return Encoder(tokenizer).encode(text);
}

}  // namespace hashmem::bpe
