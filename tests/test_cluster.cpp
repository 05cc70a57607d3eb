// hashmem/cluster.hpp: real Redis Clusters of Debian's redis-server, each test starting and stopping its own on
// free loopback ports. Skipped, naming the reason, when redis-server is not installed (./run installs it).
#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>
#include <unistd.h>

#include "hashmem/clock.hpp"
#include "hashmem/cluster.hpp"
#include "cluster_test_util.hpp"

namespace hashmem {
namespace {

using testing::error_of;
using testing::ScratchDir;

// A process that runs (a zombie waiting for init to reap it does not).
bool running(long pid) {
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const std::size_t paren = line.rfind(')');
  return paren != std::string::npos && paren + 2 < line.size() && line[paren + 2] != 'Z';
}

using testing::test_ports;

// Stops the cluster however the test ends.
struct ClusterGuard {
  std::string dir;
  ~ClusterGuard() {
    try {
      cluster::down(dir, 5);
    } catch (const Error&) {
    }
  }
};

TEST(ClusterManage, UpCoversEverySlotOnceStatusShowsRolesDownStopsAll) {
  HASHMEM_REQUIRE_REDIS();
  ScratchDir scratch;
  cluster::UpOptions o;
  o.dir = scratch.file("c");
  o.masters = 2;
  o.replicas = 1;
  o.port = test_ports(4);
  ClusterGuard guard{o.dir};
  const cluster::Status s = cluster::up(o);
  EXPECT_EQ(s.state, "ok");
  EXPECT_EQ(s.slots_ok, cluster::kSlots);
  ASSERT_EQ(s.nodes.size(), 4u);
  std::vector<int> owner(cluster::kSlots, 0);
  std::vector<std::string> master_ids;
  for (const cluster::Node& n : s.nodes) {
    EXPECT_TRUE(n.alive) << n.port;
    EXPECT_GT(n.pid, 0) << n.port;
    for (const auto& [lo, hi] : n.slots) {
      for (int slot = lo; slot <= hi; ++slot) ++owner[static_cast<std::size_t>(slot)];
    }
    if (n.role == "master") master_ids.push_back(n.id);
  }
  for (int slot = 0; slot < cluster::kSlots; ++slot) ASSERT_EQ(owner[static_cast<std::size_t>(slot)], 1) << "slot " << slot;
  EXPECT_EQ(s.nodes[0].role, "master");
  EXPECT_EQ(s.nodes[1].role, "master");
  EXPECT_EQ(s.nodes[2].role, "replica");
  EXPECT_EQ(s.nodes[2].master_id, s.nodes[0].id);
  EXPECT_EQ(s.nodes[3].master_id, s.nodes[1].id);

  // A second up in the same dir is refused while the cluster runs.
  EXPECT_NE(error_of([&] { cluster::up(o); }).find("already running"), std::string::npos);

  std::vector<long> pids;
  for (const cluster::Node& n : s.nodes) pids.push_back(n.pid);
  cluster::down(o.dir);
  for (long pid : pids) EXPECT_FALSE(running(pid)) << "pid " << pid << " still runs";
  for (const cluster::Node& n : cluster::status(o.dir).nodes) EXPECT_FALSE(n.alive);

  // Stopped: up in the same dir starts afresh.
  o.port = test_ports(4);
  EXPECT_EQ(cluster::up(o).slots_ok, cluster::kSlots);
}

TEST(ClusterManage, AKilledMasterIsReplacedByItsReplica) {
  HASHMEM_REQUIRE_REDIS();
  ScratchDir scratch;
  cluster::UpOptions o;
  o.dir = scratch.file("c");
  o.masters = 3;  // a failover needs a majority of masters to vote
  o.replicas = 1;
  o.port = test_ports(6);
  o.node_timeout_ms = 500;
  ClusterGuard guard{o.dir};
  const cluster::Status before = cluster::up(o);
  ASSERT_EQ(::kill(static_cast<pid_t>(before.nodes[0].pid), SIGKILL), 0);
  cluster::Status after;
  for (const double deadline = now_seconds() + 30; now_seconds() < deadline;) {
    after = cluster::status(o.dir);
    if (after.nodes[3].role == "master" && after.slots_ok == cluster::kSlots) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  EXPECT_EQ(after.nodes[0].role, "down");
  EXPECT_FALSE(after.nodes[0].alive);
  ASSERT_EQ(after.nodes[3].role, "master") << "the replica of the killed master was not promoted";
  EXPECT_EQ(after.nodes[3].slots, before.nodes[0].slots);
  EXPECT_EQ(after.slots_ok, cluster::kSlots);
}

TEST(ClusterManage, BadInputIsNamed) {
  ScratchDir scratch;
  cluster::UpOptions o;
  o.dir = scratch.file("c");
  o.masters = 0;
  EXPECT_NE(error_of([&] { cluster::up(o); }).find("--masters must be at least 1"), std::string::npos);
  o.masters = 1;
  o.replicas = -1;
  EXPECT_NE(error_of([&] { cluster::up(o); }).find("--replicas"), std::string::npos);
  o.replicas = 0;
  o.port = 60000;
  EXPECT_NE(error_of([&] { cluster::up(o); }).find("bus ports"), std::string::npos);
  EXPECT_NE(error_of([&] { cluster::status(scratch.file("none")); }).find("cluster.json is missing"), std::string::npos);
  EXPECT_NE(error_of([&] { cluster::down(scratch.file("none")); }).find("no cluster in"), std::string::npos);
  o.port = 21000;
  o.redis_server = "no-such-redis-server";
  EXPECT_NE(error_of([&] { cluster::up(o); }).find("cannot run 'no-such-redis-server'"), std::string::npos);
}

TEST(ClusterManage, APortInUseIsNamedAndTheOtherClusterIsUntouched) {
  HASHMEM_REQUIRE_REDIS();
  ScratchDir scratch;
  cluster::UpOptions a;
  a.dir = scratch.file("a");
  a.masters = 1;
  a.port = test_ports(2);
  ClusterGuard guard_a{a.dir};
  cluster::up(a);
  cluster::UpOptions b = a;
  b.dir = scratch.file("b");
  ClusterGuard guard_b{b.dir};
  const std::string e = error_of([&] { cluster::up(b); });
  EXPECT_NE(e.find("port " + std::to_string(a.port) + " is in use"), std::string::npos) << e;
  EXPECT_EQ(cluster::status(a.dir).slots_ok, cluster::kSlots);  // the first cluster is untouched
}

TEST(ClusterManage, CliUpStatusJsonDown) {
  HASHMEM_REQUIRE_REDIS();
  ScratchDir scratch;
  const std::string dir = scratch.file("c");
  const int port = test_ports(1);
  const std::string cli = HASHMEM_CLI;
  ClusterGuard guard{dir};
  auto up = testing::run_command(cli + " cluster up --dir " + dir + " --masters 1 --port " + std::to_string(port), scratch.path());
  ASSERT_EQ(up.exit_code, 0) << up.err;
  auto st = testing::run_command(cli + " cluster status --json --dir " + dir, scratch.path());
  ASSERT_EQ(st.exit_code, 0) << st.err;
  const nlohmann::json j = nlohmann::json::parse(st.out);
  EXPECT_EQ(j["state"], "ok");
  EXPECT_EQ(j["nodes"][0]["port"], port);
  EXPECT_EQ(j["nodes"][0]["slots"][0][1], cluster::kSlots - 1);
  auto down = testing::run_command(cli + " cluster down --dir " + dir, scratch.path());
  EXPECT_EQ(down.exit_code, 0) << down.err;
  auto bad = testing::run_command(cli + " cluster status --dir " + scratch.file("none"), scratch.path());
  EXPECT_EQ(bad.exit_code, 1);
  EXPECT_NE(bad.err.find("cluster.json is missing"), std::string::npos) << bad.err;
}

}  // namespace
}  // namespace hashmem
