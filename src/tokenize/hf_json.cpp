// tokenizer.json frame, vocabulary and added tokens (hf_json.hpp).
#include "tokenize/hf_json.hpp"

#include <algorithm>

#include "hashmem/error.hpp"

namespace hashmem::tokenize {
namespace {

std::int32_t checked_id(const nlohmann::json& value, const std::string& where) {
  if (!value.is_number_integer()) throw Error(where + " is not an integer id");
  const std::int64_t id = value.get<std::int64_t>();
  if (id < 0 || id >= kMaxTokenizerIds) {
    throw Error(where + " = " + std::to_string(id) + " is outside [0, " + std::to_string(kMaxTokenizerIds) + ")");
  }
  return static_cast<std::int32_t>(id);
}

bool flag(const nlohmann::json& entry, const char* key, const std::string& where) {
  const auto it = entry.find(key);
  if (it == entry.end() || it->is_null()) return false;
  if (!it->is_boolean()) throw Error(where + "." + key + " is not true or false");
  return it->get<bool>();
}

// Every id up to the largest gets a slot in the readers' tables, so the largest id is bounded by how many
// entries the file names: holes may be as many as the named ids (plus a little), no more. (A few tokens and one
// id of 30,000,000 took gigabytes; found by fuzz_hf_tokenizer.) Mistyped ids are left to the checks after.
void refuse_sparse_ids(const nlohmann::json& vocab, const nlohmann::json* added, const std::string& origin) {
  std::size_t named = vocab.size();
  std::int64_t largest = -1;
  auto consider = [&](const nlohmann::json& id) {
    if (!id.is_number_integer()) return;
    const std::int64_t v = id.get<std::int64_t>();
    if (v >= 0 && v < kMaxTokenizerIds) largest = std::max(largest, v);
  };
  for (const auto& [token, value] : vocab.items()) consider(value);
  if (added && added->is_array()) {
    named += added->size();
    for (const auto& entry : *added) {
      if (entry.is_object() && entry.contains("id")) consider(entry["id"]);
    }
  }
  if (largest >= 0 && static_cast<std::uint64_t>(largest) >= 2 * static_cast<std::uint64_t>(named) + 256) {
    throw Error(origin + ": ids run to " + std::to_string(largest) + " but the file names only " +
                std::to_string(named) +
                " tokens: a tokenizer whose ids are mostly holes is refused (each id up to the largest takes memory)");
  }
}

}  // namespace

nlohmann::json parse_hf_bpe_tokenizer(std::string_view text, const std::string& origin) {
  nlohmann::json tokenizer;
  try {
    tokenizer = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(origin + ": not a tokenizer.json: " + e.what());
  }
  if (!tokenizer.is_object()) throw Error(origin + ": not a tokenizer.json: the top level is not an object");
  const auto model = tokenizer.find("model");
  if (model == tokenizer.end() || !model->is_object()) throw Error(origin + ": no \"model\" object");
  const auto type = model->find("type");
  if (type == model->end() || *type != "BPE") {
    throw Error(origin + ": model.type is " + (type == model->end() ? std::string("missing") : type->dump()) +
                ", only byte-level BPE tokenizers are supported");
  }
  return tokenizer;
}

HfVocab read_hf_vocab(const nlohmann::json& tokenizer, const std::string& origin) {
  const nlohmann::json& model = tokenizer.at("model");
  const auto vocab = model.find("vocab");
  if (vocab == model.end() || !vocab->is_object()) throw Error(origin + ": model.vocab is not an object");
  const auto added = tokenizer.find("added_tokens");
  refuse_sparse_ids(*vocab, added == tokenizer.end() ? nullptr : &*added, origin);

  HfVocab out;
  std::int64_t largest = -1;
  if (added != tokenizer.end() && !added->is_null()) {
    if (!added->is_array()) throw Error(origin + ": added_tokens is not a list");
    for (std::size_t k = 0; k < added->size(); ++k) {
      const auto& entry = (*added)[k];
      const std::string where = origin + ": added_tokens[" + std::to_string(k) + "]";
      if (!entry.is_object() || !entry.contains("id") || !entry.contains("content") || !entry["content"].is_string()) {
        throw Error(where + " needs an integer \"id\" and a string \"content\"");
      }
      HfAddedToken token;
      token.id = checked_id(entry["id"], where + ".id");
      token.content = entry["content"].get<std::string>();
      token.lstrip = flag(entry, "lstrip", where);
      token.rstrip = flag(entry, "rstrip", where);
      token.single_word = flag(entry, "single_word", where);
      token.normalized = flag(entry, "normalized", where);
      token.special = flag(entry, "special", where);
      largest = std::max<std::int64_t>(largest, token.id);
      out.added.push_back(std::move(token));
    }
  }
  out.vocab.reserve(vocab->size());
  std::vector<char> taken;
  for (const auto& [token, value] : vocab->items()) {
    const std::int32_t id = checked_id(value, origin + ": model.vocab[" + nlohmann::json(token).dump() + "]");
    if (static_cast<std::size_t>(id) >= taken.size()) taken.resize(static_cast<std::size_t>(id) + 1, 0);
    if (taken[static_cast<std::size_t>(id)]) {
      throw Error(origin + ": model.vocab gives id " + std::to_string(id) + " to two tokens");
    }
    taken[static_cast<std::size_t>(id)] = 1;
    largest = std::max<std::int64_t>(largest, id);
    out.vocab.emplace_back(token, id);
  }
  out.entries = largest + 1;
  return out;
}

}  // namespace hashmem::tokenize
