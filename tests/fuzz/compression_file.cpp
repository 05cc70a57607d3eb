// Fuzz target: the tokenizer compression file of a run (engram::parse_compression_json; `hashmem train` writes it with
// engram::compression_json, `hashmem generate` and resumed training read it).
#include <cstdint>

#include "fuzz_input.hpp"
#include "hashmem/error.hpp"
#include "hashmem/engram_memory.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace engram = hashmem::engram;
  try {
    const engram::Compression c = engram::parse_compression_json(hashmem::fuzz::as_text(data, size), "compression.json");
    // The memory indexes its rows by these ids: each in [0, compressed_vocab).
    for (std::int64_t id : c.lookup) HASHMEM_FUZZ_CHECK(id >= 0 && id < c.compressed_vocab);
    HASHMEM_FUZZ_CHECK(c.compressed_vocab <= c.tokenizer_entries);
  } catch (const hashmem::Error&) {
  }
  return 0;
}
