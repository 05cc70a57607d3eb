#include <algorithm>
#include <array>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <mutex>
#include <cstring>
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fault_injection.hpp"
#include "hashmem/error.hpp"
#include "hashmem/output_file.hpp"

namespace hashmem {
namespace {

std::string errno_text() { return std::strerror(errno); }

std::string directory_of(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  if (slash == 0) return "/";
  return path.substr(0, slash);
}

std::string base_name(const std::string& path) {
  auto slash = path.rfind('/');
  return slash == std::string::npos ? path : path.substr(slash + 1);
}

// "<base>.tmp-XXXXXX" as mkstemp makes it (six characters of [A-Za-z0-9]).
bool is_temporary_of(std::string_view name, std::string_view base) {
  constexpr std::string_view kTag = ".tmp-";
  if (name.size() != base.size() + kTag.size() + 6 || name.substr(0, base.size()) != base) return false;
  if (name.substr(base.size(), kTag.size()) != kTag) return false;
  for (char c : name.substr(base.size() + kTag.size())) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))) return false;
  }
  return true;
}

// Temporary files still being written, so that Ctrl-C / SIGTERM / SIGHUP remove them before the process
// dies (kill -9 cannot be caught: what remains then is a "<path>.tmp-XXXXXX" file, never a partial <path>).
std::array<std::atomic<const char*>, 32> g_temporaries{};

void remove_temporaries_and_reraise(int sig) {
  for (auto& t : g_temporaries) {
    const char* path = t.load();
    if (path) ::unlink(path);  // async-signal-safe
  }
  ::signal(sig, SIG_DFL);
  ::raise(sig);
}

void register_temporary(const char* path) {
  static std::once_flag once;
  std::call_once(once, [] {
    for (int sig : {SIGINT, SIGTERM, SIGHUP}) {
      struct sigaction old {};
      if (::sigaction(sig, nullptr, &old) == 0 && old.sa_handler == SIG_DFL) {  // keep handlers the app set
        struct sigaction sa {};
        sa.sa_handler = remove_temporaries_and_reraise;
        ::sigaction(sig, &sa, nullptr);
      }
    }
  });
  for (auto& t : g_temporaries) {
    const char* expected = nullptr;
    if (t.compare_exchange_strong(expected, path)) return;
  }
}

void unregister_temporary(const char* path) {
  for (auto& t : g_temporaries) {
    const char* expected = path;
    if (t.compare_exchange_strong(expected, nullptr)) return;
  }
}

}  // namespace

OutputFile::OutputFile(const std::string& path, bool direct) : path_(path) {
  if (path.empty()) throw Error("output path is empty");
  if (path == "-") {
    to_stdout_ = true;
    fd_ = STDOUT_FILENO;
  } else {
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      throw Error("cannot write '" + path + "': it is a directory");
    }
    remove_stale_temporaries(path);
    // Held under an flock for the object's life, so a later cleaner knows it from a dead writer's leftover. A
    // cleaner that took the lock between mkstemp and flock has removed the file: make another.
    for (int attempt = 0;; ++attempt) {
      temp_path_ = path + ".tmp-XXXXXX";
      fd_ = ::mkstemp(temp_path_.data());
      if (fd_ < 0) throw Error("cannot create output file '" + path + "': " + errno_text());
      if (hold_temporary(fd_) || attempt == 16) break;
      ::close(fd_);
    }
    ::fchmod(fd_, 0644);
    register_temporary(temp_path_.c_str());
    // File systems without O_DIRECT (tmpfs on older kernels) refuse the flag: the file stays buffered.
    const int flags = ::fcntl(fd_, F_GETFL);
    direct_ = direct && flags >= 0 && ::fcntl(fd_, F_SETFL, flags | O_DIRECT) == 0;
  }
  buffer_ = static_cast<char*>(std::aligned_alloc(kDirectAlign, kBufferSize));
  if (!buffer_) {
    if (!to_stdout_) {
      ::close(fd_);
      ::unlink(temp_path_.c_str());
      unregister_temporary(temp_path_.c_str());
    }
    throw Error("out of memory for the output buffer of '" + path + "'");
  }
}

OutputFile::~OutputFile() {
  if (!to_stdout_ && fd_ >= 0) {
    ::close(fd_);
    if (!committed_) ::unlink(temp_path_.c_str());
    unregister_temporary(temp_path_.c_str());
  }
  std::free(buffer_);
}

void OutputFile::stop_direct() {
  const int flags = ::fcntl(fd_, F_GETFL);
  if (flags >= 0) ::fcntl(fd_, F_SETFL, flags & ~O_DIRECT);
  direct_ = false;
}

void OutputFile::write_through(const char* data, std::size_t size) {
  std::size_t off = 0;
  while (off < size) {
    const fault::Outcome f = fault::check(fault::Op::write, temp_path_.empty() ? path_ : temp_path_);
    std::size_t want = size - off;
    if (f.max_bytes >= 0) want = std::min(want, static_cast<std::size_t>(f.max_bytes));
    ssize_t n = f.error ? -1 : ::write(fd_, data + off, want);
    if (f.error) errno = f.error;
    if (n < 0 && errno == EINVAL && direct_) {  // the file system took the flag but not this transfer
      stop_direct();
      continue;
    }
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error("cannot write '" + path_ + "': " + errno_text());
    }
    // After a short transfer the offset is no longer aligned: the rest goes through the page cache.
    if (direct_ && static_cast<std::size_t>(n) < want) stop_direct();
    off += static_cast<std::size_t>(n);
  }
  written_ += size;
}

void OutputFile::flush_buffer(bool all) {
  if (!direct_ || used_ % kDirectAlign == 0) {
    write_through(buffer_, used_);
    used_ = 0;
    return;
  }
  const std::size_t aligned = used_ / kDirectAlign * kDirectAlign;
  write_through(buffer_, aligned);
  std::memmove(buffer_, buffer_ + aligned, used_ - aligned);
  used_ -= aligned;
  if (all) {
    if (direct_) stop_direct();  // the unaligned tail
    write_through(buffer_, used_);
    used_ = 0;
  }
}

void OutputFile::write(const char* data, std::size_t size) {
  if (size == 0) return;  // an empty vector's data() may be null, and memcpy must not see it
  if (!direct_) {
    if (size >= kBufferSize) {
      flush_buffer(true);
      write_through(data, size);
      return;
    }
    if (used_ + size > kBufferSize) flush_buffer(true);
    std::memcpy(buffer_ + used_, data, size);
    used_ += size;
    return;
  }
  while (size > 0) {
    if (used_ == 0 && size >= kDirectAlign && reinterpret_cast<std::uintptr_t>(data) % kDirectAlign == 0) {
      const std::size_t n = size / kDirectAlign * kDirectAlign;  // straight from the caller's memory
      write_through(data, n);
      data += n;
      size -= n;
      if (!direct_) return write(data, size);
      continue;
    }
    const std::size_t n = std::min(size, kBufferSize - used_);
    std::memcpy(buffer_ + used_, data, n);
    used_ += n;
    data += n;
    size -= n;
    if (used_ == kBufferSize) flush_buffer(false);
  }
}

void OutputFile::commit() {
  if (committed_) throw Error("output file '" + path_ + "' committed twice");
  flush_buffer(true);
  committed_ = true;
  if (to_stdout_) return;
  const fault::Outcome f = fault::check(fault::Op::sync, temp_path_);
  if (f.error) errno = f.error;
  if (f.error || ::fsync(fd_) != 0) {
    committed_ = false;
    throw Error("cannot fsync '" + path_ + "': " + errno_text());
  }
  if (::rename(temp_path_.c_str(), path_.c_str()) != 0) {
    committed_ = false;
    throw Error("cannot rename the temporary file onto '" + path_ + "': " + errno_text());
  }
  int dir = ::open(directory_of(path_).c_str(), O_RDONLY | O_DIRECTORY);
  if (dir >= 0) {
    ::fsync(dir);
    ::close(dir);
  }
}

bool hold_temporary(int fd) {
  while (::flock(fd, LOCK_EX) != 0) {
    if (errno != EINTR) return true;  // a file system without flock: nothing to hold, nothing a cleaner could see
  }
  struct stat st {};
  return ::fstat(fd, &st) != 0 || st.st_nlink > 0;
}

std::uint64_t remove_stale_temporaries(const std::string& path, std::initializer_list<std::string_view> extra) {
  const std::string dir = directory_of(path), base = base_name(path);
  DIR* d = ::opendir(dir.c_str());
  if (!d) return 0;
  std::uint64_t freed = 0;
  while (const dirent* e = ::readdir(d)) {
    const std::string_view name = e->d_name;
    bool candidate = is_temporary_of(name, base);
    for (std::string_view suffix : extra) {
      candidate |= name.size() == base.size() + suffix.size() && name.substr(0, base.size()) == base &&
                   name.substr(base.size()) == suffix;
    }
    if (!candidate) continue;
    const int fd = ::openat(::dirfd(d), e->d_name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) continue;
    struct stat st {}, now {};
    // Nobody holds it (its writer died) and the name still points at the file we locked: remove it.
    if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && ::flock(fd, LOCK_EX | LOCK_NB) == 0 &&
        ::fstatat(::dirfd(d), e->d_name, &now, AT_SYMLINK_NOFOLLOW) == 0 && now.st_ino == st.st_ino &&
        now.st_dev == st.st_dev && ::unlinkat(::dirfd(d), e->d_name, 0) == 0) {
      freed += static_cast<std::uint64_t>(st.st_blocks) * 512;
    }
    ::close(fd);
  }
  ::closedir(d);
  return freed;
}

void write_file_atomically(const std::string& path, std::string_view contents) {
  OutputFile out(path);
  out.write(contents);
  out.commit();
}

}  // namespace hashmem
