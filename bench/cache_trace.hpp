// Row-access traces for `hashmem bench cache`: text or token-id files → token ids (byte-level BPE, hashmem/bpe.hpp)
// → compressed ids → Engram table row ids of every layer (engram::hash_batch with row offsets: the library path
// behind `hashmem engram rows`), as one stream over all the layers' tables.
//
// Stream order: per token, layer 0's columns, then layer 1's, ...; a row of layer index l is offset by the rows
// of the tables before it, so ids are unique across tables (0 .. total_rows−1). Each document is hashed on its
// own (n-grams do not cross documents): a text file's documents are separated by an empty line (the corpus
// format of hashmem/data.hpp); a token-id file (HMTOKID1) gives its document starts.
//
// Threads: one thread (encoding and hashing); reentrant. Ownership: plain values.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "hashmem/engram.hpp"

namespace hashmem::bench {

struct RowTrace {
  std::vector<std::int64_t> rows;  // [tokens × layers × columns]
  std::int64_t tokens = 0, documents = 0;
  std::uint64_t text_bytes = 0;    // bytes of text encoded (0 for token-id files)
  double encode_seconds = 0, hash_seconds = 0;
};

// What every trace of a study shares.
struct TraceSource {
  std::string tokenizer;       // tokenizer.json (text files) — also sizes the compression of token-id files
  engram::Layout layout;
  engram::Compression compression;
};

TraceSource make_trace_source(const std::string& tokenizer, const std::string& preset);

// The documents of a corpus text file: runs of lines separated by an empty line (views into `text`).
std::vector<std::string_view> split_documents(std::string_view text);

// Total rows of the layout's tables (the id space of a trace).
std::int64_t total_rows(const engram::Layout& layout);

// The trace of `files` (text, or HMTOKID1 token ids of the same tokenizer), stopping after `max_tokens`
// tokens (0 = no limit). Throws Error naming a file that cannot be read or holds ids outside the tokenizer.
RowTrace build_trace(const TraceSource& source, const std::vector<std::string>& files, std::int64_t max_tokens);

}  // namespace hashmem::bench
