// Fault injection: one point every file I/O path of hashmem passes before it reads, writes or syncs (the SSD
// tier's io_uring engine, row write-back, table and checkpoint writes through OutputFile, the pread/pwrite loops
// of file_io.hpp). Tests add rules to make those calls fail (EIO, ENOSPC), come back short, or wait (a slow
// device), and then check that the error reaches the caller naming the file, offset and row, and that nothing
// on disk or in the cache is lost.
//
// Threads: rules may be added and removed from any thread while I/O runs. check() costs one relaxed atomic load
// while no rule exists. Ownership: an Injection owns its rule and removes it when destroyed.
#pragma once

#include <cstdint>
#include <string>

namespace hashmem::fault {

enum class Op { read, write, sync };

struct Rule {
  Op op = Op::read;
  std::string path_contains;          // files whose path contains this ("" = every file)
  std::uint64_t skip = 0;             // matching calls let through first
  std::uint64_t times = UINT64_MAX;   // then this many are hit; later calls pass again
  int error = 0;                      // errno the call fails with (EIO, ENOSPC, ...), or 0
  std::int64_t short_bytes = -1;      // >= 0 (and no error): only this many bytes are transferred
  double delay_seconds = 0;           // the call waits this long first (a slow device)
};

// What a hit rule asks of one call.
struct Outcome {
  int error = 0;                 // fail with this errno
  std::int64_t max_bytes = -1;   // >= 0: transfer at most this many bytes
};

// Adds a rule for the object's lifetime (tests scope their faults with it).
class Injection {
 public:
  explicit Injection(Rule rule);
  ~Injection();
  Injection(const Injection&) = delete;
  Injection& operator=(const Injection&) = delete;
  std::uint64_t hits() const;  // calls this rule failed, shortened or delayed

 private:
  std::uint64_t id_;
};

// Called by the I/O paths before `op` on `path`: the first matching rule's outcome (after its delay), or none.
Outcome check(Op op, const std::string& path);

}  // namespace hashmem::fault
