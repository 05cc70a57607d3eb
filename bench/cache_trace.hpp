// Row-access traces for `hashmem bench cache`: text or token-id files → token ids (byte-level BPE, hashmem/bpe.hpp)
// → compressed ids → Engram table row ids of every layer (engram::hash_batch with row offsets: the library path
// behind `hashmem engram rows`), as one stream over all the layers' tables.
//
// Stream order: per token, layer 0's columns, then layer 1's, ...; a row of layer index l is offset by the rows
// of the tables before it, so ids are unique across tables (0 .. total_rows−1). Each document is hashed on its
// own (n-grams do not cross documents): a text file's documents are separated by an empty line (the corpus
// format of hashmem/data.hpp); a token-id file (HMTOKID1) gives its document starts.
//
// Row ids are stored as uint32 (DeepSeek-V4.1's 768 M rows < 2^32; build_trace throws for a layout that does
// not fit), with each document's token range, so a study can replay B requests decoding different documents at
// once (interleave) and hold a 20 M-token training trace in 4 GB.
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
  std::vector<std::uint32_t> rows;  // [tokens × rows_per_token]
  std::vector<std::int64_t> document_starts = {0};  // token index of each document's start, then `tokens`
  std::int64_t rows_per_token = 0;  // layers × columns (48 at DeepSeek-V4.1's shape)
  std::int64_t tokens = 0, documents = 0;
  std::vector<std::int64_t> file_tokens;  // tokens of each input file
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

// The row stream of `requests` requests decoding at once, one token each per step in turn (round-robin over the
// active requests): each request decodes one document (its n-gram history its own: documents were hashed apart)
// and, when it ends, takes the next document of `traces`. Documents are handed out in this order: the next one
// comes from the trace that has given the fewest tokens so far (ties: the lower index), each trace's in its own
// order, so a mix of domains is balanced by tokens. Documents are taken until `max_tokens` tokens are handed
// out (0 = all; the last one is cut). With one request and one trace this is the trace itself.
// REQUIRES: requests >= 1, every trace has the same rows_per_token; throws Error otherwise.
struct Interleaved {
  std::vector<std::int64_t> rows;  // [tokens × rows_per_token] in decode order
  std::int64_t tokens = 0, documents = 0;
};
Interleaved interleave(const std::vector<const RowTrace*>& traces, std::int64_t requests, std::int64_t max_tokens);

}  // namespace hashmem::bench
