// hashmem/sha256.hpp — SHA-256 digests (OpenSSL), used to name exact contents: the tokenizer compression
// lookup a table was built for, hashes compared between our kernels and their references.
// Threads: safe from any thread.
#pragma once

#include <cstddef>
#include <string>

namespace hashmem {

// SHA-256 of the bytes [data, data + size) as 64 lowercase hex digits.
std::string sha256_hex(const void* data, std::size_t size);

}  // namespace hashmem
