/* The C API from C (C99, -Wall -Werror): open a table on both tiers, gather, prefetch, and the error paths.
 * Usage: hashmem_capi_consumer TABLE. Exit 0 when every check holds; each failure is printed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hashmem/c_api.h"

static int failures = 0;

static void check(int ok, const char* what, const char* detail) {
  if (!ok) {
    fprintf(stderr, "FAILED: %s%s%s\n", what, detail ? ": " : "", detail ? detail : "");
    ++failures;
  }
}

/* Gathers the same rows directly and through a prefetch ticket; returns the direct gather (caller frees). */
static float* gather_both(hm_table* t, int tensor, const int64_t* rows, size_t n) {
  char* err = NULL;
  const size_t dim = (size_t)hm_table_dim(t);
  float* direct = malloc(n * dim * sizeof(float));
  float* fetched = malloc(n * dim * sizeof(float));
  hm_table_gather_f32(t, tensor, rows, n, direct, &err);
  check(err == NULL, "gather", err);
  hm_ticket* ticket = hm_table_prefetch(t, tensor, rows, n, &err);
  check(ticket != NULL, "prefetch", err);
  hm_ticket_gather_f32(ticket, fetched, &err);
  check(err == NULL, "ticket gather", err);
  check(memcmp(direct, fetched, n * dim * sizeof(float)) == 0, "prefetch equals gather", NULL);
  hm_free(err);
  free(fetched);
  return direct;
}

static void check_errors(hm_table* t) {
  char* err = NULL;
  const int64_t bad = hm_table_rows(t, 0);
  float out[64];
  hm_table_gather_f32(t, 0, &bad, 1, out, &err);
  check(err != NULL && strstr(err, "row id") != NULL, "out-of-range row is named", err);
  hm_table_gather_f32(t, 99, &bad, 1, out, &err); /* the earlier message is freed */
  check(err != NULL && strstr(err, "no tensor 99") != NULL, "out-of-range tensor is named", err);
  hm_free(err);
  err = NULL;
  check(hm_table_open("/nonexistent/table", NULL, &err) == NULL && err != NULL, "bad path fails", err);
  hm_free(err);
  err = NULL;
  check(hm_table_open("/nonexistent/table", "{\"tier\": \"dram\", \"x\": 1}", &err) == NULL && err != NULL &&
            strstr(err, "unknown key \"x\"") != NULL, "unknown option key is named", err);
  hm_free(err);
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: %s TABLE\n", argv[0]);
    return 2;
  }
  char* err = NULL;
  hm_table* dram = hm_table_open(argv[1], NULL, &err);
  hm_table* ssd = hm_table_open(argv[1], "{\"tier\": \"ssd\", \"dram_budget\": 65536}", &err);
  if (dram == NULL || ssd == NULL) {
    fprintf(stderr, "open failed: %s\n", err ? err : "?");
    return 1;
  }
  const int64_t rows[] = {0, 3, 3, 17, 1};
  const size_t n = sizeof rows / sizeof rows[0];
  for (int tensor = 0; tensor < hm_table_tensors(dram); ++tensor) {
    float* a = gather_both(dram, tensor, rows, n);
    float* b = gather_both(ssd, tensor, rows, n);
    check(memcmp(a, b, n * (size_t)hm_table_dim(dram) * sizeof(float)) == 0, "dram equals ssd", NULL);
    free(a);
    free(b);
  }
  check_errors(dram);
  printf("hashmem %s: %d tensors, dim %lld, %d failures\n", hm_version(), hm_table_tensors(dram),
         (long long)hm_table_dim(dram), failures);
  hm_table_close(ssd);
  hm_table_close(dram);
  hm_table_close(NULL);
  return failures == 0 ? 0 : 1;
}
