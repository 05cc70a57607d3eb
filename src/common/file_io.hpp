// The pread/pwrite/fsync loops of hashmem, written once: EINTR retried, short transfers continued, errors thrown
// as hashmem::Error naming the file and the byte offset, and every call passing the fault point
// (fault_injection.hpp) so tests can make it fail.
//
// Threads: safe from any thread (positional I/O on a descriptor the caller owns).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace hashmem {

// Reads exactly `size` bytes at `offset` into `buffer`. Throws Error naming `path` and the offset on a failure,
// and "truncated" at end of file.
void read_exact(int fd, std::uint64_t offset, void* buffer, std::size_t size, const std::string& path);

// Reads up to `size` bytes at `offset`, stopping early only at end of file; returns the bytes read.
std::size_t read_up_to(int fd, std::uint64_t offset, void* buffer, std::size_t size, const std::string& path);

// Writes exactly `size` bytes at `offset`. Throws Error naming `path` and the offset (ENOSPC: "no space left").
void write_exact(int fd, std::uint64_t offset, const void* buffer, std::size_t size, const std::string& path);

// fdatasync; throws Error naming `path`.
void sync_data(int fd, const std::string& path);

}  // namespace hashmem
