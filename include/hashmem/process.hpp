// hashmem/process.hpp — running another program and measuring it: wall time and peak RSS from wait4(2), stdout
// captured, stderr passed through. The CLI runs its libtorch process (hashmem-model) this way, and benchmarks
// run their anchors (the Python originals, hashmem itself) so.
//
// Threads: run_child may be called from any thread; it blocks until the child exits.
// Errors: hashmem::Error when the child cannot be started (the child's own failure is its exit code).
#pragma once

#include <string>
#include <vector>

#include "hashmem/error.hpp"

namespace hashmem {

struct ChildResult {
  int exit_code = -1;        // 128+signal if killed by a signal
  double seconds = 0;        // wall time
  double max_rss_mib = 0;    // peak resident set size of the child
  std::string stdout_text;
};

// Runs argv[0] (searched in PATH) with the given arguments and waits for it. Throws Error if it cannot start.
ChildResult run_child(const std::vector<std::string>& argv);

// Path of the running executable (/proc/self/exe), for programs that run themselves or a sibling binary.
std::string self_executable();

}  // namespace hashmem
