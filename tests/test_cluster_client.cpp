// The cluster client (src/cluster/client.hpp, slots.hpp) against real clusters of Debian's redis-server: slot
// hashing equal to the server's, pipelined round trips over every node, MOVED and ASK during a hand-made slot
// migration, a kill -9 failover, and the error naming the slots no node serves.
#include <gtest/gtest.h>

#include <csignal>
#include <hiredis/hiredis.h>
#include <random>

#include "cluster/client.hpp"
#include "cluster/slots.hpp"
#include "hashmem/cluster.hpp"
#include "cluster_test_util.hpp"

namespace hashmem {
namespace {

using cluster::ClusterClient;
using cluster::Command;
using testing::error_of;
using testing::ScratchDir;

using testing::TestCluster;

std::string value_of(std::size_t i) { return "value-" + std::to_string(i * 7919) + std::string(i % 50, 'x'); }

std::vector<Command> sets(std::size_t n, const std::string& prefix = "k") {
  std::vector<Command> c;
  for (std::size_t i = 0; i < n; ++i) c.push_back({{"SET", prefix + std::to_string(i), value_of(i)}});
  return c;
}

void expect_values(ClusterClient& client, std::size_t n, const std::string& prefix = "k") {
  std::vector<Command> gets;
  for (std::size_t i = 0; i < n; ++i) gets.push_back({{"GET", prefix + std::to_string(i)}});
  const std::vector<cluster::Reply> r = client.run(gets);
  ASSERT_EQ(r.size(), n);
  for (std::size_t i = 0; i < n; ++i) {
    ASSERT_EQ(r[i]->type, REDIS_REPLY_STRING) << "key " << prefix << i;
    EXPECT_EQ(std::string(r[i]->str, r[i]->len), value_of(i)) << "key " << prefix << i;
  }
}

TEST(ClusterSlots, Crc16AndHashTagsAreRedis) {
  EXPECT_EQ(cluster::crc16_xmodem("123456789"), 0x31C3);  // the XMODEM check value (Redis cluster spec)
  EXPECT_EQ(cluster::key_slot("foo"), 12182);              // CLUSTER KEYSLOT foo
  EXPECT_EQ(cluster::key_slot("{user1000}.following"), cluster::key_slot("{user1000}.followers"));
  EXPECT_EQ(cluster::key_slot("foo{}{bar}"), cluster::crc16_xmodem("foo{}{bar}") & 16383);  // empty tag: whole key
  EXPECT_EQ(cluster::key_slot("foo{{bar}}zap"), cluster::crc16_xmodem("{bar") & 16383);
  EXPECT_EQ(cluster::key_slot("foo{bar}{zap}"), cluster::crc16_xmodem("bar") & 16383);
}

TEST(ClusterClientTest, SlotsEqualTheServersAndRoundTripsCoverEveryNode) {
  HASHMEM_REQUIRE_REDIS();
  TestCluster tc(3, 0);
  auto n0 = tc.node(0);
  std::mt19937_64 rng(5);
  for (int i = 0; i < 300; ++i) {
    std::string key(1 + rng() % 20, '\0');
    for (char& ch : key) ch = static_cast<char>(rng() % 256);
    ASSERT_EQ(std::to_string(cluster::key_slot(key)), n0->text({"CLUSTER", "KEYSLOT", key})) << "key #" << i;
  }
  ClusterClient client(tc.client_options());
  for (const auto& r : client.run(sets(3000))) ASSERT_EQ(std::string(r->str, r->len), "OK");
  expect_values(client, 3000);
  for (std::size_t i = 0; i < 3; ++i) EXPECT_GT(std::stoll(tc.node(i)->text({"DBSIZE"})), 800) << "node " << i;
  EXPECT_EQ(client.counters().moved, 0u);
}

TEST(ClusterClientTest, FollowsAskDuringASlotMigrationAndMovedAfterIt) {
  HASHMEM_REQUIRE_REDIS();
  TestCluster tc(2, 0);
  ClusterClient client(tc.client_options());
  client.run(sets(400));
  // Migrate the slot of k0 from its master to the other, by hand (what redis-cli --cluster reshard does).
  const int slot = cluster::key_slot("k0");
  const std::size_t from = slot <= 8191 ? 0 : 1, to = 1 - from;
  auto src = tc.node(from), dst = tc.node(to);
  const std::string src_id = src->text({"CLUSTER", "MYID"}), dst_id = dst->text({"CLUSTER", "MYID"});
  dst->command({"CLUSTER", "SETSLOT", std::to_string(slot), "IMPORTING", src_id});
  src->command({"CLUSTER", "SETSLOT", std::to_string(slot), "MIGRATING", dst_id});
  src->command({"MIGRATE", tc.options.host, std::to_string(tc.status.nodes[to].port), "k0", "0", "5000"});
  expect_values(client, 400);  // k0 now answers ASK from the source
  EXPECT_GE(client.counters().ask, 1u);
  for (std::size_t i = 0; i < 2; ++i) tc.node(i)->command({"CLUSTER", "SETSLOT", std::to_string(slot), "NODE", dst_id});
  expect_values(client, 400);  // and MOVED once the slot is the destination's
  EXPECT_GE(client.counters().moved, 1u);
}

TEST(ClusterClientTest, RidesOutAKilledMaster) {
  HASHMEM_REQUIRE_REDIS();
  TestCluster tc(3, 1, 500);
  ClusterClient client(tc.client_options());
  client.run(sets(2000));
  for (std::size_t i = 0; i < 3; ++i) tc.node(i)->command({"WAIT", "1", "2000"});  // replicas have every write
  ASSERT_EQ(::kill(static_cast<pid_t>(tc.status.nodes[1].pid), SIGKILL), 0);
  for (int round = 0; round < 5; ++round) expect_values(client, 2000);  // every reply correct, through the failover
  // (The gather stream of the cluster tier, with kill -9 during it, is tested with the tier.)
  EXPECT_GE(client.counters().retries, 1u);
}

TEST(ClusterClientTest, WithoutAReplicaTheErrorNamesTheUnreachableSlots) {
  HASHMEM_REQUIRE_REDIS();
  TestCluster tc(3, 0, 500);
  ClusterClient client(tc.client_options(/*retry_seconds=*/1.5));
  client.run(sets(300));
  ASSERT_EQ(::kill(static_cast<pid_t>(tc.status.nodes[0].pid), SIGKILL), 0);
  const std::string e = error_of([&] { expect_values(client, 300); });
  EXPECT_NE(e.find("unreachable"), std::string::npos) << e;
  EXPECT_NE(e.find("Redis Cluster slots "), std::string::npos) << e;
  // Only slots of the dead master (0-5460) are named.
  const std::string slots = e.substr(e.find("slots ") + 6, e.find(" unreachable") - e.find("slots ") - 6);
  for (std::size_t at = 0; at < slots.size();) {
    const int s = std::atoi(slots.c_str() + at);
    EXPECT_LE(s, 5460) << e;
    at = slots.find_first_of(",-", at);
    if (at == std::string::npos) break;
    ++at;
    while (at < slots.size() && slots[at] == ' ') ++at;
  }
  EXPECT_NE(error_of([] { cluster::ClientOptions o; ClusterClient c(o); }).find("no seed"), std::string::npos);
}

}  // namespace
}  // namespace hashmem
