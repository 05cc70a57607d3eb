// The train/validation split: by document, from a hash of the document's stable name, so that adding or
// removing other documents never moves a document between the two sides.
#include "hashmem/data.hpp"
#include "hashmem/sha256.hpp"

namespace hashmem::data {

double split_position(std::string_view name) {
  const std::string hex = sha256_hex(name.data(), name.size());
  const std::uint64_t prefix = std::stoull(hex.substr(0, 16), nullptr, 16);  // first 8 bytes, big-endian
  return static_cast<double>(prefix >> 11) / static_cast<double>(std::uint64_t{1} << 53);  // exact in [0, 1)
}

bool is_validation(std::string_view name, double valid_fraction) { return split_position(name) < valid_fraction; }

}  // namespace hashmem::data
