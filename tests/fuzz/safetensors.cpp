// Fuzz target: a safetensors file (dense checkpoints, optimizer state, row profiles, captured Q/K/V) opened and
// checked by SafetensorsFile, then every tensor fetched as its own dtype and shape.
#include <cstdint>

#include "fuzz_input.hpp"
#include "hashmem/error.hpp"
#include "hashmem/safetensors.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static hashmem::fuzz::InputFile file("model.safetensors");
  try {
    const hashmem::SafetensorsFile f(file.write(data, size));
    for (const auto& [name, e] : f.tensors()) {
      // The entry's size is its dtype times its shape, without overflow.
      std::uint64_t elements = 1;
      for (std::int64_t d : e.shape) {
        HASHMEM_FUZZ_CHECK(d >= 0);
        HASHMEM_FUZZ_CHECK(!__builtin_mul_overflow(elements, static_cast<std::uint64_t>(d), &elements));
      }
      std::uint64_t bytes = 0;
      HASHMEM_FUZZ_CHECK(!__builtin_mul_overflow(elements, hashmem::dtype_bytes(e.dtype), &bytes));
      HASHMEM_FUZZ_CHECK(bytes == e.bytes);
      HASHMEM_FUZZ_CHECK(e.numel() >= 0 && static_cast<std::uint64_t>(e.numel()) == elements);
      // Every byte is readable (a tensor past the mapping faults here).
      const auto* p = static_cast<const volatile std::uint8_t*>(e.data);
      for (std::size_t i = 0; i < e.bytes; ++i) (void)p[i];
      HASHMEM_FUZZ_CHECK(&f.get(name, e.dtype, e.shape) == &e);
    }
  } catch (const hashmem::Error&) {
  }
  return 0;
}
