/* hashmem/c_api.h — the C API of hashmem: open an Engram table file and gather its rows as floats; serve the
 * Engram rows of a changing batch of requests (sessions, hashmem/session.hpp) to an inference engine.
 *
 * Plain C (C99 and C++), in the style of rocksdb/c.h and sqlite3.h: opaque handles, no exceptions, no C++
 * types. Link with libhashmem (shared or static; see docs/serving.md).
 *
 * Errors: every fallible call takes `char** errptr`. On success *errptr is left untouched. On failure the call
 * stores a malloc'd, NUL-terminated message naming the problem (the file, the option, the tensor or row at fault); if *errptr was already non-NULL, that earlier message is freed first (as
 * rocksdb does), so one `char* err = NULL` may be passed to several calls and checked once. The caller frees the
 * message with hm_free. errptr may be NULL: the message is then dropped, and only a returned NULL tells of the
 * failure (so pass one to the void calls). No exception ever leaves the library, std::bad_alloc included.
 *
 * Threads: an hm_table may be used from many threads at once (gathers and prefetches share it); hm_table_close
 * must not race with any other call on the same table.
 * Ownership: hm_table_open returns a table the caller owns and releases with hm_table_close; strings returned
 * through errptr belong to the caller (hm_free); hm_version's string is static.
 */
#ifndef HASHMEM_C_API_H
#define HASHMEM_C_API_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* An open table file (the tiered store of hashmem/store.hpp). */
typedef struct hm_table hm_table;

/* The library version, "MAJOR.MINOR.PATCH" (static storage). */
const char* hm_version(void);

/* Frees memory the library handed to the caller (error messages). NULL-safe. */
void hm_free(void* ptr);

/* Opens the table file at `path`, read-only. options_json: NULL or "" for the defaults, else a JSON object with
 *   "tier":        "dram" (load the whole table; the default), "ssd" (read rows from the file with O_DIRECT
 *                  behind a DRAM cache) or "cluster" (read rows from a Redis Cluster the table was pushed to with
 *                  `hashmem table push`, behind the same DRAM cache; `path` must then be NULL),
 *   "dram_budget": bytes of DRAM for cached rows on the ssd and cluster tiers (a non-negative integer; default 0),
 *   "cluster":     the cluster tier's "HOST:PORT" of any node ("HOST:PORT,HOST:PORT" for several),
 *   "name":        the cluster tier's table name (as pushed),
 *   "replica_reads": true to spread the cluster tier's row reads over each master and its replicas (replicas lag
 *                  writes; for tables being served, not trained; default false).
 * Unknown keys and values of the wrong type are errors naming them. Returns NULL (and sets *errptr) on failure:
 * a missing or damaged file, bad options, an unreachable cluster, out of memory. */
hm_table* hm_table_open(const char* path, const char* options_json, char** errptr);

/* Closes the table, waiting for reads in flight. NULL-safe. */
void hm_table_close(hm_table* table);

/* Tensors (Engram layers) in the file, in file order. REQUIRES: table != NULL. */
int hm_table_tensors(const hm_table* table);

/* Rows of tensor `tensor` (0-based, file order); -1 if `tensor` is out of range. REQUIRES: table != NULL. */
int64_t hm_table_rows(const hm_table* table, int tensor);

/* Values per row (the same for every tensor). REQUIRES: table != NULL. */
int64_t hm_table_dim(const hm_table* table);

/* Writes rows[0..n) of tensor `tensor` into out[n × dim] as floats, in the order of `rows` (duplicates allowed),
 * whatever the tier and stored dtype (bf16 and fp8 rows are decoded). REQUIRES: table != NULL; rows and out
 * point to n ids / n × dim floats (may be NULL when n == 0). An out-of-range tensor or row is an error naming it;
 * out is then unspecified. */
void hm_table_gather_f32(hm_table* table, int tensor, const int64_t* rows, size_t n, float* out, char** errptr);

/* Prefetch: starts reading rows[0..n) of `tensor` (on the ssd tier, reads are issued now and the rows are
 * pinned in the cache) and returns a ticket, or NULL on failure (out-of-range tensor or row). The ticket is
 * consumed by hm_ticket_gather_f32, which writes the rows into out[n × dim] and frees the ticket whether it
 * succeeds or not; hm_ticket_free drops a ticket without gathering (NULL-safe). Rows are returned as of the
 * gather. Threads: a ticket belongs to one thread at a time; it must be gathered or freed before its table is
 * closed. */
typedef struct hm_ticket hm_ticket;
hm_ticket* hm_table_prefetch(hm_table* table, int tensor, const int64_t* rows, size_t n, char** errptr);
void hm_ticket_gather_f32(hm_ticket* ticket, float* out, char** errptr);
void hm_ticket_free(hm_ticket* ticket);

/* ---- Sessions (hashmem/session.hpp; docs/serving.md "Sessions") ----
 *
 * A session owns one table and a set of requests, each with a stable id (1, 2, 3, ...; never reused) and its own
 * n-gram history. Tokens are raw tokenizer ids (compressed inside; negative ids pass through, ids at or past the
 * tokenizer size are errors naming the request and id). One token's rows are layers × columns × dim values:
 * `layers` Engram tensors of the table (file order), `columns` = (max_ngram − 1) · heads (24 for DeepSeek-V4.1),
 * `dim` values per row; outputs are float or bf16 (uint16_t bits); f32, bf16 and fp8 rows are decoded.
 * Per decode step: hm_session_prefetch names each token's request (ids[b] for tokens[b]; any subset of the
 * requests, each at most once) and starts the reads; then hm_session_gather_* writes [batch, layers, columns,
 * dim], or hm_session_gather_layer_* one layer's [batch, columns, dim] at a time (layer 0 before the model
 * reaches the first Engram layer, layer 1 later, ...). One step is in flight at a time: prefetch fails while
 * layers of the previous step are not gathered (hm_session_cancel drops them). A failed call leaves every history
 * as it was.
 * Threads: a session belongs to one thread at a time (hand it over with your own synchronization); different
 * sessions, hm_session_clone's sharing one table included, may be used from different threads at once.
 * Ownership: hm_session_open and hm_session_clone return sessions the caller releases with hm_session_close;
 * buffers belong to the caller. */
typedef struct hm_session hm_session;

/* Opens the table at `table_path` for a session, reading its Engram layout from the file. options_json: NULL or
 * "" for the defaults, else a JSON object with "tier", "dram_budget", "cluster" and "name" (as hm_table_open;
 * table_path NULL for the cluster tier) and
 *   "compression": the path of the tokenizer's compression JSON (`hashmem engram compress --out`); required when
 *                  the table was made for one (it records the lookup's SHA-256, and a different file is an
 *                  error); without it tokens must be compressed ids already.
 * Returns NULL (and sets *errptr) on failure. */
hm_session* hm_session_open(const char* table_path, const char* options_json, char** errptr);
/* A new session on the same table (no second copy of it) and compression, with no requests: one per engine
 * thread. Sessions, clones included, may be used from different threads at once; each by one thread at a time.
 * Returns NULL (and sets *errptr) on failure. */
hm_session* hm_session_clone(const hm_session* session, char** errptr);
/* Closes the session, dropping a step in flight; the table closes with the last session using it. NULL-safe. */
void hm_session_close(hm_session* session);

/* Shape of one token's rows. REQUIRES: session != NULL. */
int64_t hm_session_layers(const hm_session* session);
int64_t hm_session_columns(const hm_session* session);
int64_t hm_session_dim(const hm_session* session);

/* A new request with a fresh history; returns its id (>= 1), or -1 on failure (out of memory). */
int64_t hm_session_add(hm_session* session, char** errptr);
/* Drops request `id` and its history. A step in flight still writes the request's rows at its position. Errors:
 * an unknown id. */
void hm_session_remove(hm_session* session, int64_t id, char** errptr);

/* Hashes tokens[0..n) continuing request `id`'s history and writes their rows into out[n × layers × columns ×
 * dim], read as one batch. May be repeated (chunked prefill). REQUIRES: tokens and out non-NULL when n > 0. */
void hm_session_prefill_f32(hm_session* session, int64_t id, const int64_t* tokens, size_t n, float* out,
                            char** errptr);
void hm_session_prefill_bf16(hm_session* session, int64_t id, const int64_t* tokens, size_t n, uint16_t* out,
                             char** errptr);
/* Several requests' prompts at once: request ids[i] gets the next lengths[i] tokens of `tokens` (the prompts
 * concatenated in the order of ids); all reads start before the first gather, so they overlap. out[sum of lengths ×
 * layers × columns × dim], in the same order. Errors (before any history moves): an unknown or repeated id, a
 * negative length, a bad token. */
void hm_session_prefill_batch_f32(hm_session* session, const int64_t* ids, const int64_t* lengths, size_t count,
                                  const int64_t* tokens, float* out, char** errptr);
void hm_session_prefill_batch_bf16(hm_session* session, const int64_t* ids, const int64_t* lengths, size_t count,
                                   const int64_t* tokens, uint16_t* out, char** errptr);

/* Starts a decode step: tokens[b] is the next token of request ids[b], b < batch. Errors: layers of the previous
 * step not gathered, an unknown or repeated id, a bad token. */
void hm_session_prefetch(hm_session* session, const int64_t* ids, const int64_t* tokens, size_t batch,
                         char** errptr);
/* Every layer of the step → out[batch × layers × columns × dim]; ends the step. Errors: no step in flight, a layer
 * already gathered by hm_session_gather_layer_*. */
void hm_session_gather_f32(hm_session* session, float* out, char** errptr);
void hm_session_gather_bf16(hm_session* session, uint16_t* out, char** errptr);
/* Layer `layer` (0 <= layer < hm_session_layers) of the step → out[batch × columns × dim]; the step ends when every
 * layer is gathered. Errors: no step in flight, layer out of range or already gathered. */
void hm_session_gather_layer_f32(hm_session* session, int layer, float* out, char** errptr);
void hm_session_gather_layer_bf16(hm_session* session, int layer, uint16_t* out, char** errptr);
/* Drops the step in flight (histories keep its tokens). NULL-safe; no-op without a step. */
void hm_session_cancel(hm_session* session);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* HASHMEM_C_API_H */
