// Fuzz target: captured attention inputs (`hashmem train --dump-qkv`, `hashmem bench attention --inputs captured --captured F`): F32
// tensors q, k, v [heads, n, d] in a safetensors file, read by attention::load_inputs.
#include <cstdint>

#include "fuzz_input.hpp"
#include "hashmem/error.hpp"
#include "hashmem/attention.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static hashmem::fuzz::InputFile file("qkv.safetensors");
  try {
    const hashmem::attention::Inputs in = hashmem::attention::load_inputs(file.write(data, size));
    HASHMEM_FUZZ_CHECK(in.heads >= 1 && in.tokens >= 1 && in.dim >= 1);
    std::uint64_t count = 0;
    HASHMEM_FUZZ_CHECK(!__builtin_mul_overflow(static_cast<std::uint64_t>(in.heads), static_cast<std::uint64_t>(in.tokens), &count));
    HASHMEM_FUZZ_CHECK(!__builtin_mul_overflow(count, static_cast<std::uint64_t>(in.dim), &count));
    HASHMEM_FUZZ_CHECK(in.q.size() == count && in.k.size() == count && in.v.size() == count);
  } catch (const hashmem::Error&) {
  }
  return 0;
}
