// SHA-256 through OpenSSL's EVP interface.
#include <openssl/evp.h>

#include <cstdio>

#include "hashmem/error.hpp"
#include "hashmem/sha256.hpp"

namespace hashmem {

std::string sha256_hex(const void* data, std::size_t size) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(data, size, digest, &length, EVP_sha256(), nullptr) != 1) throw Error("SHA-256 failed (OpenSSL)");
  std::string hex(2 * length, '0');
  for (unsigned int i = 0; i < length; ++i) std::snprintf(&hex[2 * i], 3, "%02x", digest[i]);
  return hex;
}

}  // namespace hashmem
