// The building blocks exact and LSH attention share: a register-blocked GEMM over packed panels, the packing,
// and one block of attention (a set of query rows against a set of key columns) forward with an online
// softmax and backward from a saved log-sum-exp. Masks are given by positions, so the exact kernel (positions
// are indices) and LSH (positions of the sorted slots) use the same code.
//
// Panels: a B operand [K, N] is stored as ceil(N / kPanel) panels, each K rows of kPanel floats (zero-padded
// past N); a Panels view says where panel 0 starts and how far apart panels are. N arguments are multiples of
// kPanel; C buffers have ldc >= N.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <new>

#include "attention/simd.hpp"

namespace hashmem::attention::tiles {

constexpr int kPanel = 2 * simd::kLanes;                                     // columns per packed panel (two vectors)
constexpr int kRows = simd::kLanes == 16 ? 8 : (simd::kLanes == 8 ? 6 : 4);  // rows per register block
constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;
// Reformer's score for a query's own key (natural units): it wins only when nothing else is visible.
constexpr float kSelfScore = -1e5f;
constexpr std::int32_t kPadding = -1;  // the position of a padded key slot

inline std::int64_t round_up(std::int64_t x, std::int64_t to) { return (x + to - 1) / to * to; }

// ---- working buffers, counted for peak_workspace_bytes() ----

void count_workspace(std::int64_t bytes);  // + on allocation, − on release

// A 64-byte-aligned array of T that is not initialised (zeroed with zero()).
template <class T>
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(std::int64_t size) { resize(size); }
  ~Buffer() { release(); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& other) noexcept : data_(other.data_), capacity_(other.capacity_) {
    other.data_ = nullptr;
    other.capacity_ = 0;
  }
  void resize(std::int64_t size) {
    if (size <= capacity_) return;
    release();
    const std::size_t bytes = (static_cast<std::size_t>(size) * sizeof(T) + 63) / 64 * 64;
    data_ = static_cast<T*>(std::aligned_alloc(64, bytes));
    if (!data_) throw std::bad_alloc();
    capacity_ = size;
    count_workspace(static_cast<std::int64_t>(bytes));
  }
  void zero(std::int64_t size) {
    resize(size);
    for (std::int64_t i = 0; i < size; ++i) data_[i] = T(0);
  }
  T* data() { return data_; }
  const T* data() const { return data_; }
  T& operator[](std::int64_t i) { return data_[i]; }
  const T& operator[](std::int64_t i) const { return data_[i]; }

 private:
  void release() {
    if (!data_) return;
    std::free(data_);
    count_workspace(-static_cast<std::int64_t>((static_cast<std::size_t>(capacity_) * sizeof(T) + 63) / 64 * 64));
    data_ = nullptr;
    capacity_ = 0;
  }
  T* data_ = nullptr;
  std::int64_t capacity_ = 0;
};

// ---- GEMM over panels ----

struct Panels {
  const float* data;
  std::int64_t panel_stride;  // floats from one panel to the next
};

// C[M, N] = A[M, K]·B[K, N], or with accumulate C = row_scale[r]·C + A·B (row_scale null: 1).
// A row-major with lda; B packed; N a multiple of kPanel.
void gemm(std::int64_t m, std::int64_t n, std::int64_t k, const float* a, std::int64_t lda, Panels b, float* c,
          std::int64_t ldc, bool accumulate, const float* row_scale = nullptr);

// B = Xᵀ for X [N rows, K] (rows picked through `index`, kPadding or past `count` = zero): panels of kPanel rows
// of X, each K × kPanel. `index` null means rows 0..count−1. dst holds round_up(n, kPanel)·k floats.
void pack_transposed(const float* x, std::int64_t ldx, const std::int32_t* index, std::int64_t count, std::int64_t n,
                     std::int64_t k, float* dst);
// B = X for X [K rows, N cols] (rows through `index` as above): panels of kPanel columns, each K × kPanel, panel
// stride k·kPanel. dst holds k·round_up(n, kPanel) floats.
void pack_rows(const float* x, std::int64_t ldx, const std::int32_t* index, std::int64_t count, std::int64_t k,
               std::int64_t n, float* dst);

// ---- one attention block ----

// Which scores of a block are masked: key positions kPadding always; keys after the query if causal; a key at
// the query's own position gets kSelfScore if self_score.
struct BlockMask {
  const std::int32_t* query_pos;  // [rows]
  const std::int32_t* key_pos;    // [cols]
  bool causal;
  bool self_score;
};

// Online-softmax state of `rows` query rows: running max (log2 units), sum and unnormalised output [rows, ldo].
struct RowState {
  float* max;
  float* sum;
  float* out;
  std::int64_t ldo;
};

void start_rows(std::int64_t rows, std::int64_t out_cols, RowState state);
// out /= sum; lse (natural log, may be null) = max + log2(sum) in nats.
void finish_rows(std::int64_t rows, std::int64_t out_cols, RowState state, float* lse);

// Adds a block of `cols` keys (a multiple of kPanel; padded keys masked by position) to the rows' state:
// S = q·Kᵀ (kt: K-dim `dim`, N = cols), P = exp2(S·score_scale − max), out = α·out + P·V (v: K-dim cols, N =
// value_cols, a multiple of kPanel). score_scale = scale·log2(e). mask null: nothing masked.
// scratch: rows·cols floats, plus rows floats in alpha.
void forward_block(std::int64_t rows, std::int64_t cols, std::int64_t dim, std::int64_t value_cols, const float* q,
                   std::int64_t ldq, Panels kt, Panels v, float score_scale, const BlockMask* mask, RowState state,
                   float* scratch, float* alpha);

// The operands of backward_block: the block's query rows and key columns in the layouts its five GEMMs read.
struct BackwardOperands {
  const float* q;  // [rows, dim], ldq
  std::int64_t ldq;
  const float* dout;  // [rows, value_dim], lddo
  std::int64_t lddo;
  Panels kt;           // Kᵀ: K-dim dim, N = cols
  Panels vt;           // Vᵀ: K-dim value_dim, N = cols
  Panels k_rows;       // K: K-dim cols, N = dim_cols
  Panels q_rows;       // Q: K-dim rows, N = dim_cols
  Panels dout_rows;    // dO: K-dim rows, N = value_cols
  const float* lse2;   // [rows] the forward's log-sum-exp in log2 units
  const float* delta;  // [rows] Σ dO ⊙ O
};

// The five packed layouts a sequence's backward blocks read, packed once per head (or LSH round): keys rows
// 0..key_rows through key_index (null: identity; kPadding or past key_count: zero), queries likewise.
// block() views one block of them.
struct BackwardPacks {
  std::int64_t dim = 0, value_dim = 0, key_rows = 0, query_rows = 0;
  Buffer<float> kt, vt, k_rows, q_rows, dout_rows;

  void pack(std::int64_t dim, std::int64_t value_dim, const float* k, const float* v, const std::int32_t* key_index,
            std::int64_t key_count, std::int64_t key_rows, const float* q, const float* dout,
            const std::int32_t* query_index, std::int64_t query_count, std::int64_t query_rows);
  // Operands of the block of queries from q0 (rows of q_a / dout_a, row-major) and keys from k0 (a multiple of
  // kPanel).
  BackwardOperands block(const float* q_a, const float* dout_a, const float* lse2, const float* delta, std::int64_t q0,
                         std::int64_t k0) const;
};

// Accumulates the block's contribution to dq [rows, dim_cols], dk [cols, dim_cols], dv [cols, value_cols]
// (all unscaled: multiply dq and dk by `scale` at the end). dim_cols / value_cols: dim and value_dim rounded up
// to kPanel. scratch: 3·rows·cols floats.
void backward_block(std::int64_t rows, std::int64_t cols, std::int64_t dim, std::int64_t value_dim,
                    const BackwardOperands& op, float score_scale, const BlockMask* mask, float* dq, float* dk,
                    float* dv, float* scratch);

// ---- one query against a list of keys (decoding) ----

// out[dv] = softmax(scale·q·k_j) v over the keys j in `keys` (count of them; null: 0..count−1); lse (may be
// null). Streams the rows of k and v; scratch holds 256 floats.
void decode_rows(std::int64_t dim, std::int64_t value_dim, const float* q, const float* k, const float* v,
                 const std::int64_t* keys, std::int64_t count, float scale, float* out, float* lse, float* scratch);

float dot(const float* a, const float* b, std::int64_t n);

}  // namespace hashmem::attention::tiles
