/* hashmem/c_api.h — the C API of hashmem: open an Engram table file and gather its rows as floats.
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
 *   "tier":        "dram" (load the whole table; the default) or "ssd" (read rows from the file with O_DIRECT
 *                  behind a DRAM cache),
 *   "dram_budget": bytes of DRAM for cached rows on the ssd tier (a non-negative integer; default 0).
 * Unknown keys and values of the wrong type are errors naming them. Returns NULL (and sets *errptr) on failure:
 * a missing or damaged file, bad options, out of memory. */
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

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* HASHMEM_C_API_H */
