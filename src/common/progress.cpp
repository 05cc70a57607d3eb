#include <cstdio>
#include <unistd.h>

#include "hashmem/clock.hpp"
#include "hashmem/progress.hpp"

namespace hashmem {

Progress::Progress(std::string label, std::uint64_t total)
    : label_(std::move(label)), total_(total), start_seconds_(now_seconds()),
      enabled_(::isatty(STDERR_FILENO) == 1) {}

Progress::~Progress() {
  if (drawn_) std::fputc('\n', stderr);
}

void Progress::set_label(std::string label) {
  label_ = std::move(label);
  if (enabled_) draw(false);
}

void Progress::update(std::uint64_t done) {
  done_ = done;
  if (!enabled_) return;
  double t = now_seconds();
  if (t - last_draw_seconds_ < 0.25) return;
  last_draw_seconds_ = t;
  draw(false);
}

void Progress::finish() {
  if (!enabled_) return;
  if (total_) done_ = total_;
  draw(true);
  std::fputc('\n', stderr);
  drawn_ = false;
}

void Progress::draw(bool final_line) {
  double elapsed = now_seconds() - start_seconds_;
  if (total_ > 0) {
    double frac = static_cast<double>(done_) / static_cast<double>(total_);
    if (frac > 1) frac = 1;
    constexpr int kWidth = 30;
    int filled = static_cast<int>(frac * kWidth);
    char bar[kWidth + 1];
    for (int i = 0; i < kWidth; ++i) bar[i] = i < filled ? '#' : '.';
    bar[kWidth] = 0;
    std::fprintf(stderr, "\r%s [%s] %5.1f%%  %.1fs\033[K", label_.c_str(), bar, 100.0 * frac, elapsed);
  } else {
    std::fprintf(stderr, "\r%s %llu  %.1fs\033[K", label_.c_str(),
                 static_cast<unsigned long long>(done_), elapsed);
  }
  (void)final_line;
  std::fflush(stderr);
  drawn_ = true;
}

}  // namespace hashmem
