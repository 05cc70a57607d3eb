// Pieces of the table format shared by format.cpp (create/read/verify), table.cpp (open) and checkpoint.cpp.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "hashmem/store.hpp"

namespace hashmem::store {

inline constexpr const char* kFormatName = "hashmem-table";
inline constexpr const char* kChecksumTensor = "__checksums__";
inline constexpr std::uint64_t kAlign = 4096;  // data start, O_DIRECT offsets, lengths and buffers

// The tensors of a layout at `data_start` (rows × row_bytes each, back to back), the checksum count of those
// tensors, and the exact header JSON create_table writes for `info` (padded so the data starts at kAlign).
std::vector<TensorInfo> plan_tensors(const engram::Layout& layout, DType dtype, std::int64_t dim,
                                     std::uint64_t data_start);
std::uint64_t checksum_count(const std::vector<TensorInfo>& tensors, std::uint64_t block);
std::string header_for(const TableInfo& info);

// Parses and validates the header of an open table file of `file_bytes` bytes.
TableInfo parse_header(const std::string& path, int fd, std::uint64_t file_bytes);
// The same over any image of the file (a remote tier's copy of its header and checksums): read(offset, size)
// returns those bytes of the file or throws Error. `path` names the table in errors.
using ByteReader = std::function<std::string(std::uint64_t offset, std::size_t size)>;
TableInfo parse_header_from(const std::string& path, const ByteReader& read, std::uint64_t file_bytes);

// Fills dst with the stored bytes of rows [first, last) of tensor t (row_bytes each). write_table_file calls it
// from `threads` threads at once, each for its own chunks.
using RowSource = std::function<void(const TensorInfo& t, std::int64_t first, std::int64_t last, std::uint8_t* dst)>;

// Bytes of rows made per pipeline step by write_table_file (and written per O_DIRECT write): small enough that
// the buffers (threads + 2 of them) cost little to fault in, large enough for the disk (8 MiB O_DIRECT writes run
// as fast as 32 MiB ones here).
inline constexpr std::uint64_t kWriteChunkBytes = std::uint64_t{8} << 20;

// Writes a complete table file for `info` (header, every tensor's rows from `source`, fresh checksums)
// atomically: temporary file, fsync, rename (table_writer.cpp). `source` is called from `threads` threads at once
// (threads <= 0: one per core; the calling thread is one of them), each making whole chunks of `chunk_bytes` (a
// multiple of 4 KiB), and may be asked for a row twice (rows that straddle chunks): it must be safe to call
// concurrently for different rows. REQUIRES: info's offsets were planned by create_table/read_info.
void write_table_file(const TableInfo& info, const std::string& path, int threads, const RowSource& source,
                      std::uint64_t chunk_bytes = kWriteChunkBytes);

}  // namespace hashmem::store
