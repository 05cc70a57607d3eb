/* Usage: consumer_c TABLE — opens TABLE through the C API and prints the first value of row 0 of each tensor. */
#include <stdio.h>
#include <stdlib.h>

#include <hashmem/c_api.h>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  char* err = NULL;
  hm_table* table = hm_table_open(argv[1], "{\"tier\": \"ssd\"}", &err);
  if (table == NULL) {
    fprintf(stderr, "consumer_c: %s\n", err);
    hm_free(err);
    return 1;
  }
  float* row = malloc((size_t)hm_table_dim(table) * sizeof(float));
  const int64_t id = 0;
  for (int tensor = 0; tensor < hm_table_tensors(table) && err == NULL; ++tensor) {
    hm_table_gather_f32(table, tensor, &id, 1, row, &err);
    if (err == NULL) printf("consumer_c (hashmem %s): tensor %d row 0 [0] = %g\n", hm_version(), tensor, row[0]);
  }
  free(row);
  hm_table_close(table);
  if (err != NULL) fprintf(stderr, "consumer_c: %s\n", err);
  const int failed = err != NULL;
  hm_free(err);
  return failed;
}
