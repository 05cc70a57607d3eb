// Fuzz target: a SentencePiece model (the corpus tokenizer, data/tokenizer.cpp, loaded from bytes; and
// engram::compress_sentencepiece, which loads it from a file).
#include <cstdint>
#include <string>

#include "fuzz_input.hpp"
#include "hashmem/error.hpp"
#include "hashmem/data.hpp"
#include "hashmem/engram.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static hashmem::fuzz::InputFile file("spm.model");
  const std::string model(hashmem::fuzz::as_text(data, size));
  try {
    hashmem::data::tokenizer_vocab(model);
    const std::vector<std::int32_t> ids = hashmem::data::encode_text(model, "The king said: \"Ab 42\" — día!\nx");
    hashmem::data::decode_ids(model, ids);
  } catch (const hashmem::Error&) {
  }
  try {
    const hashmem::engram::Compression c = hashmem::engram::compress_sentencepiece(file.write(data, size));
    HASHMEM_FUZZ_CHECK(c.lookup.size() == static_cast<std::size_t>(c.tokenizer_entries));
    for (std::int64_t id : c.lookup) HASHMEM_FUZZ_CHECK(id >= 0 && id < c.compressed_vocab);
  } catch (const hashmem::Error&) {
  }
  return 0;
}
