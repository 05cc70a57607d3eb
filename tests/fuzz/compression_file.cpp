// Fuzz target: the tokenizer compression file of a run (model::parse_compression; `hashmem train` writes it with
// engram::compression_json, `hashmem generate` and resumed training read it).
#include <cstdint>

#include "fuzz_input.hpp"
#include "hashmem/error.hpp"
#include "model/run_files.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace model = hashmem::model;
  try {
    const model::CompressionFile c = model::parse_compression(hashmem::fuzz::as_text(data, size), "compression.json");
    // The memory indexes its rows by these ids: each in [0, compressed_vocab).
    for (std::int64_t id : c.lookup) HASHMEM_FUZZ_CHECK(id >= 0 && id < c.compressed_vocab);
  } catch (const hashmem::Error&) {
  }
  return 0;
}
