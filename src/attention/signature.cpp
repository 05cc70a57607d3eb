// Bit-signature top-k decoding (definition in include/hashmem/attention.hpp). The selection is two passes over
// the key signatures: a histogram of Hamming distances (0..64) gives the distance threshold of the k-th closest,
// then one pass in position order takes every key below it and the earliest ones at it — O(m) with no sort,
// and deterministic. The exact softmax then reads only the selected rows of k and v.
#include <algorithm>
#include <array>
#include <bit>
#include <memory>

#include "attention/args.hpp"
#include "attention/projections.hpp"
#include "attention/tiles.hpp"
#include "common/parallel.hpp"
#include "hashmem/error.hpp"

namespace hashmem::attention {
namespace {

constexpr std::uint64_t kSignatureStream = 2000;  // P = Projection(seed, 2000): apart from LSH's and buckets' streams

void check_bits(int bits, const char* method) {
  if (bits != 32 && bits != 64)
    throw Error(std::string(method) + ": bits must be 32 or 64, got " + std::to_string(bits));
}

void check_selection(const SignatureOptions& o, std::int64_t keys, const char* method) {
  check_bits(o.bits, method);
  if (o.top_k < 1 || o.top_k > keys) {
    throw Error(std::string(method) + ": top_k must be in [1, keys = " + std::to_string(keys) + "], got " +
                std::to_string(o.top_k));
  }
  if (o.sink < 0) throw Error(std::string(method) + ": sink must be >= 0, got " + std::to_string(o.sink));
  if (o.recent < 0) throw Error(std::string(method) + ": recent must be >= 0, got " + std::to_string(o.recent));
}

// The projection of (seed, dim, bits), drawn once per thread rather than per appended key.
const Projection& signature_projection(std::uint64_t seed, std::int64_t dim, int bits) {
  struct Cached {
    std::uint64_t seed = 0;
    std::unique_ptr<Projection> projection;
  };
  thread_local Cached cached;
  if (!cached.projection || cached.seed != seed || cached.projection->dim() != dim ||
      cached.projection->cols() != bits) {
    cached.projection = std::make_unique<Projection>(seed, kSignatureStream, dim, bits);
    cached.seed = seed;
  }
  return *cached.projection;
}

}  // namespace

void simhash_signatures(std::int64_t rows, std::int64_t dim, const float* x, int bits, std::uint64_t seed,
                        std::uint64_t* out) {
  check_bits(bits, "simhash_signatures");
  if (rows < 0) throw Error("simhash_signatures: rows must be >= 0, got " + std::to_string(rows));
  if (dim < 1) throw Error("simhash_signatures: dim must be >= 1, got " + std::to_string(dim));
  if (rows == 0) return;
  check_pointer(x, "x", "simhash_signatures");
  check_pointer(out, "out", "simhash_signatures");
  signature_projection(seed, dim, bits).sign_bits(rows, x, dim, out);
}

std::vector<std::int64_t> signature_select(std::uint64_t query_signature, const std::uint64_t* key_signatures,
                                           std::int64_t keys, const SignatureOptions& o) {
  if (keys < 1) throw Error("signature_select: keys must be >= 1, got " + std::to_string(keys));
  check_selection(o, keys, "signature_select");
  check_pointer(key_signatures, "key_signatures", "signature_select");
  const std::uint64_t mask = o.bits == 64 ? ~0ull : 0xffffffffull;
  const std::int64_t sink_end = std::min(o.sink, keys);
  const std::int64_t recent_start = std::max(sink_end, keys - std::min(o.recent, keys));
  auto distance = [&](std::int64_t j) { return std::popcount((key_signatures[j] ^ query_signature) & mask); };
  std::array<std::int64_t, 65> histogram{};
  for (std::int64_t j = sink_end; j < recent_start; ++j) ++histogram[static_cast<std::size_t>(distance(j))];
  // threshold: the distance of the k-th closest; take all closer keys and the first `at_threshold` at it.
  int threshold = 0;
  std::int64_t closer = 0;
  while (threshold < 64 && closer + histogram[static_cast<std::size_t>(threshold)] < o.top_k) {
    closer += histogram[static_cast<std::size_t>(threshold++)];
  }
  std::int64_t at_threshold = o.top_k - closer;
  std::vector<std::int64_t> selected;
  selected.reserve(static_cast<std::size_t>(std::min(keys, o.sink + o.recent + o.top_k)));
  for (std::int64_t j = 0; j < sink_end; ++j) selected.push_back(j);
  for (std::int64_t j = sink_end; j < recent_start; ++j) {
    const int dist = distance(j);
    if (dist < threshold || (dist == threshold && at_threshold-- > 0)) selected.push_back(j);
  }
  for (std::int64_t j = recent_start; j < keys; ++j) selected.push_back(j);
  return selected;
}

void signature_topk_decode(const Dims& d, const float* q, const float* k, const float* v,
                           const std::uint64_t* key_signatures, float* out, std::int64_t* selected,
                           const SignatureOptions& o) {
  check_dims(d, "signature_topk_decode");
  if (d.queries != 1) {
    throw Error("signature_topk_decode: dims.queries must be 1 (one query per head), got " + std::to_string(d.queries));
  }
  check_selection(o, d.keys, "signature_topk_decode");
  for (auto [p, name] : {std::pair<const void*, const char*>{q, "q"},
                         {k, "k"},
                         {v, "v"},
                         {key_signatures, "key_signatures"},
                         {out, "out"}}) {
    check_pointer(p, name, "signature_topk_decode");
  }
  const std::int64_t m = d.keys, dim = d.dim, dv = d.value_dim;
  const std::int64_t selection = std::min(m, o.sink + o.recent + o.top_k);
  const float scale = resolve_scale(o.scale, dim);
  // Signed here, not in the workers: their threads are new each call, so their cached projection would be
  // drawn again every time.
  std::vector<std::uint64_t> query_signatures(static_cast<std::size_t>(d.heads));
  simhash_signatures(d.heads, dim, q, o.bits, o.seed, query_signatures.data());
  parallel_for(d.heads, o.threads, [&](std::int64_t begin, std::int64_t end) {
    tiles::Buffer<float> scratch(256);
    for (std::int64_t h = begin; h < end; ++h) {
      const auto keys = signature_select(query_signatures[static_cast<std::size_t>(h)], key_signatures + h * m, m, o);
      tiles::decode_rows(dim, dv, q + h * dim, k + h * m * dim, v + h * m * dv, keys.data(),
                         static_cast<std::int64_t>(keys.size()), scale, out + h * dv, nullptr, scratch.data());
      if (selected) std::copy(keys.begin(), keys.end(), selected + h * selection);
    }
  });
}

}  // namespace hashmem::attention
