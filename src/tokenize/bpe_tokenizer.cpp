// Loading a byte-level BPE tokenizer.json (hashmem/bpe.hpp, Tokenizer).
#include <memory>

#include "hashmem/bpe.hpp"
#include "hashmem/mapped_file.hpp"
#include "tokenize/hf_json.hpp"
#include "tokenize/tokenizer_data.hpp"

namespace hashmem::bpe {
namespace {

const nlohmann::json* find_key(const nlohmann::json& object, const char* key) {
  const auto it = object.find(key);
  return it == object.end() ? nullptr : &*it;
}

}  // namespace

Tokenizer Tokenizer::from_json_text(std::string_view json_text, const std::string& origin) {
  const nlohmann::json json = tokenize::parse_hf_bpe_tokenizer(json_text, origin);
  const tokenize::HfVocab vocab = tokenize::read_hf_vocab(json, origin);
  if (vocab.vocab.empty()) throw Error(origin + ": model.vocab has no tokens");
  auto data = std::make_shared<TokenizerData>(TokenizerData{
      vocab.entries,
      tokenize::AddedTokens(vocab.added),
      tokenize::Normalizer(find_key(json, "normalizer"), origin),
      tokenize::build_pre_tokenizer(find_key(json, "pre_tokenizer"), origin),
      tokenize::build_bpe_model(json.at("model"), vocab, origin),
  });
  return Tokenizer(std::move(data));
}

Tokenizer Tokenizer::load(const std::string& path) {
  const MappedFile file(path);
  return from_json_text(file.view(), path);
}

std::int64_t Tokenizer::id_count() const { return data_->id_count; }

std::int32_t Tokenizer::token_id(std::string_view token) const {
  const auto it = data_->model.token_ids.find(std::string(token));
  return it == data_->model.token_ids.end() ? -1 : it->second;
}

}  // namespace hashmem::bpe
