// DelayProxy (delay_proxy.hpp): one epoll thread; each direction of each connection is a queue of chunks stamped
// with the time they may leave; a timerfd wakes the thread at the earliest such time.
#include "delay_proxy.hpp"

#include <arpa/inet.h>
#include <cerrno>
#include <cstring>
#include <deque>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <thread>
#include <time.h>
#include <unistd.h>

#include "hashmem/error.hpp"

namespace hashmem::bench {
namespace {

std::int64_t mono_ns() {
  timespec ts{};
  ::clock_gettime(CLOCK_MONOTONIC, &ts);
  return std::int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

sockaddr_in address(const std::string& host, int port) {
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  if (::inet_pton(AF_INET, host.c_str(), &a.sin_addr) != 1) throw Error("delay proxy: '" + host + "' is not an IPv4 address");
  return a;
}

void set_nonblocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }
void set_nodelay(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

struct Chunk {
  std::int64_t due;
  std::string bytes;
  std::size_t sent = 0;
};

struct Link;
// What an epoll event points at: a listener (link == nullptr, side = listener index; -1 the timer, -2 the stop fd)
// or one side of a link.
struct Tag {
  Link* link = nullptr;
  int side = 0;
};

struct Link {
  int fd[2] = {-1, -1};            // 0: the client's connection, 1: the target's
  std::deque<Chunk> queue[2];      // queue[k]: bytes read from fd[k], to be written to fd[1 - k]
  bool out_armed[2] = {false, false};
  bool dead = false;
  Tag tag[2];
};

}  // namespace

struct DelayProxy::Impl {
  std::string host;
  std::vector<int> targets;
  std::vector<int> listeners;
  std::vector<Tag> listener_tags;
  Tag timer_tag{nullptr, -1}, stop_tag{nullptr, -2};
  int epoll = -1, timer = -1, stop = -1;
  std::vector<std::unique_ptr<Link>> links;
  std::thread thread;

  ~Impl() {
    for (auto& l : links) {
      for (int fd : l->fd) {
        if (fd >= 0) ::close(fd);
      }
    }
    for (int fd : listeners) ::close(fd);
    for (int fd : {epoll, timer, stop}) {
      if (fd >= 0) ::close(fd);
    }
  }

  void watch(int fd, std::uint32_t events, Tag* tag, int op = EPOLL_CTL_ADD) {
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = tag;
    ::epoll_ctl(epoll, op, fd, &ev);
  }

  void accept_from(std::size_t i, std::atomic<std::uint64_t>& connections) {
    for (;;) {
      const int client = ::accept4(listeners[i], nullptr, nullptr, SOCK_CLOEXEC);
      if (client < 0) return;  // EAGAIN: no more waiting
      const int server = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      const sockaddr_in to = address(host, targets[i]);
      if (server < 0 || ::connect(server, reinterpret_cast<const sockaddr*>(&to), sizeof to) != 0) {
        ::close(client);  // the target is down: so is this connection, as it would be without us
        if (server >= 0) ::close(server);
        continue;
      }
      auto link = std::make_unique<Link>();
      link->fd[0] = client;
      link->fd[1] = server;
      for (int k = 0; k < 2; ++k) {
        set_nonblocking(link->fd[k]);
        set_nodelay(link->fd[k]);
        link->tag[k] = {link.get(), k};
        watch(link->fd[k], EPOLLIN, &link->tag[k]);
      }
      links.push_back(std::move(link));
      ++connections;
    }
  }

  // Reads what fd[side] has; false when it closed or failed.
  bool read_side(Link& l, int side, std::int64_t delay_ns) {
    char buf[1 << 16];
    for (;;) {
      const ssize_t n = ::read(l.fd[side], buf, sizeof buf);
      if (n > 0) {
        l.queue[side].push_back({mono_ns() + delay_ns, std::string(buf, static_cast<std::size_t>(n))});
        continue;
      }
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return true;
      if (n < 0 && errno == EINTR) continue;
      return false;
    }
  }

  // Writes the due chunks of queue[k] to fd[1 - k]; returns the next due time (INT64_MAX if none waits on time).
  std::int64_t flush(Link& l, int k, std::int64_t now, std::atomic<std::uint64_t>& bytes) {
    std::deque<Chunk>& q = l.queue[k];
    const int out = l.fd[1 - k];
    bool blocked = false;
    while (!q.empty() && q.front().due <= now) {
      Chunk& c = q.front();
      const ssize_t n = ::send(out, c.bytes.data() + c.sent, c.bytes.size() - c.sent, MSG_NOSIGNAL);
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
          blocked = true;
          break;
        }
        l.dead = true;
        return INT64_MAX;
      }
      bytes += static_cast<std::uint64_t>(n);
      c.sent += static_cast<std::size_t>(n);
      if (c.sent == c.bytes.size()) q.pop_front();
    }
    if (blocked != l.out_armed[1 - k]) {  // wait for room only while due bytes wait for it
      l.out_armed[1 - k] = blocked;
      watch(out, EPOLLIN | (blocked ? EPOLLOUT : 0u), &l.tag[1 - k], EPOLL_CTL_MOD);
    }
    return !blocked && !q.empty() ? q.front().due : INT64_MAX;
  }
};

DelayProxy::DelayProxy(const std::string& host, const std::vector<int>& target_ports, double one_way_seconds,
                       std::vector<int> cpus)
    : cpus_(std::move(cpus)), delay_ns_(static_cast<std::int64_t>(one_way_seconds * 1e9)), impl_(std::make_unique<Impl>()) {
  Impl& m = *impl_;
  m.host = host;
  m.targets = target_ports;
  m.epoll = ::epoll_create1(EPOLL_CLOEXEC);
  m.timer = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  m.stop = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (m.epoll < 0 || m.timer < 0 || m.stop < 0) throw Error(std::string("delay proxy: ") + std::strerror(errno));
  m.listener_tags.resize(target_ports.size());
  for (std::size_t i = 0; i < target_ports.size(); ++i) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in a = address(host, 0);
    socklen_t len = sizeof a;
    if (fd < 0 || ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || ::listen(fd, 512) != 0 ||
        ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
      const std::string why = std::strerror(errno);
      if (fd >= 0) ::close(fd);
      throw Error("delay proxy: cannot listen on " + host + " for port " + std::to_string(target_ports[i]) + ": " + why);
    }
    m.listeners.push_back(fd);
    listen_ports_.push_back(ntohs(a.sin_port));
    m.listener_tags[i] = {nullptr, static_cast<int>(i)};
  }
  for (std::size_t i = 0; i < m.listeners.size(); ++i) m.watch(m.listeners[i], EPOLLIN, &m.listener_tags[i]);
  m.watch(m.timer, EPOLLIN, &m.timer_tag);
  m.watch(m.stop, EPOLLIN, &m.stop_tag);
  m.thread = std::thread([this] { loop(); });
}

DelayProxy::~DelayProxy() {
  const std::uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = ::write(impl_->stop, &one, sizeof one);
  impl_->thread.join();
}

void DelayProxy::loop() {
  Impl& m = *impl_;
  ::prctl(PR_SET_TIMERSLACK, 1UL);  // wake at the due time, not up to 50 µs after it
  if (!cpus_.empty()) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int c : cpus_) CPU_SET(c, &set);
    ::sched_setaffinity(0, sizeof set, &set);
  }
  epoll_event events[64];
  for (;;) {
    const std::int64_t now = mono_ns();
    std::int64_t next = INT64_MAX;
    for (auto& l : m.links) {
      for (int k = 0; k < 2 && !l->dead; ++k) next = std::min(next, m.flush(*l, k, now, bytes_));
    }
    for (std::size_t i = 0; i < m.links.size();) {  // a side closed: close both
      if (!m.links[i]->dead) {
        ++i;
        continue;
      }
      // Out of the epoll set first: close() alone leaves the registration (and its events, pointing at the freed
      // link) while another process holds the socket — a child between fork and exec (run_child) does.
      for (int fd : m.links[i]->fd) {
        ::epoll_ctl(m.epoll, EPOLL_CTL_DEL, fd, nullptr);
        ::close(fd);
      }
      m.links[i] = std::move(m.links.back());
      m.links.pop_back();
    }
    itimerspec when{};
    if (next != INT64_MAX) {
      when.it_value.tv_sec = next / 1'000'000'000;
      when.it_value.tv_nsec = next % 1'000'000'000;
    }
    ::timerfd_settime(m.timer, TFD_TIMER_ABSTIME, &when, nullptr);  // all zero: disarmed
    const int n = ::epoll_wait(m.epoll, events, 64, -1);
    for (int e = 0; e < n; ++e) {
      Tag* tag = static_cast<Tag*>(events[e].data.ptr);
      if (tag->link == nullptr) {
        if (tag->side == -2) return;
        if (tag->side == -1) {
          std::uint64_t expirations;
          [[maybe_unused]] const ssize_t r = ::read(m.timer, &expirations, sizeof expirations);
        } else {
          m.accept_from(static_cast<std::size_t>(tag->side), connections_);
        }
        continue;
      }
      Link& l = *tag->link;
      if (l.dead) continue;
      if (events[e].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        if (!m.read_side(l, tag->side, delay_ns_.load())) l.dead = true;
      }
    }
  }
}

}  // namespace hashmem::bench
