// What a loaded byte-level BPE tokenizer.json is made of (hashmem/bpe.hpp): built once by Tokenizer::load, then
// only read.
//
// Threads: immutable after construction; shared by every Encoder of the tokenizer, on any thread.
#pragma once

#include <cstdint>

#include "hashmem/bpe.hpp"
#include "tokenize/added_tokens.hpp"
#include "tokenize/bpe_model.hpp"
#include "tokenize/normalizer.hpp"
#include "tokenize/pre_tokenizer.hpp"

namespace hashmem::bpe {

struct TokenizerData {
  std::int64_t id_count = 0;
  tokenize::AddedTokens added;
  tokenize::Normalizer normalizer;
  tokenize::PreTokenizer pre_tokenizer;
  tokenize::BpeModel model;
};

}  // namespace hashmem::bpe
