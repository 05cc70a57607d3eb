// hashmem/engram.hpp — Engram addressing (DeepSeek, deepseek-ai/Engram demo; arXiv 2601.07372): the part that
// turns tokens into table rows. Bit-exact with the demo (SPEC §2):
//
//   tokens ──compress──▶ compressed ids ──n-gram mix (per-layer odd multipliers)──▶ mix
//          ──mod prime[layer][order][head]──▶ hash ──+ offset[head]──▶ row id in the layer's table
//
// Units: ids and rows are int64; a layer's table has `rows` rows (sum of its primes); each (order, head)
// column owns the row range [offset, offset + prime).
// Negative ids follow numpy semantics: products and XORs wrap as int64 and `mix % prime` is a floor modulo
// (result in [0, prime)); the compressed tokenizer passes negative ids through unchanged, as the demo does.
// Ids >= compressed_vocab are rejected (they could overflow the mix the multipliers are sized for).
// Threads: functions are reentrant; hash_batch may use several threads internally. A StreamingHasher
// belongs to one thread. Errors: bad configs, ids or files throw hashmem::Error naming the problem.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "hashmem/error.hpp"

namespace hashmem::engram {

struct Config {
  std::vector<std::int64_t> vocab_per_order;  // per n-gram order 2..max_ngram: the table size each head starts from
  int max_ngram = 3;                          // largest n-gram order (>= 2)
  int heads = 8;                              // hash heads per order
  std::vector<std::int64_t> layers;           // layer ids that carry an Engram table (non-empty, >= 0)
  std::int64_t pad_id = 2;                    // compressed id used to left-pad the n-gram window
  std::uint64_t seed = 0;                     // multipliers: default_rng(seed + 10007·layer)
  std::int64_t compressed_vocab = 0;          // size of the compressed vocabulary (> 0)
  std::int64_t head_dim = 0;                  // row width per head (for sizes; 0 = unknown)
  // Optional explicit constants (empty = derive): per layer (in `layers` order).
  std::vector<std::vector<std::int64_t>> multipliers;           // [layer][max_ngram]
  std::vector<std::vector<std::vector<std::int64_t>>> primes;   // [layer][order-2][head]

  int columns() const { return (max_ngram - 1) * heads; }
};

// Throws Error naming the first invalid field: empty layer list, max_ngram < 2, heads < 1, a vocab_per_order
// of the wrong length or < 2, compressed_vocab < 1, vocabularies too large for int64 row arithmetic, or
// compressed_vocab so large that the multiplier bound leaves numpy's 64-bit sampling path (>= 2^30).
void validate(const Config& config);

// Presets: "deepseek-demo" (vocab 5·129280 per order, orders 2–3, 8 heads, layers [1,15], pad 2, compressed
// 99,092), "deepseek-v4.1" (vocab 16,000,000, orders 2–4, 8 heads, layers [1,14], head_dim 256), "paper-27b"
// (vocab 2,262,400, layers [2,15], orders 2–3, 8 heads, d_mem 1280), "paper-40b" (vocab 7,239,680, layers
// [2,15], orders 2–3, 8 heads). Throws Error listing the names for an unknown one.
Config preset(const std::string& name);
std::vector<std::string> preset_names();

// `config` with every table `factor` times smaller: vocab_per_order[i] → round(vocab_per_order[i] / factor), so
// make_layout's prime walk picks primes just above the smaller sizes exactly as it does at full size (each head's
// rows stay uniform: mix % prime over consecutive distinct primes). Multipliers, layers and everything else stay.
// For benchmarks that need a real shape on a smaller disk (`hashmem bench offload`). REQUIRES: factor >= 1, no
// explicit primes (they would not scale); the scaled sizes must be >= 2. Throws Error naming the problem.
Config scaled(const Config& config, double factor);

// Reads a JSON config: the keys of ../shared/conformance/engram/hash-cases.json (vocab_per_order, max_ngram,
// heads, layers, pad_id, seed, compressed_vocab) plus optional head_dim, multipliers, primes, and "preset"
// (a preset whose fields the others override). Throws Error naming the file and key.
Config load_config(const std::string& path);
Config config_from_json_text(const std::string& text, const std::string& origin);

struct LayerLayout {
  std::int64_t layer_id = 0;
  std::vector<std::int64_t> multipliers;               // [max_ngram], odd
  std::vector<std::vector<std::int64_t>> primes;       // [order-2][head]
  std::vector<std::int64_t> offsets;                   // [columns]: first row of each (order, head) column
  std::int64_t rows = 0;                               // sum of primes
};

struct Layout {
  Config config;
  std::vector<LayerLayout> layers;  // in config.layers order
};

// Derives multipliers and the global prime walk (a prime is used once across all layers and orders).
Layout make_layout(const Config& config);

// The layout's config as JSON with its multipliers and primes written out, so that
// make_layout(config_from_json_text(text)) reproduces the layout without re-deriving anything.
std::string config_to_json_text(const Layout& layout);

// Deterministic Miller–Rabin, exact for every 64-bit n.
bool is_prime(std::uint64_t n);

// ---- hashing ----

// Hashes compressed ids [batch, tokens] (row-major) for one layer into out [batch, tokens, columns]:
// column (n−2)·heads + j holds mix_n % prime[n][j], plus offsets[column] if `add_offsets` (table row ids).
// `threads` = 0 uses every core. Throws Error for an id >= compressed_vocab.
void hash_batch(const Layout& layout, std::size_t layer_index, const std::int64_t* ids, std::int64_t batch,
                std::int64_t tokens, std::int64_t* out, bool add_offsets, int threads = 1);

// The same, written as plainly as possible (integer %, no threads): the reference the fast path is tested
// against.
void hash_batch_reference(const Layout& layout, std::size_t layer_index, const std::int64_t* ids,
                          std::int64_t batch, std::int64_t tokens, std::int64_t* out, bool add_offsets);

// Hashes a stream chunk by chunk (decode or chunked prefill): keeps only the last max_ngram−1 compressed ids
// of each sequence, so any split of a sequence gives exactly the hashes of hashing it whole.
struct HashKernel;  // per-layer constants of the hashing kernel (internal)

class StreamingHasher {
 public:
  // REQUIRES: batch >= 1, layer_index < layout.layers.size(). Copies what it needs from `layout`.
  StreamingHasher(const Layout& layout, std::size_t layer_index, std::int64_t batch, bool add_offsets);
  ~StreamingHasher();
  StreamingHasher(const StreamingHasher&) = delete;
  StreamingHasher& operator=(const StreamingHasher&) = delete;

  // ids [batch, tokens] → out [batch, tokens, columns].
  void push(const std::int64_t* ids, std::int64_t tokens, std::int64_t* out);
  void reset();  // start new sequences (history = pad)

 private:
  std::unique_ptr<const HashKernel> kernel_;
  std::int64_t batch_;
  std::vector<std::int64_t> history_;  // [batch, max_ngram-1], oldest first
  std::vector<std::int64_t> window_;   // scratch: history + chunk per row
};

// ---- tokenizer compression ----

// The demo's CompressedTokenizer: each id of the tokenizer maps to a compressed id; ids whose decoded text
// normalises to the same key share one. text = decode([id]) (byte-level BPE: the token's bytes; added tokens:
// their content; ids no entry names: ""). key = the raw token string if text is not clean UTF-8 or contains
// U+FFFD, else normalize(text), or text if that is empty; compressed ids are assigned first-seen in id order.
// normalize = NFKC → NFD → drop nonspacing marks (Mn) → lowercase → "[ \t\r\n]+" → " " → a string that is
// exactly " " stays " " → strip (Python str.strip whitespace). ICU does the Unicode work (docs/engram.md
// lists where ICU's and Python's Unicode tables may disagree).
struct Compression {
  std::int64_t tokenizer_entries = 0;
  std::int64_t compressed_vocab = 0;
  std::vector<std::int64_t> lookup;  // [tokenizer_entries] → compressed id
  std::vector<std::string> keys;     // [compressed_vocab] the normalised key of each compressed id
};

// From a Hugging Face tokenizer.json with a byte-level BPE model (model.vocab + added_tokens). Throws Error
// naming the file and problem when it is not JSON, not a BPE model with a ByteLevel decoder, gives one id to two
// vocab tokens, has a token outside the byte-level alphabet, an id that is not an integer in [0, 2^26), or ids
// that are mostly holes (the largest id at least 2 × the named tokens + 256).
Compression compress_hf_tokenizer(const std::string& tokenizer_json_path);
// From a SentencePiece model file: text = DecodeIds({id}) via libsentencepiece, except control and unknown
// pieces, which keep their piece string (as a Hugging Face decode([id]) shows them).
Compression compress_sentencepiece(const std::string& model_path);
// Picks by content: a JSON file is a HF tokenizer, anything else a SentencePiece model.
Compression compress_tokenizer(const std::string& path);

// The normaliser alone (UTF-8 in, UTF-8 out), exposed for tests and tools.
std::string normalize_token_text(const std::string& utf8);

// SHA-256 (hex) of the lookup written as decimal ids joined by "," — the fingerprint compress_ref.py prints,
// and what a table's metadata records to tie it to its tokenizer.
std::string lookup_sha256(const Compression& compression);

// The compression as one JSON object {"tokenizer_entries", "compressed_vocab", "lookup_sha256", "lookup",
// "keys"} (invalid UTF-8 in keys replaced): what `hashmem engram compress --out` and `hashmem train` write.
std::string compression_json(const Compression& compression);

// Maps token ids [n] to compressed ids with the lookup; negative ids pass through; ids >= tokenizer_entries
// throw Error naming the id and position.
void compress_ids(const Compression& compression, const std::int64_t* ids, std::size_t n, std::int64_t* out);

}  // namespace hashmem::engram
