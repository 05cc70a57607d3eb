// Fuzz target: a token-id file (train.ids / valid.ids, data::read_token_ids), the tiny LM's training input.
#include <cstdint>

#include "fuzz_input.hpp"
#include "hashmem/error.hpp"
#include "hashmem/data.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static hashmem::fuzz::InputFile file("train.ids");
  try {
    const hashmem::data::TokenIds t = hashmem::data::read_token_ids(file.write(data, size));
    HASHMEM_FUZZ_CHECK(!t.document_starts.empty() && t.document_starts.front() == 0);
    HASHMEM_FUZZ_CHECK(t.document_starts.back() == t.ids.size());
    for (std::size_t d = 0; d < t.documents(); ++d) HASHMEM_FUZZ_CHECK(t.document_starts[d] <= t.document_starts[d + 1]);
    // The ids index the tokenizer's pieces (the model's embedding rows, the compression lookup).
    for (std::int32_t id : t.ids) HASHMEM_FUZZ_CHECK(id >= 0 && static_cast<std::uint64_t>(id) < t.vocab_size);
  } catch (const hashmem::Error&) {
  }
  return 0;
}
