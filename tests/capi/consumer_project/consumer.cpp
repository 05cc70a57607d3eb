// Usage: consumer_cpp TABLE — the C++ API (hashmem::store::Table) and the C API give the same rows.
#include <cstdio>
#include <vector>

#include <hashmem/c_api.h>
#include <hashmem/store.hpp>

int main(int argc, char** argv) {
  if (argc != 2) return 2;
  const auto table = hashmem::store::Table::open(argv[1]);
  char* err = nullptr;
  hm_table* c_table = hm_table_open(argv[1], nullptr, &err);
  if (c_table == nullptr) {
    std::fprintf(stderr, "consumer_cpp: %s\n", err);
    hm_free(err);
    return 1;
  }
  const std::vector<std::int64_t> ids = {0, 2, 1};
  const auto dim = static_cast<std::size_t>(table->info().dim);
  std::vector<float> a(ids.size() * dim), b(ids.size() * dim);
  table->gather(1, ids.data(), ids.size(), a.data());
  hm_table_gather_f32(c_table, 1, ids.data(), ids.size(), b.data(), &err);
  hm_table_close(c_table);
  const bool same = err == nullptr && a == b;
  std::printf("consumer_cpp: C++ and C gathers %s\n", same ? "agree" : "differ");
  hm_free(err);
  return same ? 0 : 1;
}
