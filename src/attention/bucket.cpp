// Hash-bucket attention (definition in include/hashmem/attention.hpp): per head and round, every key's bucket id
// is turned into a dense slot through a FlatIndex (so memory follows the buckets in use, not 2^bucket_bits),
// then one pass in position order keeps running per-slot sums of v and counts and reads each query's mean.
// Backward runs the same bookkeeping in reverse: the query weights 1/(rounds used · count) are summed per slot
// from the last position down, and key j collects the sum of its slot.
#include <openssl/evp.h>
#include <xxhash.h>

#include <algorithm>
#include <cstring>
#include <memory>

#include "attention/args.hpp"
#include "attention/projections.hpp"
#include "attention/tiles.hpp"
#include "common/flat_index.hpp"
#include "common/parallel.hpp"
#include "hashmem/error.hpp"

namespace hashmem::attention {
namespace {

using tiles::Buffer;

constexpr std::uint64_t kProjectionStream = 1000;  // P_r = Projection(seed, 1000 + r): apart from LSH's streams
constexpr std::int32_t kNoSlot = -1;

// q and k are read only for BucketKey::lsh_bits, tokens only for BucketKey::token.
void check_bucket(const Dims& d, const BucketOptions& o, const float* q, const float* k, const std::int64_t* tokens,
                  const char* method) {
  check_self_attention(d, method);
  if (o.key == BucketKey::lsh_bits) {
    check_pointer(q, "q", method);
    check_pointer(k, "k", method);
  }
  check_rounds(o.rounds, method);
  if (o.bucket_bits < 16 || o.bucket_bits > 32) {
    throw Error(std::string(method) + ": bucket_bits must be in [16, 32], got " + std::to_string(o.bucket_bits));
  }
  if (o.key == BucketKey::lsh_bits && (o.sign_bits < 1 || o.sign_bits > 64)) {
    throw Error(std::string(method) + ": sign_bits must be in [1, 64], got " + std::to_string(o.sign_bits));
  }
  if (o.key == BucketKey::token && !tokens) throw Error(std::string(method) + ": tokens is null (BucketKey::token)");
}

// Bucket ids of quantised keys: the 20-byte message seed ‖ round ‖ key through SHA-256 or xxh3.
class BucketHasher {
 public:
  explicit BucketHasher(const BucketOptions& o)
      : o_(o), mask_(o.bucket_bits == 32 ? 0xffffffffull : (std::uint64_t{1} << o.bucket_bits) - 1) {
    if (o.hash == BucketHash::sha256) {
      md_ = EVP_MD_fetch(nullptr, "SHA256", nullptr);
      ctx_ = EVP_MD_CTX_new();
      if (!md_ || !ctx_) throw Error("bucket attention: OpenSSL has no SHA-256");
    }
  }
  ~BucketHasher() {
    EVP_MD_CTX_free(ctx_);
    EVP_MD_free(md_);
  }
  BucketHasher(const BucketHasher&) = delete;
  BucketHasher& operator=(const BucketHasher&) = delete;

  std::uint32_t operator()(int round, std::uint64_t key) {
    unsigned char message[20];
    const std::uint32_t r = static_cast<std::uint32_t>(round);
    store_le(message, o_.seed, 8);
    store_le(message + 8, r, 4);
    store_le(message + 12, key, 8);
    if (o_.hash == BucketHash::xxh3) return static_cast<std::uint32_t>(XXH3_64bits(message, sizeof message) & mask_);
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (EVP_DigestInit_ex(ctx_, md_, nullptr) != 1 || EVP_DigestUpdate(ctx_, message, sizeof message) != 1 ||
        EVP_DigestFinal_ex(ctx_, digest, &length) != 1) {
      throw Error("bucket attention: SHA-256 failed (OpenSSL)");
    }
    const std::uint64_t first =
        digest[0] | digest[1] << 8 | digest[2] << 16 | static_cast<std::uint64_t>(digest[3]) << 24;
    return static_cast<std::uint32_t>(first & mask_);
  }

 private:
  static void store_le(unsigned char* out, std::uint64_t value, int bytes) {
    for (int i = 0; i < bytes; ++i) out[i] = static_cast<unsigned char>(value >> (8 * i));
  }
  const BucketOptions& o_;
  std::uint64_t mask_;
  EVP_MD* md_ = nullptr;
  EVP_MD_CTX* ctx_ = nullptr;
};

// Bucket ids of one head's n positions in one round: hashes of the sign bits of x·P_r, or of the tokens.
void head_ids(const Dims& d, const BucketOptions& o, int round, const float* x, const std::int64_t* tokens,
              BucketHasher& hasher, std::uint32_t* ids) {
  const std::int64_t n = d.queries;
  if (o.key == BucketKey::token) {
    for (std::int64_t i = 0; i < n; ++i) ids[i] = hasher(round, static_cast<std::uint64_t>(tokens[i]));
    return;
  }
  std::vector<std::uint64_t> bits(static_cast<std::size_t>(n));
  Projection(o.seed, kProjectionStream + static_cast<std::uint64_t>(round), d.dim, o.sign_bits)
      .sign_bits(n, x, d.dim, bits.data());
  for (std::int64_t i = 0; i < n; ++i) ids[i] = hasher(round, bits[static_cast<std::size_t>(i)]);
}

// One round of one head: each key's dense slot, each query's slot (kNoSlot when no key shares its bucket) and
// the number of distinct key buckets.
struct RoundSlots {
  std::vector<std::int32_t> key_slot, query_slot;
  std::int64_t slots = 0;
  std::int64_t index_bytes = 0;
};

RoundSlots round_slots(const Dims& d, const BucketOptions& o, int round, const float* q, const float* k,
                       const std::int64_t* tokens, BucketHasher& hasher) {
  const std::int64_t n = d.queries;
  std::vector<std::uint32_t> key_ids(static_cast<std::size_t>(n)), query_ids(static_cast<std::size_t>(n));
  head_ids(d, o, round, k, tokens, hasher, key_ids.data());
  if (o.key == BucketKey::token) {
    query_ids = key_ids;
  } else {
    head_ids(d, o, round, q, tokens, hasher, query_ids.data());
  }
  RoundSlots r;
  r.key_slot.resize(static_cast<std::size_t>(n));
  r.query_slot.resize(static_cast<std::size_t>(n));
  FlatIndex index;
  auto same = [](std::uint32_t) { return true; };  // the fingerprint is the bucket id itself
  for (std::int64_t i = 0; i < n; ++i) {
    const std::uint32_t found =
        index.find_or_insert(key_ids[static_cast<std::size_t>(i)], static_cast<std::uint32_t>(r.slots), same);
    r.key_slot[static_cast<std::size_t>(i)] = static_cast<std::int32_t>(found == FlatIndex::kNone ? r.slots++ : found);
  }
  for (std::int64_t i = 0; i < n; ++i) {
    const std::uint32_t found = index.find(query_ids[static_cast<std::size_t>(i)], same);
    r.query_slot[static_cast<std::size_t>(i)] = found == FlatIndex::kNone ? kNoSlot : static_cast<std::int32_t>(found);
  }
  r.index_bytes = static_cast<std::int64_t>(index.bytes());
  return r;
}

// sum += w·x over n values.
void add_row(float* sum, const float* x, float w, std::int64_t n) {
  for (std::int64_t c = 0; c < n; ++c) sum[c] += w * x[c];
}

}  // namespace

void bucket_ids(const Dims& d, const float* x, const std::int64_t* tokens, const BucketOptions& o, std::uint32_t* ids) {
  check_bucket(d, o, x, x, tokens, "bucket_ids");
  check_pointer(ids, "ids", "bucket_ids");
  BucketHasher hasher(o);
  for (int r = 0; r < o.rounds; ++r) {
    for (std::int64_t h = 0; h < d.heads; ++h) {
      head_ids(d, o, r, x ? x + h * d.queries * d.dim : nullptr, tokens ? tokens + h * d.queries : nullptr, hasher,
               ids + (r * d.heads + h) * d.queries);
    }
  }
}

void bucket_forward(const Dims& d, const float* q, const float* k, const float* v, const std::int64_t* tokens,
                    float* out, const BucketOptions& o, BucketStats* stats) {
  check_bucket(d, o, q, k, tokens, "bucket_forward");
  check_pointer(v, "v", "bucket_forward");
  check_pointer(out, "out", "bucket_forward");
  const std::int64_t n = d.queries, dim = d.dim, dv = d.value_dim;
  std::atomic<std::int64_t> buckets_used{0}, table_bytes{0};
  parallel_for(d.heads, o.threads, [&](std::int64_t begin, std::int64_t end) {
    BucketHasher hasher(o);
    Buffer<float> sums;
    Buffer<std::int64_t> counts;
    Buffer<std::int32_t> rounds_used(n);
    for (std::int64_t h = begin; h < end; ++h) {
      const float* vh = v + h * n * dv;
      float* oh = out + h * n * dv;
      std::fill_n(oh, n * dv, 0.0f);
      std::fill_n(rounds_used.data(), n, 0);
      for (int r = 0; r < o.rounds; ++r) {
        const RoundSlots rs = round_slots(d, o, r, q ? q + h * n * dim : nullptr, k ? k + h * n * dim : nullptr,
                                          tokens ? tokens + h * n : nullptr, hasher);
        tiles::count_workspace(rs.index_bytes);
        sums.zero(rs.slots * dv);
        counts.zero(rs.slots);
        auto read = [&](std::int64_t i) {
          const std::int32_t s = rs.query_slot[static_cast<std::size_t>(i)];
          if (s == kNoSlot || counts[s] == 0) return;
          add_row(oh + i * dv, sums.data() + s * dv, 1.0f / static_cast<float>(counts[s]), dv);
          ++rounds_used[i];
        };
        for (std::int64_t i = 0; i < n; ++i) {
          const std::int32_t s = rs.key_slot[static_cast<std::size_t>(i)];
          add_row(sums.data() + s * dv, vh + i * dv, 1.0f, dv);
          ++counts[s];
          if (o.causal) read(i);
        }
        if (!o.causal) {
          for (std::int64_t i = 0; i < n; ++i) read(i);
        }
        tiles::count_workspace(-rs.index_bytes);
        buckets_used += rs.slots;
        const std::int64_t bytes = rs.index_bytes + rs.slots * (dv * static_cast<std::int64_t>(sizeof(float)) + 8);
        std::int64_t seen = table_bytes.load();
        while (bytes > seen && !table_bytes.compare_exchange_weak(seen, bytes)) {
        }
      }
      for (std::int64_t i = 0; i < n; ++i) {
        if (rounds_used[i] > 1) {
          for (std::int64_t c = 0; c < dv; ++c) oh[i * dv + c] /= static_cast<float>(rounds_used[i]);
        }
      }
    }
  });
  if (stats) *stats = {buckets_used.load(), table_bytes.load()};
}

void bucket_backward(const Dims& d, const float* q, const float* k, const std::int64_t* tokens, const float* grad_out,
                     float* grad_v, const BucketOptions& o) {
  check_bucket(d, o, q, k, tokens, "bucket_backward");
  check_pointer(grad_out, "grad_out", "bucket_backward");
  check_pointer(grad_v, "grad_v", "bucket_backward");
  const std::int64_t n = d.queries, dim = d.dim, dv = d.value_dim;
  parallel_for(d.heads, o.threads, [&](std::int64_t begin, std::int64_t end) {
    BucketHasher hasher(o);
    Buffer<float> sums;
    Buffer<std::int64_t> counts;
    Buffer<std::int32_t> rounds_used(n);
    Buffer<float> query_count(static_cast<std::int64_t>(o.rounds) * n);  // keys each query averaged, per round
    for (std::int64_t h = begin; h < end; ++h) {
      const float* gh = grad_out + h * n * dv;
      float* gv = grad_v + h * n * dv;
      std::fill_n(gv, n * dv, 0.0f);
      std::fill_n(rounds_used.data(), n, 0);
      std::vector<RoundSlots> all;
      // Forward bookkeeping: how many keys each query averaged in each round.
      for (int r = 0; r < o.rounds; ++r) {
        all.push_back(round_slots(d, o, r, q ? q + h * n * dim : nullptr, k ? k + h * n * dim : nullptr,
                                  tokens ? tokens + h * n : nullptr, hasher));
        const RoundSlots& rs = all.back();
        counts.zero(rs.slots);
        if (!o.causal) {
          for (std::int64_t i = 0; i < n; ++i) ++counts[rs.key_slot[static_cast<std::size_t>(i)]];
        }
        for (std::int64_t i = 0; i < n; ++i) {
          if (o.causal) ++counts[rs.key_slot[static_cast<std::size_t>(i)]];
          const std::int32_t s = rs.query_slot[static_cast<std::size_t>(i)];
          const std::int64_t c = s == kNoSlot ? 0 : counts[s];
          query_count[r * n + i] = static_cast<float>(c);
          rounds_used[i] += c > 0;
        }
      }
      for (int r = 0; r < o.rounds; ++r) {
        const RoundSlots& rs = all[static_cast<std::size_t>(r)];
        sums.zero(rs.slots * dv);
        auto add_query = [&](std::int64_t i) {
          const std::int32_t s = rs.query_slot[static_cast<std::size_t>(i)];
          const float c = query_count[r * n + i];
          if (c > 0) add_row(sums.data() + s * dv, gh + i * dv, 1.0f / (c * static_cast<float>(rounds_used[i])), dv);
        };
        if (!o.causal) {
          for (std::int64_t i = 0; i < n; ++i) add_query(i);
        }
        for (std::int64_t i = n - 1; i >= 0; --i) {
          if (o.causal) add_query(i);
          add_row(gv + i * dv, sums.data() + rs.key_slot[static_cast<std::size_t>(i)] * dv, 1.0f, dv);
        }
      }
    }
  });
}

void bucket_reference_forward(const Dims& d, const float* q, const float* k, const float* v, const std::int64_t* tokens,
                              double* out, const BucketOptions& o) {
  check_bucket(d, o, q, k, tokens, "bucket_reference_forward");
  const std::int64_t n = d.queries, dv = d.value_dim;
  std::vector<std::uint32_t> key_ids(static_cast<std::size_t>(o.rounds * d.heads * n)), query_ids(key_ids.size());
  bucket_ids(d, k, tokens, o, key_ids.data());
  bucket_ids(d, o.key == BucketKey::token ? k : q, tokens, o, query_ids.data());
  for (std::int64_t h = 0; h < d.heads; ++h) {
    for (std::int64_t i = 0; i < n; ++i) {
      double* o_row = out + (h * n + i) * dv;
      std::fill_n(o_row, dv, 0.0);
      int used = 0;
      for (int r = 0; r < o.rounds; ++r) {
        const std::uint32_t* kid = key_ids.data() + (r * d.heads + h) * n;
        const std::uint32_t qid = query_ids[static_cast<std::size_t>((r * d.heads + h) * n + i)];
        std::vector<double> mean(static_cast<std::size_t>(dv), 0.0);
        std::int64_t count = 0;
        for (std::int64_t j = 0; j < (o.causal ? i + 1 : n); ++j) {
          if (kid[j] != qid) continue;
          ++count;
          for (std::int64_t c = 0; c < dv; ++c) mean[static_cast<std::size_t>(c)] += v[(h * n + j) * dv + c];
        }
        if (count == 0) continue;
        ++used;
        for (std::int64_t c = 0; c < dv; ++c)
          o_row[c] += mean[static_cast<std::size_t>(c)] / static_cast<double>(count);
      }
      for (std::int64_t c = 0; c < dv; ++c) o_row[c] /= std::max(used, 1);
    }
  }
}

}  // namespace hashmem::attention
