/* The C API from C (C99, -Wall -Werror): open a table on both tiers, gather, prefetch, and the error paths; then a
 * session driven as an engine would (prefill, decode steps gathered whole and layer by layer, add/remove).
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

/* An engine's loop over a session: two requests prefilled, decode steps, one request leaving and another joining.
 * A twin session gets the same calls and gathers each step whole; the first gathers it layer by layer, and each
 * layer must equal its slice of the whole (tests/test_capi.cpp checks the values against the C++ Session). */
static void drive_session(const char* path, const char* options) {
  char* err = NULL;
  hm_session* s = hm_session_open(path, options, &err);
  hm_session* twin = s ? hm_session_clone(s, &err) : NULL; /* the same table, its own requests */
  check(s != NULL && twin != NULL, "session open", err);
  if (s == NULL || twin == NULL) {
    hm_free(err);
    hm_session_close(s);
    hm_session_close(twin);
    return;
  }
  const size_t layers = (size_t)hm_session_layers(s), columns = (size_t)hm_session_columns(s);
  const size_t width = columns * (size_t)hm_session_dim(s), per_token = layers * width;
  int64_t ids[2], twin_ids[2];
  const int64_t prompt[] = {5, 9, 11, 2};
  float* prefilled = malloc(4 * per_token * sizeof(float));
  for (int r = 0; r < 2; ++r) {
    ids[r] = hm_session_add(s, &err);
    twin_ids[r] = hm_session_add(twin, &err);
    hm_session_prefill_f32(s, ids[r], prompt, 4, prefilled, &err);
  }
  { /* the twin prefills both prompts in one batch: the same histories */
    const int64_t lengths[2] = {4, 4};
    int64_t both[8];
    float* rows = malloc(8 * per_token * sizeof(float));
    for (int i = 0; i < 8; ++i) both[i] = prompt[i % 4];
    hm_session_prefill_batch_f32(twin, twin_ids, lengths, 2, both, rows, &err);
    check(memcmp(rows + 4 * per_token, prefilled, 4 * per_token * sizeof(float)) == 0, "batched prefill", NULL);
    free(rows);
  }
  check(err == NULL && ids[0] == 1 && ids[1] == 2, "add and prefill", err);
  float* whole = malloc(2 * per_token * sizeof(float));
  float* layer = malloc(2 * width * sizeof(float));
  for (int64_t step = 0; step < 6; ++step) {
    const int64_t tokens[2] = {step * 3 % 100, step * 7 % 100};
    hm_session_prefetch(s, ids, tokens, 2, &err);
    hm_session_prefetch(twin, twin_ids, tokens, 2, &err);
    hm_session_gather_f32(twin, whole, &err);
    for (size_t l = 0; l < layers; ++l) { /* per layer, as the model reaches each Engram layer */
      hm_session_gather_layer_f32(s, (int)l, layer, &err);
      for (size_t b = 0; b < 2; ++b) {
        check(memcmp(layer + b * width, whole + (b * layers + l) * width, width * sizeof(float)) == 0,
              "layer gather equals the whole gather", NULL);
      }
    }
    check(err == NULL, "decode step", err);
    if (step == 2) { /* request 1 leaves, a new one joins with the same history as request 2 */
      hm_session_remove(s, ids[0], &err);
      hm_session_remove(twin, twin_ids[0], &err);
      ids[0] = hm_session_add(s, &err);
      twin_ids[0] = hm_session_add(twin, &err);
      hm_session_prefill_f32(s, ids[0], prompt, 4, prefilled, &err);
      hm_session_prefill_f32(twin, twin_ids[0], prompt, 4, prefilled, &err);
    }
  }
  uint16_t bf16[8];
  hm_session_gather_bf16(s, bf16, &err);
  check(err != NULL && strstr(err, "no step in flight") != NULL, "gather before prefetch is named", err);
  hm_session_prefill_f32(s, 99, prompt, 1, prefilled, &err);
  check(err != NULL && strstr(err, "no request 99") != NULL, "unknown request is named", err);
  hm_session_remove(s, ids[0], NULL); /* errptr NULL: fine */
  hm_session_remove(s, ids[0], &err);
  check(err != NULL && strstr(err, "no request") != NULL, "removed request is gone", err);
  hm_free(err);
  err = NULL;
  check(hm_session_open(path, "{\"compression\": 3}", &err) == NULL && err != NULL &&
            strstr(err, "\"compression\" must be a path") != NULL, "bad compression option is named", err);
  hm_free(err);
  free(prefilled);
  free(whole);
  free(layer);
  hm_session_cancel(s);
  hm_session_close(s);
  hm_session_close(twin);
  hm_session_close(NULL);
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
  drive_session(argv[1], NULL);
  drive_session(argv[1], "{\"tier\": \"ssd\", \"dram_budget\": 4096}");
  printf("hashmem %s: %d tensors, dim %lld, %d failures\n", hm_version(), hm_table_tensors(dram),
         (long long)hm_table_dim(dram), failures);
  hm_table_close(ssd);
  hm_table_close(dram);
  hm_table_close(NULL);
  return failures == 0 ? 0 : 1;
}
