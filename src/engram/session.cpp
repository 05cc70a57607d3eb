// engram::Session (include/hashmem/session.hpp): requests with their own n-gram histories over one Memory; a
// prompt is one Memory lookup, a decode step one lookup over the step's requests (Memory::lookup_streams), so the
// path tokens → rows → tickets stays in memory.cpp.
#include "hashmem/session.hpp"

#include <algorithm>
#include <set>
#include <string>
#include <type_traits>

#include "hashmem/error.hpp"

namespace hashmem::engram {
namespace {

std::string request_name(RequestId id) { return "request " + std::to_string(id); }

template <class Out>
std::vector<Out>& scratch_for(std::vector<float>& f32, std::vector<std::uint16_t>& bf16) {
  if constexpr (std::is_same_v<Out, float>) {
    return f32;
  } else {
    return bf16;
  }
}

// One layer's rows [n, width] into its place in out[n, layers, width].
template <class Out>
void interleave(const Out* layer_rows, std::int64_t n, std::int64_t width, std::int64_t layers, std::int64_t layer,
                Out* out) {
  for (std::int64_t i = 0; i < n; ++i) {
    const Out* from = layer_rows + i * width;
    std::copy(from, from + width, out + (i * layers + layer) * width);
  }
}

}  // namespace

std::unique_ptr<Session> Session::open(const std::string& table_path, const SessionOptions& options) {
  // The table first (any tier: a cluster table has no path, its header comes from the cluster), then the layout
  // and compression it records.
  store::OpenOptions store_options = options.store;
  store_options.writable = false;
  std::shared_ptr<store::Table> table = store::Table::open(table_path, store_options);
  const store::TableInfo& info = table->info();
  Compression compression;
  if (options.compression_path.empty()) {
    const auto recorded = info.metadata.find("compression_lookup_sha256");
    if (recorded != info.metadata.end() && !recorded->second.empty()) {
      throw Error("session: table '" + info.path + "' was made for a tokenizer compression (lookup SHA-256 " +
                  recorded->second + "): give its compression file");
    }
    compression = identity_compression(info.config.compressed_vocab);
  } else {
    compression = read_compression_json(options.compression_path);
  }
  auto memory = std::make_unique<Memory>(make_layout(info.config), info.dim, std::move(compression));
  memory->open(std::move(table));
  return std::make_unique<Session>(std::move(memory));
}

Session::Session(std::unique_ptr<Memory> memory) : memory_(std::move(memory)) {
  if (!memory_ || !memory_->is_open()) throw Error("session: needs a Memory whose table is open");
}

Session::~Session() = default;

std::unique_ptr<Session> Session::clone() const {
  auto memory = std::make_unique<Memory>(memory_->layout(), memory_->row_dim(), memory_->compression());
  memory->open(memory_->shared_table());
  return std::make_unique<Session>(std::move(memory));
}

std::vector<std::int64_t> Session::layer_ids() const {
  std::vector<std::int64_t> ids;
  for (const LayerLayout& l : memory_->layout().layers) ids.push_back(l.layer_id);
  return ids;
}

// ---- requests ----

RequestId Session::add() {
  const RequestId id = next_id_++;
  requests_.emplace(id, Request{memory_->stream(1), 0});
  return id;
}

void Session::remove(RequestId id) {
  find(id, "remove");
  requests_.erase(id);
}

std::vector<RequestId> Session::requests() const {
  std::vector<RequestId> ids;
  ids.reserve(requests_.size());
  for (const auto& entry : requests_) ids.push_back(entry.first);
  return ids;
}

std::int64_t Session::tokens_seen(RequestId id) const {
  const auto it = requests_.find(id);
  if (it == requests_.end()) throw Error("session tokens_seen: no " + request_name(id));
  return it->second.tokens;
}

Session::Request& Session::find(RequestId id, const char* what) {
  const auto it = requests_.find(id);
  if (it == requests_.end()) {
    throw Error(std::string("session ") + what + ": no " + request_name(id) + " (never added, or removed)");
  }
  return it->second;
}

// Memory::lookup's rule, checked here so the message names the request.
void Session::check_tokens(RequestId id, const std::int64_t* tokens, std::int64_t n, const char* what) const {
  const std::int64_t entries = memory_->compression().tokenizer_entries;
  for (std::int64_t i = 0; i < n; ++i) {
    if (tokens[i] >= entries) {
      throw Error(std::string("session ") + what + ": " + request_name(id) + ": token id " + std::to_string(tokens[i]) +
                  " at position " + std::to_string(i) + " is not below the tokenizer size " + std::to_string(entries));
    }
  }
}

// ---- prefill ----

template <class Out>
void Session::prefill_into(const RequestId* ids, const std::int64_t* lengths, std::int64_t count,
                           const std::int64_t* tokens, Out* out, const char* what) {
  if (count < 0) throw Error(std::string("session ") + what + ": request count " + std::to_string(count) + " < 0");
  if (count > 0 && (ids == nullptr || lengths == nullptr)) {
    throw Error(std::string("session ") + what + ": ids or lengths is null");
  }
  // Every check before any history moves.
  std::set<RequestId> seen;
  std::int64_t total = 0;
  for (std::int64_t i = 0; i < count; ++i) {
    find(ids[i], what);
    if (!seen.insert(ids[i]).second) {
      throw Error(std::string("session ") + what + ": " + request_name(ids[i]) + " is named twice");
    }
    if (lengths[i] < 0) {
      throw Error(std::string("session ") + what + ": " + request_name(ids[i]) + ": token count " +
                  std::to_string(lengths[i]) + " < 0");
    }
    total += lengths[i];
  }
  if (total == 0) return;
  if (tokens == nullptr || out == nullptr) throw Error(std::string("session ") + what + ": tokens or out is null");
  for (std::int64_t i = 0, at = 0; i < count; at += lengths[i++]) check_tokens(ids[i], tokens + at, lengths[i], what);
  // Every request's reads start before the first gather, so they overlap.
  std::vector<Lookup> lookups(static_cast<std::size_t>(count));
  for (std::int64_t i = 0, at = 0; i < count; at += lengths[i++]) {
    if (lengths[i] == 0) continue;
    Request& r = requests_.at(ids[i]);
    Stream* stream = &r.stream;
    lookups[static_cast<std::size_t>(i)] = memory_->lookup_streams(tokens + at, 1, lengths[i], &stream);
    r.tokens += lengths[i];
  }
  for (std::int64_t i = 0, at = 0; i < count; at += lengths[i++]) {
    if (lengths[i] > 0) gather_rows(lookups[static_cast<std::size_t>(i)], lengths[i], out + at * values_per_token());
  }
}

// Every layer of `l` (n tokens) into out[n, layers, columns, dim].
template <class Out>
void Session::gather_rows(Lookup& l, std::int64_t n, Out* out) {
  std::vector<Out>& scratch = scratch_for<Out>(scratch_f32_, scratch_bf16_);
  scratch.resize(static_cast<std::size_t>(n * memory_->width()));
  for (std::int64_t t = 0; t < layers(); ++t) {
    memory_->gather(l, static_cast<std::size_t>(t), scratch.data());
    interleave(scratch.data(), n, memory_->width(), layers(), t, out);
  }
}

void Session::prefill(RequestId id, const std::int64_t* tokens, std::int64_t n, float* out) {
  prefill_into(&id, &n, 1, tokens, out, "prefill");
}
void Session::prefill(RequestId id, const std::int64_t* tokens, std::int64_t n, std::uint16_t* out_bf16) {
  prefill_into(&id, &n, 1, tokens, out_bf16, "prefill");
}
void Session::prefill_batch(const RequestId* ids, const std::int64_t* lengths, std::int64_t count,
                            const std::int64_t* tokens, float* out) {
  prefill_into(ids, lengths, count, tokens, out, "prefill_batch");
}
void Session::prefill_batch(const RequestId* ids, const std::int64_t* lengths, std::int64_t count,
                            const std::int64_t* tokens, std::uint16_t* out_bf16) {
  prefill_into(ids, lengths, count, tokens, out_bf16, "prefill_batch");
}

// ---- decode steps ----

void Session::prefetch(const RequestId* ids, const std::int64_t* tokens, std::int64_t batch) {
  if (step_) {
    std::string left;
    for (std::size_t t = 0; t < step_->gathered.size(); ++t) {
      if (!step_->gathered[t]) left += (left.empty() ? "" : ", ") + std::to_string(t);
    }
    throw Error("session prefetch: the previous step is still in flight, layers not gathered yet: " + left +
                " (gather them, or cancel() the step)");
  }
  if (batch < 0) throw Error("session prefetch: batch " + std::to_string(batch) + " < 0");
  if (batch > 0 && (ids == nullptr || tokens == nullptr)) throw Error("session prefetch: ids or tokens is null");
  std::vector<Stream*> streams(static_cast<std::size_t>(batch));
  std::set<RequestId> seen;
  for (std::int64_t b = 0; b < batch; ++b) {
    if (!seen.insert(ids[b]).second) {
      throw Error("session prefetch: " + request_name(ids[b]) + " is named twice in one step (positions " +
                  std::to_string(std::find(ids, ids + b, ids[b]) - ids) + " and " + std::to_string(b) + ")");
    }
    streams[static_cast<std::size_t>(b)] = &find(ids[b], "prefetch").stream;
    if (tokens[b] >= memory_->compression().tokenizer_entries) check_tokens(ids[b], tokens + b, 1, "prefetch");
  }
  auto step = std::make_unique<Step>();
  // An empty step reads nothing (no prefetch of zero rows through null pointers); its gathers write nothing.
  if (batch > 0) step->lookup = memory_->lookup_streams(tokens, batch, 1, streams.data());
  for (std::int64_t b = 0; b < batch; ++b) ++requests_.at(ids[b]).tokens;
  step->gathered.assign(static_cast<std::size_t>(layers()), false);
  step->left = layers();
  step_ = std::move(step);
}

template <class Out>
void Session::gather_one(std::int64_t layer, Out* out, const char* what) {
  if (!step_) throw Error(std::string("session ") + what + ": no step in flight (prefetch first)");
  if (layer < 0 || layer >= layers()) {
    throw Error(std::string("session ") + what + ": layer " + std::to_string(layer) + " is not in [0, " +
                std::to_string(layers()) + ")");
  }
  const auto t = static_cast<std::size_t>(layer);
  if (step_->gathered[t]) {
    throw Error(std::string("session ") + what + ": layer " + std::to_string(layer) +
                " of this step was already gathered");
  }
  if (step_->lookup.batch > 0 && out == nullptr) throw Error(std::string("session ") + what + ": out is null");
  step_->gathered[t] = true;  // a failed gather consumed its ticket too: the layer cannot be gathered again
  --step_->left;
  // The last layer ends the step, even if its gather throws.
  std::unique_ptr<Step> done = step_->left == 0 ? std::move(step_) : nullptr;
  Step& step = done ? *done : *step_;
  if (step.lookup.batch > 0) memory_->gather(step.lookup, t, out);
}

template <class Out>
void Session::gather_all(Out* out) {
  if (!step_) throw Error("session gather: no step in flight (prefetch first)");
  for (std::size_t t = 0; t < step_->gathered.size(); ++t) {
    if (step_->gathered[t]) {
      throw Error("session gather: layer " + std::to_string(t) +
                  " of this step was already gathered (gather_layer the others, or cancel())");
    }
  }
  const std::int64_t batch = step_->lookup.batch;
  if (batch > 0 && out == nullptr) throw Error("session gather: out is null");
  std::unique_ptr<Step> step = std::move(step_);  // the step ends whatever happens
  if (batch > 0) gather_rows(step->lookup, batch, out);
}

void Session::gather(float* out) { gather_all(out); }
void Session::gather(std::uint16_t* out_bf16) { gather_all(out_bf16); }
void Session::gather_layer(std::int64_t layer, float* out) { gather_one(layer, out, "gather_layer"); }
void Session::gather_layer(std::int64_t layer, std::uint16_t* out_bf16) { gather_one(layer, out_bf16, "gather_layer"); }

}  // namespace hashmem::engram
