// Running another program (a Python anchor, or hashmem itself) and measuring it: wall time and peak RSS
// from wait4(2), stdout captured, stderr passed through.
#pragma once

#include <string>
#include <vector>

namespace hashmem::cli {

struct ChildResult {
  int exit_code = -1;        // 128+signal if killed by a signal
  double seconds = 0;        // wall time
  double max_rss_mib = 0;    // peak resident set size of the child
  std::string stdout_text;
};

// Runs argv[0] (searched in PATH) with the given arguments and waits for it. Throws Error if it cannot start.
ChildResult run_child(const std::vector<std::string>& argv);

}  // namespace hashmem::cli
