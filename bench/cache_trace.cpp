#include "cache_trace.hpp"

#include <optional>
#include <string_view>

#include "hashmem/bpe.hpp"
#include "hashmem/clock.hpp"
#include "hashmem/data.hpp"
#include "hashmem/error.hpp"
#include "hashmem/mapped_file.hpp"

namespace hashmem::bench {
namespace {

// Appends the row ids of one document's token ids to the trace (compress, hash every layer, interleave).
void append_document(const TraceSource& source, const std::vector<std::int64_t>& ids, RowTrace& trace) {
  if (ids.empty()) return;
  const engram::Layout& layout = source.layout;
  const auto n = ids.size();
  const auto columns = static_cast<std::size_t>(layout.config.columns());
  for (std::size_t i = 0; i < n; ++i) {
    if (ids[i] < 0 || ids[i] >= source.compression.tokenizer_entries) {
      throw Error("token id " + std::to_string(ids[i]) + " is outside the tokenizer's ids [0, " +
                  std::to_string(source.compression.tokenizer_entries) + ")");
    }
  }
  const double start = now_seconds();
  std::vector<std::int64_t> compressed(n), hashed(n * columns);
  engram::compress_ids(source.compression, ids.data(), n, compressed.data());
  const std::size_t layers = layout.layers.size(), stride = layers * columns, base = trace.rows.size();
  trace.rows.resize(base + n * stride);
  std::int64_t offset = 0;
  for (std::size_t li = 0; li < layers; ++li) {
    engram::hash_batch(layout, li, compressed.data(), 1, static_cast<std::int64_t>(n), hashed.data(), true, 1);
    for (std::size_t t = 0; t < n; ++t) {
      std::int64_t* out = trace.rows.data() + base + t * stride + li * columns;
      for (std::size_t c = 0; c < columns; ++c) out[c] = hashed[t * columns + c] + offset;
    }
    offset += layout.layers[li].rows;
  }
  trace.hash_seconds += now_seconds() - start;
  trace.tokens += static_cast<std::int64_t>(n);
  ++trace.documents;
}

void append_text_file(const TraceSource& source, bpe::Encoder& encoder, const std::string& path,
                      std::int64_t max_tokens, RowTrace& trace) {
  const MappedFile file(path);
  for (std::string_view doc : split_documents(file.view())) {
    if (max_tokens && trace.tokens >= max_tokens) return;
    const double start = now_seconds();
    const std::vector<std::int32_t> ids32 = encoder.encode(doc);
    trace.encode_seconds += now_seconds() - start;
    trace.text_bytes += doc.size();
    std::vector<std::int64_t> ids(ids32.begin(), ids32.end());
    if (max_tokens && trace.tokens + static_cast<std::int64_t>(ids.size()) > max_tokens) ids.resize(max_tokens - trace.tokens);
    append_document(source, ids, trace);
  }
}

void append_id_file(const TraceSource& source, const std::string& path, std::int64_t max_tokens, RowTrace& trace) {
  const data::TokenIds file = data::read_token_ids(path);
  for (std::size_t d = 0; d < file.documents(); ++d) {
    if (max_tokens && trace.tokens >= max_tokens) return;
    std::vector<std::int64_t> ids(file.ids.begin() + static_cast<std::ptrdiff_t>(file.document_starts[d]),
                                  file.ids.begin() + static_cast<std::ptrdiff_t>(file.document_starts[d + 1]));
    if (max_tokens && trace.tokens + static_cast<std::int64_t>(ids.size()) > max_tokens) ids.resize(max_tokens - trace.tokens);
    append_document(source, ids, trace);
  }
}

}  // namespace

std::vector<std::string_view> split_documents(std::string_view text) {
  std::vector<std::string_view> docs;
  std::size_t start = 0;
  while (start < text.size()) {
    std::size_t end = text.find("\n\n", start);
    if (end == std::string_view::npos) end = text.size();
    if (end > start) docs.push_back(text.substr(start, end - start + (end < text.size() ? 1 : 0)));
    start = end + 2;
  }
  return docs;
}

TraceSource make_trace_source(const std::string& tokenizer, const std::string& preset) {
  TraceSource s;
  s.tokenizer = tokenizer;
  engram::Config config = engram::preset(preset);
  s.compression = engram::compress_tokenizer(tokenizer);
  if (s.compression.compressed_vocab > config.compressed_vocab) {
    throw Error("the tokenizer compresses to " + std::to_string(s.compression.compressed_vocab) +
                " ids, more than preset " + preset + "'s compressed_vocab " + std::to_string(config.compressed_vocab));
  }
  s.layout = engram::make_layout(config);
  return s;
}

std::int64_t total_rows(const engram::Layout& layout) {
  std::int64_t rows = 0;
  for (const auto& l : layout.layers) rows += l.rows;
  return rows;
}

RowTrace build_trace(const TraceSource& source, const std::vector<std::string>& files, std::int64_t max_tokens) {
  RowTrace trace;
  std::optional<bpe::Tokenizer> tokenizer;  // loaded at the first text file
  std::optional<bpe::Encoder> encoder;
  for (const std::string& path : files) {
    bool ids = false;
    {
      const MappedFile file(path);
      ids = file.view().substr(0, 8) == "HMTOKID1";
    }
    try {
      if (ids) {
        append_id_file(source, path, max_tokens, trace);
      } else {
        if (!encoder) {
          tokenizer.emplace(bpe::Tokenizer::load(source.tokenizer));
          encoder.emplace(*tokenizer);
        }
        append_text_file(source, *encoder, path, max_tokens, trace);
      }
    } catch (const Error& e) {
      throw Error(path + ": " + e.what());
    }
  }
  return trace;
}

}  // namespace hashmem::bench
