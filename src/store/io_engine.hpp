// IoEngine: one io_uring and one thread that keeps up to `queue_depth` O_DIRECT reads of one file in
// flight. Callers enqueue ReadRequests and later wait for them; the thread submits as slots free up, so a
// prefetch of thousands of rows runs at the device's queue depth while the caller computes.
//
// Bounce buffers: a request that names the bytes it needs (copy_length > 0) and is at most kBounceBytes long is
// read into one of the engine's queue_depth own buffers (registered with io_uring as fixed buffers when the kernel
// allows) and only those bytes are copied into its buffer, on the engine thread. O_DIRECT reads into a few reused
// buffers run faster than into thousands of scattered ones (a raw QD64 loop on this VM: 64 buffers ~8 % more
// reads/s than 4096; fixed buffers a few % more again), and a row cache's staging buffers are scattered.
//
// Threads: submit/wait/done may be called from any thread. A request must stay alive and untouched until it
// is done. Ownership: the engine owns its ring and thread; the fd is the caller's and must outlive it.
// Errors: a failed read is reported in the request (result < 0 = −errno) and by wait(), not thrown by the thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <liburing.h>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace hashmem::store {

struct ReadRequest {
  std::uint64_t offset = 0;  // multiple of 4096
  std::uint32_t length = 0;  // multiple of 4096
  void* buffer = nullptr;    // 4096-aligned, `length` bytes
  int result = 0;            // bytes read, or −errno (valid once done)
  bool done = false;         // guarded by the engine's mutex; use IoEngine::done()
  bool waited = false;       // a thread sleeps in wait() on it (engine's mutex): only then does completion wake
  // The bytes the caller needs, [copy_offset, copy_offset + copy_length) of the read: when copy_length > 0 the
  // engine may read through a bounce buffer and then fills only those bytes of `buffer` (at the same offset).
  std::uint32_t copy_offset = 0, copy_length = 0;
  int bounce = -1;           // the engine's: bounce buffer in use
};

class IoEngine {
 public:
  // Throws Error naming `path` if the ring cannot be set up.
  IoEngine(int fd, int queue_depth, const std::string& path);
  ~IoEngine();  // waits for the reads in flight
  IoEngine(const IoEngine&) = delete;
  IoEngine& operator=(const IoEngine&) = delete;

  void submit(ReadRequest* const* requests, std::size_t n);
  // Blocks until r is done; throws Error if the read failed or came back shorter than `need` bytes.
  void wait(ReadRequest* r, std::uint32_t need);
  bool done(const ReadRequest* r);

  std::uint64_t reads() const;
  std::uint64_t bytes() const;
  int max_in_flight() const;
  bool fixed_buffers() const { return fixed_; }  // bounce buffers registered with the ring

  static constexpr std::uint32_t kBounceBytes = 16384;

 private:
  void loop();
  void arm_wakeup();
  void prepare_read(ReadRequest* r, std::uint32_t length);
  void copy_bounced(ReadRequest* r, int result);

  int fd_;
  int queue_depth_;
  std::string path_;
  io_uring ring_{};
  int wakeup_fd_ = -1;
  std::uint64_t wakeup_value_ = 0;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<ReadRequest*> pending_;
  int in_flight_ = 0;
  int max_in_flight_ = 0;
  std::uint64_t reads_ = 0, bytes_ = 0;
  bool stop_ = false;
  // Engine thread only: the bounce buffers (queue_depth × kBounceBytes, 4096-aligned) and the free ones.
  std::uint8_t* bounce_ = nullptr;
  std::vector<int> free_bounce_;
  bool fixed_ = false;
  std::thread thread_;
};

}  // namespace hashmem::store
