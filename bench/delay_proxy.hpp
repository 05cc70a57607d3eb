// DelayProxy: TCP forwarders on one address that hold every byte for a set time in each direction, so a round trip
// through them gains twice that. It stands in for `tc qdisc ... netem delay`, which this machine's kernel does not
// have (CONFIG_NET_SCH_NETEM is not set; neither is fq, which a BPF program would need to delay packets by their
// departure time). `hashmem bench gather --tier cluster` puts one in front of each Redis node and has the nodes
// announce the proxies' ports (cluster-announce-port), so every client — ours and redis-benchmark — crosses it.
//
// Semantics: bytes read from one side at time t are written to the other side at t + delay, in order; a connection
// accepted on listen_port(i) is forwarded to target port i. When either side closes or fails, both are closed
// (bytes still held are dropped: a benchmark's connections end with their client). Delay 0 forwards at once.
//
// Threads: one internal thread runs every connection (epoll + a timerfd at the next due time, timer slack 1 µs);
// set_delay and the accessors may be called from any thread. Ownership: owns its sockets and thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace hashmem::bench {

class DelayProxy {
 public:
  // Listens on `host` (a free port per target) and forwards to host:target_ports[i]; the thread runs on `cpus` (all
  // if empty). Throws Error naming the port it could not listen on.
  DelayProxy(const std::string& host, const std::vector<int>& target_ports, double one_way_seconds,
             std::vector<int> cpus = {});
  ~DelayProxy();
  DelayProxy(const DelayProxy&) = delete;
  DelayProxy& operator=(const DelayProxy&) = delete;

  int listen_port(std::size_t i) const { return listen_ports_[i]; }
  // Applies to bytes read from now on.
  void set_delay(double one_way_seconds) { delay_ns_.store(static_cast<std::int64_t>(one_way_seconds * 1e9)); }
  double delay() const { return static_cast<double>(delay_ns_.load()) / 1e9; }
  std::uint64_t bytes_forwarded() const { return bytes_.load(); }
  std::uint64_t connections() const { return connections_.load(); }

 private:
  struct Impl;
  void loop();

  std::vector<int> listen_ports_, cpus_;
  std::atomic<std::int64_t> delay_ns_;
  std::atomic<std::uint64_t> bytes_{0}, connections_{0};
  std::unique_ptr<Impl> impl_;
};

}  // namespace hashmem::bench
