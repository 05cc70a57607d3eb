// Shared by the cluster tests: a real Redis Cluster of Debian's redis-server per test, on free loopback ports,
// stopped however the test ends (`./run test` also stops nodes a crashed test left behind), and the skip when
// redis-server is not installed.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <unistd.h>

#include "cluster/client.hpp"
#include "cluster/table_keys.hpp"
#include "hashmem/cluster.hpp"
#include "test_util.hpp"

namespace hashmem::testing {

inline bool have_redis_server() { return std::system("command -v redis-server >/dev/null 2>&1") == 0; }

#define HASHMEM_REQUIRE_REDIS()                                                                            \
  do {                                                                                                     \
    if (!::hashmem::testing::have_redis_server()) GTEST_SKIP() << "redis-server is not installed (./run installs Debian's)"; \
  } while (0)

// Ports for `count` nodes: a start that differs between test processes (ctest runs them in parallel).
inline int test_ports(int count) {
  return cluster::free_port_base(count, 20000 + static_cast<int>(::getpid() % 600) * 50);
}

struct TestCluster {
  ScratchDir scratch;
  cluster::UpOptions options;
  cluster::Status status;
  TestCluster(int masters, int replicas, int node_timeout_ms = 2000) {
    options.dir = scratch.file("c");
    options.masters = masters;
    options.replicas = replicas;
    options.node_timeout_ms = node_timeout_ms;
    options.port = test_ports(masters * (1 + replicas));
    status = cluster::up(options);
  }
  ~TestCluster() {
    try {
      cluster::down(options.dir, 5);
    } catch (const Error&) {
    }
  }
  std::string seeds() const { return options.host + ":" + std::to_string(status.nodes[0].port); }
  cluster::ClientOptions client_options(double retry_seconds = 15) const {
    cluster::ClientOptions o;
    for (const auto& n : status.nodes) o.seeds.push_back({options.host, n.port});
    o.retry_seconds = retry_seconds;
    return o;
  }
  std::unique_ptr<cluster::RedisConn> node(std::size_t i) const {
    return std::make_unique<cluster::RedisConn>(options.host, status.nodes[i].port, 2.0);
  }
};

}  // namespace hashmem::testing
