// The sanitized build's canaries (HASHMEM_SANITIZE, tests/CMakeLists.txt): each mode commits one error that the
// build must report. CTest passes a canary only when the sanitizer's report appears in its output, so a change
// that drops a -fsanitize flag, turns leak checking off or lets UBSan recover makes the suite fail, not silent.
#include <climits>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

void* volatile sink;  // stores through it cannot be optimised away

}  // namespace

int main(int argc, char** argv) {
  const char* mode = argc > 1 ? argv[1] : "";
  const int one = argc > 1 ? 1 : 0;  // not a constant to the compiler
  if (std::strcmp(mode, "heap-buffer-overflow") == 0) {
    std::vector<int> v(4);
    volatile int* p = v.data();
    return p[3 + one];
  }
  if (std::strcmp(mode, "heap-use-after-free") == 0) {
    int* p = new int[4]{};
    sink = p;
    delete[] p;
    return static_cast<volatile int*>(sink)[one];
  }
  if (std::strcmp(mode, "leak") == 0) {
    sink = new int[8];
    sink = nullptr;
    return 0;
  }
  if (std::strcmp(mode, "signed-integer-overflow") == 0) {
    volatile int x = INT_MAX;
    return x + one;
  }
  if (std::strcmp(mode, "vector-index") == 0) {  // within capacity, so only _GLIBCXX_ASSERTIONS sees it
    // The failed assertion abort()s, and CTest fails a test killed by a signal whatever it printed; exit instead.
    std::signal(SIGABRT, [](int) { std::_Exit(1); });
    std::vector<int> v;
    v.reserve(8);
    return v[static_cast<std::size_t>(one)];
  }
  std::fprintf(stderr, "usage: sanitizer_canary heap-buffer-overflow|heap-use-after-free|leak|"
                       "signed-integer-overflow|vector-index\n");
  return 2;
}
