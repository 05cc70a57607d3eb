#include <array>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <mutex>
#include <cstring>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

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

OutputFile::OutputFile(const std::string& path) : path_(path) {
  if (path.empty()) throw Error("output path is empty");
  if (path == "-") {
    to_stdout_ = true;
    fd_ = STDOUT_FILENO;
  } else {
    struct stat st;
    if (::stat(path.c_str(), &st) == 0 && S_ISDIR(st.st_mode)) {
      throw Error("cannot write '" + path + "': it is a directory");
    }
    temp_path_ = path + ".tmp-XXXXXX";
    fd_ = ::mkstemp(temp_path_.data());
    if (fd_ < 0) throw Error("cannot create output file '" + path + "': " + errno_text());
    ::fchmod(fd_, 0644);
    register_temporary(temp_path_.c_str());
  }
  buffer_ = static_cast<char*>(std::malloc(kBufferSize));
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

void OutputFile::write_through(const char* data, std::size_t size) {
  std::size_t off = 0;
  while (off < size) {
    ssize_t n = ::write(fd_, data + off, size - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error("cannot write '" + path_ + "': " + errno_text());
    }
    off += static_cast<std::size_t>(n);
  }
  written_ += size;
}

void OutputFile::flush_buffer() {
  write_through(buffer_, used_);
  used_ = 0;
}

void OutputFile::write(const char* data, std::size_t size) {
  if (size >= kBufferSize) {
    flush_buffer();
    write_through(data, size);
    return;
  }
  if (used_ + size > kBufferSize) flush_buffer();
  std::memcpy(buffer_ + used_, data, size);
  used_ += size;
}

void OutputFile::commit() {
  if (committed_) throw Error("output file '" + path_ + "' committed twice");
  flush_buffer();
  committed_ = true;
  if (to_stdout_) return;
  if (::fsync(fd_) != 0) {
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

void write_file_atomically(const std::string& path, std::string_view contents) {
  OutputFile out(path);
  out.write(contents);
  out.commit();
}

}  // namespace hashmem
