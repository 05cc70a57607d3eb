// Running another program and measuring it (include/hashmem/process.hpp).
#include "hashmem/process.hpp"

#include <cerrno>
#include <cstring>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hashmem/clock.hpp"

namespace hashmem {

ChildResult run_child(const std::vector<std::string>& argv) {
  if (argv.empty()) throw Error("run_child: empty command");
  int fds[2];
  if (::pipe(fds) != 0) throw Error(std::string("pipe failed: ") + std::strerror(errno));
  const double t0 = now_seconds();
  pid_t pid = ::fork();
  if (pid < 0) throw Error(std::string("fork failed: ") + std::strerror(errno));
  if (pid == 0) {
    ::dup2(fds[1], STDOUT_FILENO);
    ::close(fds[0]);
    ::close(fds[1]);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    std::fprintf(stderr, "hashmem: cannot run '%s': %s\n", args[0], std::strerror(errno));
    ::_exit(127);
  }
  ::close(fds[1]);
  ChildResult result;
  char buf[65536];
  for (;;) {
    ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    result.stdout_text.append(buf, static_cast<std::size_t>(n));
  }
  ::close(fds[0]);
  int status = 0;
  struct rusage usage {};
  while (::wait4(pid, &status, 0, &usage) < 0) {
    if (errno != EINTR) throw Error(std::string("wait4 failed: ") + std::strerror(errno));
  }
  result.seconds = now_seconds() - t0;
  result.max_rss_mib = static_cast<double>(usage.ru_maxrss) / 1024.0;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

std::string self_executable() {
  char buf[4096];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) throw Error("cannot find the running executable (/proc/self/exe)");
  return std::string(buf, static_cast<std::size_t>(n));
}

}  // namespace hashmem
