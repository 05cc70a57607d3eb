// Fuzz target: an Engram table file (store::read_info: its safetensors header, metadata, Engram config and
// checksums; then verify_table, and the table opened on the DRAM tier with its first and last rows gathered).
// Engram checkpoints of a training run (checkpoint/engram.safetensors) are such tables.
#include <cstdint>
#include <vector>

#include "fuzz_input.hpp"
#include "hashmem/error.hpp"
#include "hashmem/store.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace store = hashmem::store;
  static hashmem::fuzz::InputFile file("table.safetensors");
  const std::string& path = file.write(data, size);
  try {
    const store::TableInfo info = store::read_info(path);
    HASHMEM_FUZZ_CHECK(info.file_bytes == size && info.header_bytes <= size);
    std::uint64_t at = info.header_bytes;
    for (const store::TensorInfo& t : info.tensors) {
      HASHMEM_FUZZ_CHECK(t.offset == at && t.rows >= 1);
      HASHMEM_FUZZ_CHECK(t.bytes == static_cast<std::uint64_t>(t.rows) * info.row_bytes);
      at += t.bytes;
    }
    HASHMEM_FUZZ_CHECK(at == info.checksums_offset && info.checksums_offset <= size);
    store::verify_table(path);
    const auto table = store::Table::open(path);
    std::vector<float> row(static_cast<std::size_t>(info.dim));
    for (std::size_t t = 0; t < info.tensors.size(); ++t) {
      for (std::int64_t r : {std::int64_t{0}, info.tensors[t].rows - 1}) table->gather(static_cast<int>(t), &r, 1, row.data());
    }
  } catch (const hashmem::Error&) {
  }
  return 0;
}
