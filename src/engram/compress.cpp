// Tokenizer compression (SPEC §2, the demo's CompressedTokenizer): ids whose decoded text normalises to the same
// key share one compressed id. Unicode work (NFKC, NFD, general categories, full lowercasing with final sigma,
// bidi classes for Python's whitespace) is ICU's; the rest is the demo's plain string handling.
#include <sentencepiece_processor.h>
#include <unicode/locid.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>
#include <unicode/ustring.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <functional>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "common/sentencepiece_check.hpp"
#include "hashmem/engram.hpp"
#include "hashmem/error.hpp"
#include "hashmem/mapped_file.hpp"
#include "tokenize/byte_level.hpp"
#include "tokenize/hf_json.hpp"

namespace hashmem::engram {
namespace {

const std::string kReplacementCharacter = "\xEF\xBF\xBD";  // U+FFFD in UTF-8

void check_icu(UErrorCode status, const char* what) {
  if (U_FAILURE(status)) throw Error(std::string("ICU ") + what + " failed: " + u_errorName(status));
}

// Python's str.isspace(): bidirectional class WS, B or S, or general category Zs.
bool python_isspace(UChar32 c) {
  const UCharDirection d = u_charDirection(c);
  return d == U_WHITE_SPACE_NEUTRAL || d == U_BLOCK_SEPARATOR || d == U_SEGMENT_SEPARATOR ||
         u_charType(c) == U_SPACE_SEPARATOR;
}

// True when `bytes` is well-formed UTF-8 (as Python's strict decoder sees it: no overlongs, surrogates or
// code points above U+10FFFF).
bool is_valid_utf8(const std::string& bytes) {
  UErrorCode status = U_ZERO_ERROR;
  int32_t length = 0;
  u_strFromUTF8(nullptr, 0, &length, bytes.data(), static_cast<int32_t>(bytes.size()), &status);
  return status == U_BUFFER_OVERFLOW_ERROR || U_SUCCESS(status);
}

// The key of one token: its raw form when its decoded bytes are not clean UTF-8, else its normalised text
// (or the text itself when that normalises to nothing).
std::string token_key(const std::string& text, const std::string& raw) {
  if (!is_valid_utf8(text) || text.find(kReplacementCharacter) != std::string::npos) return raw;
  std::string key = normalize_token_text(text);
  return key.empty() ? text : key;
}

// Assigns compressed ids first-seen over the keys of ids 0..n−1.
Compression compress_keys(std::int64_t entries, const std::function<std::string(std::int64_t)>& key_of) {
  Compression out;
  out.tokenizer_entries = entries;
  out.lookup.resize(static_cast<std::size_t>(entries));
  std::unordered_map<std::string, std::int64_t> ids;
  ids.reserve(static_cast<std::size_t>(entries));
  for (std::int64_t id = 0; id < entries; ++id) {
    std::string key = key_of(id);
    auto [it, inserted] = ids.try_emplace(key, static_cast<std::int64_t>(out.keys.size()));
    if (inserted) out.keys.push_back(std::move(key));
    out.lookup[static_cast<std::size_t>(id)] = it->second;
  }
  out.compressed_vocab = static_cast<std::int64_t>(out.keys.size());
  return out;
}

// Whether the tokenizer decodes bytes at the byte level: a ByteLevel decoder (alone or in a Sequence).
bool has_byte_level_decoder(const nlohmann::json& decoder) {
  if (!decoder.is_object()) return false;
  const auto type = decoder.find("type");
  if (type != decoder.end() && *type == "ByteLevel") return true;
  const auto parts = decoder.find("decoders");
  if (parts != decoder.end() && parts->is_array()) {
    for (const auto& part : *parts) {
      if (has_byte_level_decoder(part)) return true;
    }
  }
  return false;
}

}  // namespace

std::string normalize_token_text(const std::string& utf8) {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* nfkc = icu::Normalizer2::getNFKCInstance(status);
  check_icu(status, "NFKC instance");
  const icu::Normalizer2* nfd = icu::Normalizer2::getNFDInstance(status);
  check_icu(status, "NFD instance");
  icu::UnicodeString text = nfd->normalize(nfkc->normalize(icu::UnicodeString::fromUTF8(utf8), status), status);
  check_icu(status, "normalisation");

  // Drop nonspacing marks, then lowercase (root locale: full mappings and final sigma, as Python's str.lower).
  icu::UnicodeString kept;
  for (int32_t i = 0; i < text.length();) {
    const UChar32 c = text.char32At(i);
    if (u_charType(c) != U_NON_SPACING_MARK) kept.append(c);
    i += U16_LENGTH(c);
  }
  kept.toLower(icu::Locale::getRoot());

  // "[ \t\r\n]+" → " ".
  icu::UnicodeString collapsed;
  bool in_run = false;
  for (int32_t i = 0; i < kept.length(); ++i) {
    const char16_t c = kept.charAt(i);
    if (c == u' ' || c == u'\t' || c == u'\r' || c == u'\n') {
      if (!in_run) collapsed.append(u' ');
      in_run = true;
    } else {
      collapsed.append(c);
      in_run = false;
    }
  }
  if (collapsed == icu::UnicodeString(u" ")) return " ";  // a lone space is a key of its own

  // Python's str.strip().
  int32_t begin = 0, end = collapsed.length();
  while (begin < end && python_isspace(collapsed.char32At(begin))) begin += U16_LENGTH(collapsed.char32At(begin));
  while (end > begin) {
    const int32_t last = collapsed.moveIndex32(end, -1);
    if (!python_isspace(collapsed.char32At(last))) break;
    end = last;
  }
  std::string out;
  collapsed.tempSubStringBetween(begin, end).toUTF8String(out);
  return out;
}

Compression compress_hf_tokenizer(const std::string& path) {
  const MappedFile file(path);
  const nlohmann::json tokenizer = tokenize::parse_hf_bpe_tokenizer(file.view(), path);
  const auto decoder = tokenizer.find("decoder");
  if (decoder == tokenizer.end() || !has_byte_level_decoder(*decoder)) {
    throw Error(path + ": the decoder is not ByteLevel, only byte-level BPE tokenizers are supported");
  }
  const tokenize::HfVocab vocab = tokenize::read_hf_vocab(tokenizer, path);
  if (vocab.entries == 0) throw Error(path + ": the tokenizer has no tokens");

  // id → (text, raw); ids no entry names decode to "" (as the reference's decode does).
  const auto entries = static_cast<std::size_t>(vocab.entries);
  std::vector<std::string> text(entries), raw(entries);
  std::vector<char> is_added(entries, 0);
  for (const auto& token : vocab.added) {
    // An added token decodes to its content, whatever model.vocab says of its id (decode checks it first).
    is_added[static_cast<std::size_t>(token.id)] = 1;
    text[static_cast<std::size_t>(token.id)] = raw[static_cast<std::size_t>(token.id)] = token.content;
  }
  constexpr auto to_byte = tokenize::byte_level_decoder();
  for (const auto& [token, id] : vocab.vocab) {
    const auto i = static_cast<std::size_t>(id);
    if (is_added[i]) continue;
    raw[i] = token;
    const icu::UnicodeString chars = icu::UnicodeString::fromUTF8(token);
    std::string& bytes = text[i];
    for (int32_t k = 0; k < chars.length();) {
      const UChar32 c = chars.char32At(k);
      if (c < 0 || c >= static_cast<UChar32>(to_byte.size()) || to_byte[static_cast<std::size_t>(c)] < 0) {
        throw Error(path + ": token " + nlohmann::json(token).dump() + " (id " + std::to_string(i) +
                    ") has a character outside the byte-level alphabet");
      }
      bytes.push_back(static_cast<char>(to_byte[static_cast<std::size_t>(c)]));
      k += U16_LENGTH(c);
    }
  }
  return compress_keys(vocab.entries, [&](std::int64_t id) {
    const std::size_t i = static_cast<std::size_t>(id);
    return token_key(text[i], raw[i]);
  });
}

Compression compress_sentencepiece(const std::string& path) {
  const MappedFile file(path);
  check_sentencepiece_model(file.view(), path + ": not a SentencePiece model");
  sentencepiece::SentencePieceProcessor processor;
  sentencepiece::util::Status status;
  try {
    status = processor.LoadFromSerializedProto(file.view());
  } catch (const std::exception& e) {  // some malformed models make libsentencepiece throw (see data/tokenizer.cpp)
    throw Error(path + ": not a SentencePiece model: " + e.what());
  }
  if (!status.ok()) throw Error(path + ": not a SentencePiece model: " + status.ToString());
  const int size = processor.GetPieceSize();
  if (size <= 0) throw Error(path + ": the SentencePiece model has no pieces");
  return compress_keys(size, [&](std::int64_t id) {
    const int i = static_cast<int>(id);
    const std::string piece = processor.IdToPiece(i);
    // Control and unknown pieces decode to nothing in SentencePiece; a Hugging Face decode([id]) shows them
    // as written, and so do we.
    const std::string text = processor.IsControl(i) || processor.IsUnknown(i) ? piece : processor.DecodeIds({i});
    return token_key(text, piece);
  });
}

Compression compress_tokenizer(const std::string& path) {
  bool json = false;
  {
    const MappedFile file(path);
    for (char c : file.view()) {
      if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
      json = c == '{';
      break;
    }
  }
  return json ? compress_hf_tokenizer(path) : compress_sentencepiece(path);
}

}  // namespace hashmem::engram
