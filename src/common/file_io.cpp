#include "common/file_io.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unistd.h>

#include "common/fault_injection.hpp"
#include "hashmem/error.hpp"

namespace hashmem {
namespace {

std::string at(const std::string& path, std::uint64_t offset) {
  return "'" + path + "' at byte " + std::to_string(offset);
}

// One read of at most `size` bytes at `offset` through the fault point: bytes read, or −errno.
ssize_t read_once(int fd, std::uint64_t offset, void* buffer, std::size_t size, const std::string& path) {
  const fault::Outcome f = fault::check(fault::Op::read, path);
  if (f.error) return -f.error;
  if (f.max_bytes >= 0) size = std::min(size, static_cast<std::size_t>(f.max_bytes));
  if (size == 0) return 0;
  for (;;) {
    const ssize_t n = ::pread(fd, buffer, size, static_cast<off_t>(offset));
    if (n >= 0) return n;
    if (errno != EINTR) return -errno;
  }
}

}  // namespace

std::size_t read_up_to(int fd, std::uint64_t offset, void* buffer, std::size_t size, const std::string& path) {
  std::size_t done = 0;
  // At most 1 GiB a call (Linux transfers at most 2 GiB − 4 KiB at once), so a short read means the end of the file:
  // a regular file reads short nowhere else, and with O_DIRECT the next offset would not even be aligned.
  constexpr std::size_t kMaxCall = std::size_t{1} << 30;
  while (done < size) {
    const std::size_t want = std::min(size - done, kMaxCall);
    const ssize_t n = read_once(fd, offset + done, static_cast<char*>(buffer) + done, want, path);
    if (n < 0) throw Error("cannot read " + at(path, offset + done) + ": " + std::strerror(static_cast<int>(-n)));
    done += static_cast<std::size_t>(n);
    if (static_cast<std::size_t>(n) < want) break;
  }
  return done;
}

void read_exact(int fd, std::uint64_t offset, void* buffer, std::size_t size, const std::string& path) {
  const std::size_t done = read_up_to(fd, offset, buffer, size, path);
  if (done < size) {
    throw Error("'" + path + "' is truncated: reading " + std::to_string(size) + " bytes at byte " +
                std::to_string(offset) + " found " + std::to_string(done));
  }
}

void write_exact(int fd, std::uint64_t offset, const void* buffer, std::size_t size, const std::string& path) {
  std::size_t done = 0;
  while (done < size) {
    const fault::Outcome f = fault::check(fault::Op::write, path);
    std::size_t want = size - done;
    if (f.max_bytes >= 0) want = std::min(want, static_cast<std::size_t>(f.max_bytes));
    ssize_t n = f.error ? -1 : ::pwrite(fd, static_cast<const char*>(buffer) + done, want, static_cast<off_t>(offset + done));
    if (f.error) errno = f.error;
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      throw Error("cannot write " + at(path, offset + done) + ": " + (n < 0 ? std::strerror(errno) : "no progress"));
    }
    done += static_cast<std::size_t>(n);
  }
}

void sync_data(int fd, const std::string& path) {
  const fault::Outcome f = fault::check(fault::Op::sync, path);
  if (f.error || ::fdatasync(fd) != 0) {
    throw Error("cannot sync '" + path + "': " + std::strerror(f.error ? f.error : errno));
  }
}

}  // namespace hashmem
