#include "cache_trace.hpp"

#include <algorithm>
#include <filesystem>
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
  trace.rows_per_token = static_cast<std::int64_t>(stride);
  trace.rows.resize(base + n * stride);
  std::int64_t offset = 0;
  for (std::size_t li = 0; li < layers; ++li) {
    engram::hash_batch(layout, li, compressed.data(), 1, static_cast<std::int64_t>(n), hashed.data(), true, 1);
    for (std::size_t t = 0; t < n; ++t) {
      std::uint32_t* out = trace.rows.data() + base + t * stride + li * columns;
      for (std::size_t c = 0; c < columns; ++c) out[c] = static_cast<std::uint32_t>(hashed[t * columns + c] + offset);
    }
    offset += layout.layers[li].rows;
  }
  trace.hash_seconds += now_seconds() - start;
  trace.tokens += static_cast<std::int64_t>(n);
  trace.document_starts.push_back(trace.tokens);
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
  if (total_rows(source.layout) > static_cast<std::int64_t>(UINT32_MAX)) {
    throw Error("the layout's " + std::to_string(total_rows(source.layout)) + " rows do not fit the traces' 32-bit row ids");
  }
  RowTrace trace;
  trace.rows_per_token = static_cast<std::int64_t>(source.layout.layers.size()) * source.layout.config.columns();
  // Reserve instead of growing: a doubling vector copies the whole trace and holds both copies (the 20 M-token
  // training trace, 4 GB, peaked at 11 GB). Pages are resident only once written, so the over-estimate costs
  // address space only; a token covers >= 2 bytes of these texts on average (>= 4 bytes of a token-id file).
  std::uint64_t bytes = 0;
  for (const std::string& path : files) bytes += std::filesystem::file_size(path);
  std::uint64_t tokens = bytes / 2;
  if (max_tokens) tokens = std::min<std::uint64_t>(tokens, static_cast<std::uint64_t>(max_tokens));
  trace.rows.reserve(tokens * static_cast<std::uint64_t>(trace.rows_per_token));
  std::optional<bpe::Tokenizer> tokenizer;  // loaded at the first text file
  std::optional<bpe::Encoder> encoder;
  for (const std::string& path : files) {
    const std::int64_t before = trace.tokens;
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
    trace.file_tokens.push_back(trace.tokens - before);
  }
  return trace;
}

namespace {

struct DocumentRef {
  const RowTrace* trace;
  std::int64_t begin, end;  // token range
};

// The documents handed out, in order (see interleave).
std::vector<DocumentRef> document_order(const std::vector<const RowTrace*>& traces, std::int64_t max_tokens) {
  std::vector<DocumentRef> order;
  std::vector<std::int64_t> given(traces.size(), 0), next(traces.size(), 0);
  std::int64_t total = 0;
  while (!max_tokens || total < max_tokens) {
    std::size_t pick = traces.size();
    for (std::size_t k = 0; k < traces.size(); ++k) {
      if (next[k] >= traces[k]->documents) continue;
      if (pick == traces.size() || given[k] < given[pick]) pick = k;
    }
    if (pick == traces.size()) break;
    const RowTrace& t = *traces[pick];
    const std::size_t d = static_cast<std::size_t>(next[pick]++);
    std::int64_t begin = t.document_starts[d], end = t.document_starts[d + 1];
    if (max_tokens) end = std::min(end, begin + (max_tokens - total));
    if (end == begin) continue;
    order.push_back({&t, begin, end});
    given[pick] += end - begin;
    total += end - begin;
  }
  return order;
}

}  // namespace

Interleaved interleave(const std::vector<const RowTrace*>& traces, std::int64_t requests, std::int64_t max_tokens) {
  if (requests < 1) throw Error("interleave: requests must be >= 1, got " + std::to_string(requests));
  if (traces.empty()) return {};
  const std::int64_t stride = traces.front()->rows_per_token;
  for (const RowTrace* t : traces) {
    if (t->rows_per_token != stride && t->tokens) throw Error("interleave: traces of different shapes");
  }
  const std::vector<DocumentRef> order = document_order(traces, max_tokens);
  Interleaved out;
  for (const DocumentRef& d : order) out.tokens += d.end - d.begin;
  out.documents = static_cast<std::int64_t>(order.size());
  out.rows.reserve(static_cast<std::size_t>(out.tokens * stride));
  std::vector<DocumentRef> active;  // each request's document, `begin` advancing
  std::size_t handed = 0;
  while (true) {
    while (static_cast<std::int64_t>(active.size()) < requests && handed < order.size()) active.push_back(order[handed++]);
    if (active.empty()) break;
    for (DocumentRef& d : active) {
      const std::uint32_t* rows = d.trace->rows.data() + d.begin * stride;
      out.rows.insert(out.rows.end(), rows, rows + stride);
      ++d.begin;
    }
    // A finished request takes the next document in its place (its slot in the round-robin order).
    for (DocumentRef& d : active) {
      if (d.begin == d.end && handed < order.size()) d = order[handed++];
    }
    std::erase_if(active, [](const DocumentRef& d) { return d.begin == d.end; });
  }
  return out;
}

}  // namespace hashmem::bench
