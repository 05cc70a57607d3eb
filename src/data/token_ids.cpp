// The token-id file (format in include/hashmem/data.hpp). Kept apart from the SentencePiece code so that
// processes which only read ids (the libtorch model) do not load libsentencepiece, whose protobuf-lite clashes
// with libtorch's full protobuf in one process.
#include <cstring>

#include "hashmem/error.hpp"
#include "hashmem/mapped_file.hpp"
#include "hashmem/output_file.hpp"
#include "hashmem/data.hpp"

namespace hashmem::data {
namespace {
constexpr char kIdsMagic[8] = {'H', 'M', 'T', 'O', 'K', 'I', 'D', '1'};
constexpr std::size_t kIdsHeaderBytes = 32;
}  // namespace

void write_token_ids(OutputFile& out, const TokenIds& ids) {
  if (ids.document_starts.empty() || ids.document_starts.front() != 0 || ids.document_starts.back() != ids.ids.size()) {
    throw Error("token ids for '" + out.path() + "': document starts must run from 0 to the number of ids");
  }
  const std::uint64_t header[3] = {ids.documents(), ids.ids.size(), ids.vocab_size};
  out.write(kIdsMagic, sizeof kIdsMagic);
  out.write(reinterpret_cast<const char*>(header), sizeof header);
  out.write(reinterpret_cast<const char*>(ids.document_starts.data()), ids.document_starts.size() * 8);
  out.write(reinterpret_cast<const char*>(ids.ids.data()), ids.ids.size() * 4);
}

TokenIds read_token_ids(const std::string& path) {
  MappedFile file(path);
  const std::string_view bytes = file.view();
  if (bytes.size() < kIdsHeaderBytes || std::memcmp(bytes.data(), kIdsMagic, sizeof kIdsMagic) != 0) {
    throw Error("'" + path + "' is not a token-id file (no HMTOKID1 header)");
  }
  std::uint64_t header[3];
  std::memcpy(header, bytes.data() + 8, sizeof header);
  const std::uint64_t documents = header[0], tokens = header[1];
  if (documents > bytes.size() / 8 || tokens > bytes.size() / 4 ||
      bytes.size() != kIdsHeaderBytes + 8 * (documents + 1) + 4 * tokens) {
    throw Error("token-id file '" + path + "' is truncated or has trailing bytes (" + std::to_string(bytes.size()) +
                " bytes for " + std::to_string(documents) + " documents and " + std::to_string(tokens) + " tokens)");
  }
  TokenIds ids;
  ids.vocab_size = header[2];
  ids.document_starts.resize(documents + 1);
  std::memcpy(ids.document_starts.data(), bytes.data() + kIdsHeaderBytes, 8 * (documents + 1));
  ids.ids.resize(tokens);
  // (Not with no tokens: an empty vector's data() may be null, and memcpy from or to null is undefined.)
  if (tokens) std::memcpy(ids.ids.data(), bytes.data() + kIdsHeaderBytes + 8 * (documents + 1), 4 * tokens);
  for (std::size_t d = 0; d < documents; ++d) {
    if (ids.document_starts[d] > ids.document_starts[d + 1]) {
      throw Error("token-id file '" + path + "': document starts decrease at document " + std::to_string(d));
    }
  }
  if (ids.document_starts.front() != 0 || ids.document_starts.back() != tokens) {
    throw Error("token-id file '" + path + "': document starts do not run from 0 to the token count");
  }
  // The ids index the tokenizer's pieces (embedding rows, the compression lookup).
  for (std::size_t i = 0; i < ids.ids.size(); ++i) {
    if (ids.ids[i] < 0 || static_cast<std::uint64_t>(ids.ids[i]) >= ids.vocab_size) {
      throw Error("token-id file '" + path + "': id " + std::to_string(ids.ids[i]) + " at token " + std::to_string(i) +
                  " is outside the vocabulary of " + std::to_string(ids.vocab_size) + " pieces");
    }
  }
  return ids;
}

}  // namespace hashmem::data
