// hashmem/progress.hpp — progress of a long job: a line on stderr, rewritten at most 4 times a second, and only
// when stderr is a terminal (so logs and pipes stay clean).
//
// Threads: a Progress belongs to one thread at a time. Ownership: it owns nothing but its label.
#pragma once

#include <cstdint>
#include <string>

namespace hashmem {

class Progress {
 public:
  // `total` may be 0 when unknown (the line then shows the count done, without a percentage).
  Progress(std::string label, std::uint64_t total);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  void update(std::uint64_t done);
  void set_label(std::string label);
  void finish();  // prints the final state and a newline (if anything was printed)

 private:
  void draw(bool final_line);
  std::string label_;
  std::uint64_t total_;
  std::uint64_t done_ = 0;
  double start_seconds_;
  double last_draw_seconds_ = -1.0;
  bool enabled_;
  bool drawn_ = false;
};

}  // namespace hashmem
