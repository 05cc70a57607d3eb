// Fuzz target: a Hugging Face tokenizer.json (byte-level BPE) read by engram::compress_hf_tokenizer, the
// compression `hashmem engram compress` and `hashmem train` build from it, and its JSON.
#include <cstdint>

#include "fuzz_input.hpp"
#include "hashmem/error.hpp"
#include "hashmem/engram.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static hashmem::fuzz::InputFile file("tokenizer.json");
  try {
    const hashmem::engram::Compression c = hashmem::engram::compress_hf_tokenizer(file.write(data, size));
    HASHMEM_FUZZ_CHECK(c.tokenizer_entries > 0);
    HASHMEM_FUZZ_CHECK(c.lookup.size() == static_cast<std::size_t>(c.tokenizer_entries));
    HASHMEM_FUZZ_CHECK(c.keys.size() == static_cast<std::size_t>(c.compressed_vocab));
    for (std::int64_t id : c.lookup) HASHMEM_FUZZ_CHECK(id >= 0 && id < c.compressed_vocab);
    hashmem::engram::compression_json(c);
  } catch (const hashmem::Error&) {
  }
  return 0;
}
