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

namespace hashmem::engram {
namespace {

// Above this a tokenizer is surely malformed (and its lookup would not fit comfortably in memory).
constexpr std::int64_t kMaxTokenizerEntries = std::int64_t{1} << 26;

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

// The GPT-2 byte-level alphabet: each byte 0..255 is shown as one code point; returns code point → byte
// (-1 where a code point is not in the alphabet). Printable Latin-1 bytes stand for themselves; the other 68
// bytes take 256, 257, ... in byte order.
std::array<int, 324> byte_level_decoder() {
  std::array<int, 324> to_byte;
  to_byte.fill(-1);
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    to_byte[static_cast<std::size_t>(printable ? b : next++)] = b;
  }
  return to_byte;
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

std::int64_t checked_id(const nlohmann::json& value, const std::string& where) {
  if (!value.is_number_integer()) throw Error(where + " is not an integer id");
  const std::int64_t id = value.get<std::int64_t>();
  if (id < 0 || id >= kMaxTokenizerEntries) {
    throw Error(where + " = " + std::to_string(id) + " is outside [0, " + std::to_string(kMaxTokenizerEntries) + ")");
  }
  return id;
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
  nlohmann::json tokenizer;
  try {
    tokenizer = nlohmann::json::parse(file.view());
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": not a tokenizer.json: " + e.what());
  }
  if (!tokenizer.is_object()) throw Error(path + ": not a tokenizer.json: the top level is not an object");
  const auto model = tokenizer.find("model");
  if (model == tokenizer.end() || !model->is_object()) throw Error(path + ": no \"model\" object");
  const auto type = model->find("type");
  if (type == model->end() || *type != "BPE") {
    throw Error(path + ": model.type is " + (type == model->end() ? std::string("missing") : type->dump()) +
                ", only byte-level BPE tokenizers are supported");
  }
  const auto decoder = tokenizer.find("decoder");
  if (decoder == tokenizer.end() || !has_byte_level_decoder(*decoder)) {
    throw Error(path + ": the decoder is not ByteLevel, only byte-level BPE tokenizers are supported");
  }
  const auto vocab = model->find("vocab");
  if (vocab == model->end() || !vocab->is_object()) throw Error(path + ": model.vocab is not an object");

  // Every id up to the largest gets a slot below, so the largest id is bounded by how many entries the file
  // names: holes may be as many as the named ids (plus a little), no more. (A few tokens and one id of 30,000,000
  // took gigabytes; found by fuzz_hf_tokenizer.) Mistyped ids are left to the checks below.
  {
    const auto added = tokenizer.find("added_tokens");
    std::size_t named = vocab->size();
    std::int64_t largest = -1;
    auto consider = [&](const nlohmann::json& id) {
      if (!id.is_number_integer()) return;
      const std::int64_t v = id.get<std::int64_t>();
      if (v >= 0 && v < kMaxTokenizerEntries) largest = std::max(largest, v);
    };
    for (const auto& [token, value] : vocab->items()) consider(value);
    if (added != tokenizer.end() && added->is_array()) {
      named += added->size();
      for (const auto& entry : *added) {
        if (entry.is_object() && entry.contains("id")) consider(entry["id"]);
      }
    }
    if (largest >= 0 && static_cast<std::uint64_t>(largest) >= 2 * static_cast<std::uint64_t>(named) + 256) {
      throw Error(path + ": ids run to " + std::to_string(largest) + " but the file names only " + std::to_string(named) +
                  " tokens: a tokenizer whose ids are mostly holes is refused (each id up to the largest takes memory)");
    }
  }

  // id → (text, raw); ids no entry names decode to "" (as the reference's decode does).
  std::vector<std::string> text, raw;
  std::vector<char> known, is_added;
  auto slot = [&](std::int64_t id) {
    if (static_cast<std::size_t>(id) >= text.size()) {
      text.resize(static_cast<std::size_t>(id) + 1);
      raw.resize(static_cast<std::size_t>(id) + 1);
      known.resize(static_cast<std::size_t>(id) + 1, 0);
      is_added.resize(static_cast<std::size_t>(id) + 1, 0);
    }
    return static_cast<std::size_t>(id);
  };
  const auto added = tokenizer.find("added_tokens");
  if (added != tokenizer.end()) {
    if (!added->is_array()) throw Error(path + ": added_tokens is not a list");
    for (std::size_t k = 0; k < added->size(); ++k) {
      const auto& entry = (*added)[k];
      const std::string where = path + ": added_tokens[" + std::to_string(k) + "]";
      if (!entry.is_object() || !entry.contains("id") || !entry.contains("content") || !entry["content"].is_string()) {
        throw Error(where + " needs an integer \"id\" and a string \"content\"");
      }
      const std::size_t i = slot(checked_id(entry["id"], where + ".id"));
      // An added token decodes to its content, whatever model.vocab says of its id (decode checks it first).
      is_added[i] = 1;
      text[i] = raw[i] = entry["content"].get<std::string>();
    }
  }
  const auto to_byte = byte_level_decoder();
  for (const auto& [token, value] : vocab->items()) {
    const std::size_t i = slot(checked_id(value, path + ": model.vocab[" + nlohmann::json(token).dump() + "]"));
    if (known[i]) throw Error(path + ": model.vocab gives id " + std::to_string(i) + " to two tokens");
    known[i] = 1;
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
  if (text.empty()) throw Error(path + ": the tokenizer has no tokens");
  return compress_keys(static_cast<std::int64_t>(text.size()), [&](std::int64_t id) {
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
