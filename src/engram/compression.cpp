// The compression lookup itself (include/hashmem/engram.hpp, engram_memory.hpp): mapping ids, its fingerprint,
// its JSON file. Apart from compress.cpp, which builds lookups from tokenizers (ICU, SentencePiece): the model's
// process (libtorch) links this file but must not load libsentencepiece, whose bundled protobuf clashes with the
// one libtorch loads (a crash before main).
#include <nlohmann/json.hpp>

#include "hashmem/engram.hpp"
#include "hashmem/engram_memory.hpp"
#include "hashmem/error.hpp"
#include "hashmem/mapped_file.hpp"
#include "hashmem/sha256.hpp"

namespace hashmem::engram {

void compress_ids(const Compression& compression, const std::int64_t* ids, std::size_t n, std::int64_t* out) {
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t id = ids[i];
    if (id < 0) {
      out[i] = id;
    } else if (id < compression.tokenizer_entries) {
      out[i] = compression.lookup[static_cast<std::size_t>(id)];
    } else {
      throw Error("token id " + std::to_string(id) + " at position " + std::to_string(i) +
                  " is not below the tokenizer size " + std::to_string(compression.tokenizer_entries));
    }
  }
}

std::string compression_json(const Compression& c) {
  return nlohmann::ordered_json{{"tokenizer_entries", c.tokenizer_entries},
                                {"compressed_vocab", c.compressed_vocab},
                                {"lookup_sha256", lookup_sha256(c)},
                                {"lookup", c.lookup},
                                {"keys", c.keys}}
             .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) +
         "\n";
}

std::string lookup_sha256(const Compression& compression) {
  std::string joined;
  for (std::size_t i = 0; i < compression.lookup.size(); ++i) {
    if (i) joined.push_back(',');
    joined += std::to_string(compression.lookup[i]);
  }
  return sha256_hex(joined.data(), joined.size());
}

Compression identity_compression(std::int64_t vocab) {
  Compression c;
  c.tokenizer_entries = c.compressed_vocab = vocab;
  c.lookup.resize(static_cast<std::size_t>(std::max<std::int64_t>(vocab, 0)));
  for (std::size_t i = 0; i < c.lookup.size(); ++i) c.lookup[i] = static_cast<std::int64_t>(i);
  return c;
}

Compression parse_compression_json(std::string_view text, const std::string& path) {
  const auto j = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object() || !j.contains("lookup") || !j["lookup"].is_array()) {
    throw Error("compression file '" + path + "' has no \"lookup\" list");
  }
  const nlohmann::json& lookup = j["lookup"];
  Compression c;
  c.lookup.reserve(lookup.size());
  for (std::size_t id = 0; id < lookup.size(); ++id) {
    // Compressed ids are given first-seen, so each is below the number of token ids.
    const nlohmann::json& v = lookup[id];
    if (!v.is_number_integer() || v.get<std::int64_t>() < 0 || v.get<std::uint64_t>() >= lookup.size()) {
      throw Error("compression file '" + path + "' maps token id " + std::to_string(id) + " to " + v.dump() +
                  ", not a compressed id in [0, " + std::to_string(lookup.size()) + ")");
    }
    c.lookup.push_back(v.get<std::int64_t>());
    c.compressed_vocab = std::max(c.compressed_vocab, c.lookup.back() + 1);
  }
  c.tokenizer_entries = static_cast<std::int64_t>(c.lookup.size());
  auto field = [&](const char* name, std::int64_t want) {
    if (!j.contains(name)) return;
    if (!j[name].is_number_integer() || j[name].get<std::int64_t>() != want) {
      throw Error("compression file '" + path + "': \"" + name + "\" disagrees with its lookup (which gives " +
                  std::to_string(want) + ")");
    }
  };
  field("tokenizer_entries", c.tokenizer_entries);
  field("compressed_vocab", c.compressed_vocab);
  if (j.contains("keys") && j["keys"].is_array()) {
    for (const auto& k : j["keys"]) c.keys.push_back(k.is_string() ? k.get<std::string>() : std::string());
  }
  if (j.contains("lookup_sha256") && (!j["lookup_sha256"].is_string() || j["lookup_sha256"] != lookup_sha256(c))) {
    throw Error("compression file '" + path + "': \"lookup_sha256\" does not match its lookup (damaged file?)");
  }
  return c;
}

Compression read_compression_json(const std::string& path) {
  if (path.empty()) throw Error("Engram needs the tokenizer compression file (hashmem train writes it)");
  const MappedFile file(path);
  return parse_compression_json(file.view(), path);
}

}  // namespace hashmem::engram
