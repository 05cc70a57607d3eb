#include "store/io_engine.hpp"

#include <algorithm>
#include <cerrno>
#include <vector>
#include <cstring>
#include <sys/eventfd.h>
#include <unistd.h>

#include "common/fault_injection.hpp"
#include "hashmem/error.hpp"

namespace hashmem::store {
namespace {
// user_data of the eventfd read that wakes the thread when work arrives or on shutdown.
constexpr std::uint64_t kWakeupTag = ~std::uint64_t{0};
}  // namespace

IoEngine::IoEngine(int fd, int queue_depth, const std::string& path)
    : fd_(fd), queue_depth_(queue_depth < 1 ? 1 : queue_depth), path_(path) {
  const int err = io_uring_queue_init(static_cast<unsigned>(queue_depth_ + 1), &ring_, 0);
  if (err < 0) throw Error("cannot set up io_uring for '" + path + "': " + std::strerror(-err));
  wakeup_fd_ = ::eventfd(0, EFD_CLOEXEC);
  if (wakeup_fd_ < 0) {
    io_uring_queue_exit(&ring_);
    throw Error(std::string("cannot create an eventfd: ") + std::strerror(errno));
  }
  arm_wakeup();
  io_uring_submit(&ring_);
  thread_ = std::thread([this] { loop(); });
}

IoEngine::~IoEngine() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  const std::uint64_t one = 1;
  [[maybe_unused]] ssize_t w = ::write(wakeup_fd_, &one, sizeof one);
  thread_.join();
  io_uring_queue_exit(&ring_);
  ::close(wakeup_fd_);
}

void IoEngine::arm_wakeup() {
  io_uring_sqe* sqe = io_uring_get_sqe(&ring_);  // always available: the ring has queue_depth + 1 entries
  io_uring_prep_read(sqe, wakeup_fd_, &wakeup_value_, sizeof wakeup_value_, 0);
  io_uring_sqe_set_data64(sqe, kWakeupTag);
}

void IoEngine::submit(ReadRequest* const* requests, std::size_t n) {
  if (n == 0) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (std::size_t i = 0; i < n; ++i) {
      requests[i]->done = false;
      pending_.push_back(requests[i]);
    }
  }
  const std::uint64_t one = 1;
  [[maybe_unused]] ssize_t w = ::write(wakeup_fd_, &one, sizeof one);
}

bool IoEngine::done(const ReadRequest* r) {
  std::lock_guard<std::mutex> lock(mu_);
  return r->done;
}

void IoEngine::wait(ReadRequest* r, std::uint32_t need) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [&] { return r->done; });
  if (r->result < 0) {
    throw Error("cannot read '" + path_ + "' at byte " + std::to_string(r->offset) + ": " + std::strerror(-r->result));
  }
  if (static_cast<std::uint32_t>(r->result) < need) {
    throw Error("short read of '" + path_ + "' at byte " + std::to_string(r->offset) + ": " +
                std::to_string(r->result) + " of " + std::to_string(need) + " bytes (truncated file or failing device)");
  }
}

void IoEngine::loop() {
  std::vector<ReadRequest*> batch;
  for (;;) {
    batch.clear();
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_ && in_flight_ == 0) return;
      while (!stop_ && in_flight_ < queue_depth_ && !pending_.empty()) {
        batch.push_back(pending_.front());
        pending_.pop_front();
        ++in_flight_;
      }
      if (in_flight_ > max_in_flight_) max_in_flight_ = in_flight_;
    }
    // The fault point, outside the lock (an injected delay stalls this device, not the callers): a failed read
    // completes at once with −errno; a short one reads fewer blocks.
    std::vector<std::pair<ReadRequest*, int>> completed_now;
    for (ReadRequest* r : batch) {
      const fault::Outcome f = fault::check(fault::Op::read, path_);
      std::uint32_t length = r->length;
      if (f.max_bytes >= 0) length = static_cast<std::uint32_t>(std::min<std::int64_t>(length, f.max_bytes / 4096 * 4096));
      if (f.error || length == 0) {
        completed_now.emplace_back(r, f.error ? -f.error : 0);
        continue;
      }
      io_uring_sqe* sqe = io_uring_get_sqe(&ring_);  // room: at most queue_depth reads + the wakeup are queued
      io_uring_prep_read(sqe, fd_, r->buffer, length, r->offset);
      io_uring_sqe_set_data(sqe, r);
    }
    if (!completed_now.empty()) {
      std::lock_guard<std::mutex> lock(mu_);
      for (auto [r, result] : completed_now) {
        r->result = result;
        r->done = true;
        --in_flight_;
        ++reads_;
      }
      cv_.notify_all();
    }
    int err = io_uring_submit_and_wait(&ring_, 1);
    if (err < 0 && err != -EINTR && err != -EAGAIN && err != -EBUSY) {
      // The ring itself failed: fail everything in flight so no waiter hangs.
      std::lock_guard<std::mutex> lock(mu_);
      for (ReadRequest* r : pending_) {
        r->result = err;
        r->done = true;
      }
      pending_.clear();
      cv_.notify_all();
    }
    io_uring_cqe* cqe;
    unsigned head, seen = 0;
    bool rearm = false;
    {
      std::lock_guard<std::mutex> lock(mu_);
      io_uring_for_each_cqe(&ring_, head, cqe) {
        ++seen;
        if (io_uring_cqe_get_data64(cqe) == kWakeupTag) {
          rearm = true;
          continue;
        }
        auto* r = static_cast<ReadRequest*>(io_uring_cqe_get_data(cqe));
        r->result = cqe->res;
        r->done = true;
        --in_flight_;
        ++reads_;
        if (cqe->res > 0) bytes_ += static_cast<std::uint64_t>(cqe->res);
      }
      io_uring_cq_advance(&ring_, seen);
      if (rearm && !stop_) arm_wakeup();
    }
    if (seen) cv_.notify_all();
  }
}

std::uint64_t IoEngine::reads() const {
  std::lock_guard<std::mutex> lock(mu_);
  return reads_;
}
std::uint64_t IoEngine::bytes() const {
  std::lock_guard<std::mutex> lock(mu_);
  return bytes_;
}
int IoEngine::max_in_flight() const {
  std::lock_guard<std::mutex> lock(mu_);
  return max_in_flight_;
}

}  // namespace hashmem::store
