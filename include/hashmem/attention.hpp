// hashmem/attention.hpp — attention on the CPU, exact and hashed: a tiled exact kernel (online softmax,
// flash-attention style) and three cheaper approximations that pick which keys a query sees by hashing —
// Reformer-style LSH, hash-bucket means (the seed's mechanism) and bit-signature top-k for decoding. Each fast
// path has a plain O(n²) reference beside it (the *_reference functions), used by the tests.
//
// Layout: every tensor is float32, row-major, [heads, rows, width] with no gaps: q [H, n, d], k [H, m, d],
// v [H, m, dv], out [H, n, dv], lse [H, n]. "heads" are independent problems (batch × heads flattened).
// Scores are scale·q·k with scale = 1/√d unless Options::scale > 0; lse is the natural log-sum-exp of a row.
// Causal masks align the last query with the last key (query i sees keys j <= i + m − n), so a single query
// against a cache of m keys sees them all.
// Threads: every function is reentrant and uses up to `threads` threads (0 = one per core); results do not
// depend on the thread count. Work is split over heads (and, for exact attention, over query tiles).
// Ownership: callers own every buffer; functions allocate only their working buffers (counted by
// peak_workspace_bytes) and free them before returning.
// Errors: a bad argument throws hashmem::Error whose message names it (dims, rounds, top_k, ...).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace hashmem::attention {

struct Dims {
  std::int64_t heads = 1;
  std::int64_t queries = 1;    // n
  std::int64_t keys = 1;       // m (LSH and bucket attention are self-attention: keys == queries)
  std::int64_t dim = 1;        // d, of queries and keys
  std::int64_t value_dim = 1;  // dv
};

// ---- exact attention ----

struct ExactOptions {
  bool causal = false;
  double scale = 0;  // 0: 1/√d
  int threads = 0;
};

// out = softmax(scale·q·kᵀ [+ causal mask]) v per head; lse (may be null) receives each row's log-sum-exp,
// which exact_backward needs. Tiles of 64 queries × 256 keys with an online softmax, so memory beyond the
// inputs is O((m + tile)·d) per thread, never n×m. A few queries (decoding) stream over the keys instead.
// REQUIRES: all dims >= 1; causal needs keys >= queries. Throws Error naming the bad dim otherwise.
void exact_forward(const Dims& dims, const float* q, const float* k, const float* v, float* out, float* lse,
                   const ExactOptions& options = {});

// Gradients of Σ grad_out ⊙ out with respect to q, k and v (overwritten), recomputing the probabilities from
// the saved lse (flash-attention-2 order: key tiles outer, query tiles inner). Parallel over heads only.
// REQUIRES: out and lse from exact_forward with the same inputs and options.
void exact_backward(const Dims& dims, const float* q, const float* k, const float* v, const float* out,
                    const float* lse, const float* grad_out, float* grad_q, float* grad_k, float* grad_v,
                    const ExactOptions& options = {});

// The definition, computed with whole score rows in T (float or double): the reference of the tests.
template <class T>
void exact_reference_forward(const Dims& dims, const T* q, const T* k, const T* v, T* out, T* lse,
                             const ExactOptions& options = {});
template <class T>
void exact_reference_backward(const Dims& dims, const T* q, const T* k, const T* v, const T* grad_out, T* grad_q,
                              T* grad_k, T* grad_v, const ExactOptions& options = {});

// ---- LSH attention (Reformer) ----
//
// Shared QK: the queries are x = qk and the keys are x/‖x‖. Per round r a random rotation R_r [d, b/2] hashes a
// key to argmax([x̂R_r; −x̂R_r]) (b buckets; b a power of two above 64 is factorised into two rotations b1·b2 so
// hashing stays O(n·d·√b)); positions are stably sorted by (bucket, position) and cut into chunks of `chunk`;
// a query attends the keys of its chunk and of the previous one (the first chunk only its own). A query never
// sees itself unless nothing else is visible (its score is −1e5, as in Reformer), so position 0 under the
// causal mask attends to itself alone. Rounds are merged with log-sum-exp weights: the result is the softmax
// over all (round, key) pairs a query saw, so a key seen in two rounds counts twice. Rotations are drawn from
// `seed` (the same for every head) and are deterministic. Any n: the last chunk may be short.
struct LshOptions {
  int rounds = 4;
  std::int64_t buckets = 0;  // even, >= 2; 0: the power of two >= 2·n/chunk
  std::int64_t chunk = 64;
  bool causal = false;
  double scale = 0;  // 0: 1/√d
  std::uint64_t seed = 0;
  int threads = 0;
};

// out [H, n, dv] and lse [H, n] (may be null; lsh_backward needs it). REQUIRES: queries == keys >= 1, dim,
// value_dim >= 1, 1 <= rounds <= 64, chunk >= 1, buckets 0 or even >= 2. Throws Error naming the argument.
void lsh_forward(const Dims& dims, const float* qk, const float* v, float* out, float* lse,
                 const LshOptions& options = {});

// Gradients to qk (through the queries and the normalised keys; none through the hash, which is piecewise
// constant) and v, overwritten. REQUIRES: out and lse from lsh_forward with the same inputs and options.
void lsh_backward(const Dims& dims, const float* qk, const float* v, const float* out, const float* lse,
                  const float* grad_out, float* grad_qk, float* grad_v, const LshOptions& options = {});

// The buckets of every position: [rounds, H, n], in [0, buckets). The hash of lsh_forward.
void lsh_buckets(const Dims& dims, const float* qk, const LshOptions& options, std::int32_t* buckets);

// For each of `queries` (positions in head `head`): the keys it attends in each round, concatenated over the
// rounds (a key seen in two rounds appears twice), masks applied — found by sorting with std::stable_sort, not
// by lsh_forward's counting sort. The recall figure of the bench uses it, and so does the reference.
// Throws Error for a head or query out of range (and for the options lsh_forward rejects).
std::vector<std::vector<std::int64_t>> lsh_attended_keys(const Dims& dims, const float* qk, const LshOptions& options,
                                                         std::int64_t head, const std::vector<std::int64_t>& queries);

// The definition over lsh_attended_keys, in T: the softmax over every (round, key) pair with the self score.
template <class T>
void lsh_reference_forward(const Dims& dims, const float* qk, const float* v, T* out, const LshOptions& options = {});

// ---- hash-bucket attention ----
//
// Every position gets, per round, a bucket id of `bucket_bits` bits: a strong hash (SHA-256 or xxh3, salted
// with seed and round) of a quantised key — either the sign bits of x·P_r (P_r a seeded Gaussian [d,
// sign_bits]; the "hybrid": LSH groups coarsely, the hash spreads the groups over the bucket space), with x = q
// for the query side and x = k for the key side, or the token id itself (exact content: queries and keys of
// the same token share a bucket). Output of query i in round r: the mean of v_j over the keys j <= i (causal;
// all j otherwise) in the query's bucket; rounds are averaged over those whose bucket is not empty (zero when
// all are). Running per-bucket sums make it O(n·(d·sign_bits + dv)) per round, with memory proportional to the
// buckets in use, never n×n. The hashed message is 20 bytes: seed (8, little-endian), round (4), key (8: the
// sign bits, or the token id); the bucket is the low bucket_bits of SHA-256's first 4 bytes (little-endian) or
// of XXH3_64bits. P_r is drawn from (seed, r).
enum class BucketKey { lsh_bits, token };
enum class BucketHash { xxh3, sha256 };

struct BucketOptions {
  BucketKey key = BucketKey::lsh_bits;
  BucketHash hash = BucketHash::xxh3;
  int bucket_bits = 16;  // 16..32
  int sign_bits = 16;    // 1..64 (lsh_bits)
  int rounds = 1;        // 1..64
  bool causal = true;
  std::uint64_t seed = 0;
  int threads = 0;
};

struct BucketStats {
  std::int64_t buckets_used = 0;  // distinct key buckets, summed over heads and rounds
  std::int64_t table_bytes = 0;   // the largest per-bucket sum table held at once
};

// Bucket ids of x [H, n, d] (lsh_bits) or of tokens [H, n] (token; x unused): ids [rounds, H, n].
void bucket_ids(const Dims& dims, const float* x, const std::int64_t* tokens, const BucketOptions& options,
                std::uint32_t* ids);

// out [H, n, dv]. tokens [H, n] is needed for BucketKey::token (else may be null). stats may be null.
// REQUIRES: queries == keys >= 1, 16 <= bucket_bits <= 32, 1 <= sign_bits <= 64, 1 <= rounds <= 64.
void bucket_forward(const Dims& dims, const float* q, const float* k, const float* v, const std::int64_t* tokens,
                    float* out, const BucketOptions& options = {}, BucketStats* stats = nullptr);

// The output is linear in v with weights fixed by the hashes: grad_v (overwritten) is exact; q and k get no
// gradient (the hash is piecewise constant).
void bucket_backward(const Dims& dims, const float* q, const float* k, const std::int64_t* tokens,
                     const float* grad_out, float* grad_v, const BucketOptions& options = {});

// The definition: for each query and round, a scan over all keys for the same bucket (O(n²)), in double.
void bucket_reference_forward(const Dims& dims, const float* q, const float* k, const float* v,
                              const std::int64_t* tokens, double* out, const BucketOptions& options = {});

// ---- bit-signature top-k (decoding) ----
//
// SimHash: a key's signature is the sign bits of k·P (P a seeded Gaussian [d, bits]); Hamming distance between
// signatures estimates the angle. One query against m cached keys: scan the signatures with popcount, keep
// the top_k closest (ties to the earlier position) among the keys outside the windows, add the first `sink`
// and the last `recent` positions, and take the exact softmax over that selection.
struct SignatureOptions {
  int bits = 64;  // 32 or 64
  std::int64_t top_k = 64;
  std::int64_t sink = 4;
  std::int64_t recent = 64;
  double scale = 0;  // 0: 1/√d
  std::uint64_t seed = 0;
  int threads = 0;
};

// Signatures of x [rows, d] into out [rows] (the low `bits` bits used). Decoders append one per new key.
// REQUIRES: rows >= 0, dim >= 1, bits 32 or 64.
void simhash_signatures(std::int64_t rows, std::int64_t dim, const float* x, int bits, std::uint64_t seed,
                        std::uint64_t* out);

// Positions selected for one query signature among m key signatures, ascending: the windows and the top_k
// closest others. Size min(m, sink + recent + top_k).
std::vector<std::int64_t> signature_select(std::uint64_t query_signature, const std::uint64_t* key_signatures,
                                           std::int64_t keys, const SignatureOptions& options);

// One query per head: q [H, d], k [H, m, d], v [H, m, dv], key_signatures [H, m] → out [H, dv]. selected
// (may be null) receives each head's selection, [H, min(m, sink + recent + top_k)].
// REQUIRES: dims.queries == 1, 1 <= top_k <= keys, sink, recent >= 0, bits 32 or 64.
void signature_topk_decode(const Dims& dims, const float* q, const float* k, const float* v,
                           const std::uint64_t* key_signatures, float* out, std::int64_t* selected,
                           const SignatureOptions& options = {});

// ---- inputs and measurement ----

// Q/K/V of one attention problem, as the bench reads them: a safetensors file with F32 tensors "q", "k", "v"
// of shape [heads, n, d] (e.g. captured from the tiny LM).
struct Inputs {
  std::int64_t heads = 0, tokens = 0, dim = 0;
  std::vector<float> q, k, v;
};
// Throws Error naming the file and the missing or malformed tensor.
Inputs load_inputs(const std::string& path);
// Writes atomically (OutputFile). REQUIRES: q, k, v each heads·tokens·dim values.
void save_inputs(const std::string& path, const Inputs& inputs);

// Bytes of working buffers the functions above hold at once, process-wide, since the last reset: what each
// method needs beyond its inputs and outputs.
void reset_peak_workspace();
std::int64_t peak_workspace_bytes();

}  // namespace hashmem::attention
