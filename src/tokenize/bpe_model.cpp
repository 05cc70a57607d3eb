// Building the BPE model from a tokenizer.json (bpe_model.hpp).
#include "tokenize/bpe_model.hpp"

#include <cstdio>
#include <functional>

#include "hashmem/error.hpp"
#include "tokenize/byte_level.hpp"
#include "tokenize/utf8.hpp"

namespace hashmem::tokenize {
namespace {

bool absent_or(const nlohmann::json& model, const char* key, const std::function<bool(const nlohmann::json&)>& ok) {
  const auto it = model.find(key);
  return it == model.end() || it->is_null() || ok(*it);
}

bool boolean(const nlohmann::json& model, const char* key, const std::string& origin) {
  const auto it = model.find(key);
  if (it == model.end() || it->is_null()) return false;
  if (!it->is_boolean()) throw Error(origin + ": model." + key + " is not true or false");
  return it->get<bool>();
}

// Refuses the BPE options whose effect is not implemented (encoding without them would silently differ).
void refuse_unsupported_options(const nlohmann::json& model, const std::string& origin) {
  if (!absent_or(model, "dropout", [](const nlohmann::json& v) { return v.is_number() && v.get<double>() == 0; })) {
    throw Error(origin + ": model.dropout = " + model["dropout"].dump() +
                ": BPE dropout (random merges) is not supported, only deterministic encoding");
  }
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (!absent_or(model, key, [](const nlohmann::json& v) { return v.is_string() && v.get<std::string>().empty(); })) {
      throw Error(origin + ": model." + key + " = " + model[key].dump() +
                  " is not supported (byte-level BPE tokenizers do not use it)");
    }
  }
}

// The two tokens of merges[k]: "a b" (exactly one space) or ["a", "b"].
std::pair<std::string, std::string> merge_pair(const nlohmann::json& merge, const std::string& where) {
  if (merge.is_string()) {
    const std::string& text = merge.get_ref<const std::string&>();
    const std::size_t space = text.find(' ');
    if (space == std::string::npos || space == 0 || space + 1 == text.size() ||
        text.find(' ', space + 1) != std::string::npos) {
      throw Error(where + " = " + merge.dump() + " is not two tokens separated by one space");
    }
    return {text.substr(0, space), text.substr(space + 1)};
  }
  if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
    return {merge[0].get<std::string>(), merge[1].get<std::string>()};
  }
  throw Error(where + " = " + merge.dump() + " is neither \"a b\" nor [\"a\", \"b\"]");
}

void read_merges(const nlohmann::json& model, const std::unordered_map<std::string_view, std::int32_t>& vocab_ids,
                 const std::string& origin, BpeModel& out) {
  const auto merges = model.find("merges");
  if (merges == model.end()) throw Error(origin + ": model.merges is missing (a BPE model needs its merge list)");
  if (!merges->is_array()) throw Error(origin + ": model.merges is not a list");
  auto id_of = [&](const std::string& token, const std::string& where) {
    const auto it = vocab_ids.find(token);
    if (it == vocab_ids.end()) throw Error(where + ": " + nlohmann::json(token).dump() + " is not in model.vocab");
    return it->second;
  };
  for (std::size_t k = 0; k < merges->size(); ++k) {
    const std::string where = origin + ": model.merges[" + std::to_string(k) + "]";
    const auto [left, right] = merge_pair((*merges)[k], where);
    const std::int32_t left_id = id_of(left, where), right_id = id_of(right, where);
    out.merges.add(left_id, right_id, static_cast<std::uint32_t>(k), id_of(left + right, where));
  }
}

// What transformers.js's BPE.encode makes of a one-character token that is not in model.vocab.
std::vector<std::int32_t> unknown_byte_ids(const BpeModel& model, char32_t character) {
  std::string token;
  append_utf8(token, character);
  if (const auto it = model.token_ids.find(token); it != model.token_ids.end()) return {it->second};
  if (model.byte_fallback) {
    std::vector<std::int32_t> ids;
    for (unsigned char byte : token) {
      char name[16];
      std::snprintf(name, sizeof name, "<0x%02X>", byte);
      const auto it = model.token_ids.find(name);
      if (it == model.token_ids.end()) break;
      ids.push_back(it->second);
    }
    if (ids.size() == token.size()) return ids;
  }
  if (model.unk_id >= 0) return {model.unk_id};
  return {};
}

}  // namespace

void MergeTable::add(std::int32_t left, std::int32_t right, std::uint32_t rank, std::int32_t merged) {
  const auto next = static_cast<std::uint32_t>(rank_.size());
  const std::uint32_t found = index_.find_or_insert(key(left, right), next, [](std::uint32_t) { return true; });
  if (found != FlatIndex::kNone) {
    rank_[found] = rank;
    merged_[found] = merged;
    return;
  }
  rank_.push_back(rank);
  merged_.push_back(merged);
}

BpeModel build_bpe_model(const nlohmann::json& model, const HfVocab& vocab, const std::string& origin) {
  refuse_unsupported_options(model, origin);
  BpeModel out;
  out.ignore_merges = boolean(model, "ignore_merges", origin);
  out.byte_fallback = boolean(model, "byte_fallback", origin);
  const bool fuse_unk = boolean(model, "fuse_unk", origin);

  std::int32_t vocab_size = 0;
  for (const auto& [token, id] : vocab.vocab) vocab_size = std::max(vocab_size, id + 1);
  out.vocab_token.resize(static_cast<std::size_t>(vocab_size));
  out.token_ids.reserve(vocab.vocab.size() + vocab.added.size());
  for (const auto& [token, id] : vocab.vocab) {
    if (token.empty()) throw Error(origin + ": model.vocab has an empty token (id " + std::to_string(id) + ")");
    if (invalid_utf8_offset(token) != std::string::npos) throw Error(origin + ": model.vocab has a token that is not UTF-8");
    out.vocab_token[static_cast<std::size_t>(id)] = token;
    out.token_ids[token] = id;
  }
  for (const auto& token : vocab.added) out.token_ids[token.content] = token.id;  // a later one wins, as in a JS Map
  out.output_id.resize(out.vocab_token.size(), -1);
  for (std::size_t id = 0; id < out.vocab_token.size(); ++id) {
    if (!out.vocab_token[id].empty()) out.output_id[id] = out.token_ids.at(out.vocab_token[id]);
  }

  // Symbols are model.vocab ids (merges name them), whatever an added token makes of the same string.
  std::unordered_map<std::string_view, std::int32_t> vocab_ids;
  vocab_ids.reserve(vocab.vocab.size());
  for (std::size_t id = 0; id < out.vocab_token.size(); ++id) {
    if (!out.vocab_token[id].empty()) vocab_ids.emplace(out.vocab_token[id], static_cast<std::int32_t>(id));
  }
  constexpr auto alphabet = byte_level_alphabet();
  for (std::size_t b = 0; b < 256; ++b) {
    std::string character;
    append_utf8(character, alphabet[b]);
    const auto it = vocab_ids.find(character);
    out.byte_symbol[b] = it == vocab_ids.end() ? -1 - static_cast<std::int32_t>(b) : it->second;
  }

  const auto unk = model.find("unk_token");
  if (unk != model.end() && !unk->is_null()) {
    if (!unk->is_string()) throw Error(origin + ": model.unk_token is not a string");
    out.unk_token = unk->get<std::string>();
    const auto it = out.token_ids.find(out.unk_token);
    if (it != out.token_ids.end()) out.unk_id = it->second;
    if (fuse_unk) throw Error(origin + ": model.fuse_unk with an unk_token is not supported");
  }
  for (std::size_t b = 0; b < 256; ++b) {
    if (out.byte_symbol[b] < 0) out.unknown_byte[b] = unknown_byte_ids(out, alphabet[b]);
  }
  read_merges(model, vocab_ids, origin, out);
  return out;
}

}  // namespace hashmem::tokenize
