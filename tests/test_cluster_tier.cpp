// The cluster tier (src/cluster/cluster_device.cpp, transfer.cpp) on real clusters of Debian's redis-server, each
// test starting and stopping its own: push/pull round trips byte-identical and idempotent, a push cut off midway,
// gathers equal to the DRAM tier for every dtype, and gather streams through kill -9 of a master, without a
// replica, and during a reshard by redis-cli.
#include <gtest/gtest.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <random>
#include <thread>

#include "cluster/client.hpp"
#include "hashmem/c_api.h"
#include "hashmem/clock.hpp"
#include "cluster/table_keys.hpp"
#include "hashmem/cluster.hpp"
#include "hashmem/store.hpp"
#include "cluster/cluster_device.hpp"
#include "cluster_test_util.hpp"

namespace hashmem {
namespace {

using store::DType;
using store::Table;
using testing::error_of;
using testing::ScratchDir;

using testing::TestCluster;

cluster::ClusterClient client_of(const TestCluster& tc) { return cluster::ClusterClient(tc.client_options()); }

std::string make_table(const ScratchDir& dir, DType dtype, const std::string& name, std::uint64_t seed = 1) {
  store::CreateOptions o;
  o.config = testing::small_engram_config();
  o.dim = 32;
  o.dtype = dtype;
  o.seed = seed;
  o.checksum_block = 4096;
  const std::string path = dir.file(name + ".safetensors");
  store::create_table(o, path);
  return path;
}

store::OpenOptions cluster_options(const TestCluster& tc, const std::string& name, std::uint64_t budget = 0) {
  store::OpenOptions o;
  o.tier = store::Tier::cluster;
  o.cluster = tc.seeds();
  o.name = name;
  o.dram_budget = budget;
  return o;
}

// Random rows of every tensor, gathered from `t` and from the DRAM tier of `path`, must be equal.
void expect_same_rows(Table& t, const std::string& path, std::uint64_t seed, int rounds = 20) {
  auto dram = Table::open(path);
  std::mt19937_64 rng(seed);
  const std::int64_t dim = t.info().dim;
  for (int round = 0; round < rounds; ++round) {
    for (int tensor = 0; tensor < static_cast<int>(t.info().tensors.size()); ++tensor) {
      std::vector<std::int64_t> rows(48);
      for (auto& r : rows) r = static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(t.info().tensors[static_cast<std::size_t>(tensor)].rows));
      std::vector<float> got(rows.size() * static_cast<std::size_t>(dim)), want(got.size());
      store::Ticket ticket = t.prefetch(tensor, rows.data(), rows.size());
      t.gather(ticket, got.data());
      dram->gather(tensor, rows.data(), rows.size(), want.data());
      ASSERT_EQ(got, want) << "round " << round << " tensor " << tensor;
    }
  }
}

TEST(ClusterTier, PushPullRoundTripIsByteIdenticalAndPushIsIdempotent) {
  HASHMEM_REQUIRE_REDIS();
  TestCluster tc(3, 0);
  ScratchDir dir;
  for (DType dtype : {DType::f32, DType::bf16, DType::fp8}) {
    const std::string name = std::string("t_") + store::dtype_name(dtype);
    const std::string path = make_table(dir, dtype, name);
    const cluster::PushResult first = cluster::push_table(path, tc.seeds(), name);
    EXPECT_EQ(first.sent, first.blocks);
    EXPECT_GT(first.blocks, 1);
    const cluster::PushResult again = cluster::push_table(path, tc.seeds(), name);
    EXPECT_EQ(again.sent, 0) << "a second push of the same file sent blocks";
    EXPECT_EQ(again.skipped, again.blocks);
    const std::string back = dir.file(name + ".pulled");
    cluster::pull_table(tc.seeds(), name, back);
    EXPECT_EQ(testing::read_file(back), testing::read_file(path)) << name;
  }
}

TEST(ClusterTier, APushCutOffMidwayIsRefusedThenResumed) {
  HASHMEM_REQUIRE_REDIS();
  TestCluster tc(2, 0);
  ScratchDir dir;
  const std::string path = make_table(dir, DType::bf16, "t");
  const cluster::PushResult full = cluster::push_table(path, tc.seeds(), "t");
  // What a push killed midway leaves: state "pushing", some blocks missing, one damaged.
  auto c = client_of(tc);
  c.run({{{"HSET", cluster::meta_key("t"), "state", "pushing"}}, {{"DEL", cluster::block_key("t", 1)}},
         {{"DEL", cluster::block_key("t", 3)}}, {{"SETRANGE", cluster::block_key("t", 2), "5", "xx"}}});
  EXPECT_NE(error_of([&] { Table::open("", cluster_options(tc, "t")); }).find("incomplete"), std::string::npos);
  EXPECT_NE(error_of([&] { cluster::pull_table(tc.seeds(), "t", dir.file("x")); }).find("incomplete"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir.file("x")));
  const cluster::PushResult resumed = cluster::push_table(path, tc.seeds(), "t");
  EXPECT_EQ(resumed.sent, 3);
  EXPECT_EQ(resumed.skipped, full.blocks - 3);
  cluster::pull_table(tc.seeds(), "t", dir.file("back"));
  EXPECT_EQ(testing::read_file(dir.file("back")), testing::read_file(path));
  EXPECT_NE(error_of([&] { Table::open("", cluster_options(tc, "nope")); }).find("does not exist"), std::string::npos);
  c.run({{{"HSET", cluster::meta_key("t"), "file_bytes", "lots"}}});
  EXPECT_NE(error_of([&] { Table::open("", cluster_options(tc, "t")); }).find("damaged meta"), std::string::npos);
  EXPECT_NE(error_of([&] { cluster::push_table(path, tc.seeds(), "bad:name"); }).find("without ':'"), std::string::npos);
}

TEST(ClusterTier, GathersEqualTheDramTierForEveryDtype) {
  HASHMEM_REQUIRE_REDIS();
  TestCluster tc(3, 0);
  ScratchDir dir;
  for (DType dtype : {DType::f32, DType::bf16, DType::fp8}) {
    const std::string name = std::string("g_") + store::dtype_name(dtype);
    const std::string path = make_table(dir, dtype, name, 7);
    cluster::push_table(path, tc.seeds(), name);
    for (std::uint64_t budget : {std::uint64_t{0}, std::uint64_t{20000}}) {
      auto t = Table::open("", cluster_options(tc, name, budget));
      EXPECT_EQ(t->info().total_rows(), store::read_info(path).total_rows());
      expect_same_rows(*t, path, 11 + budget);
      if (budget == 0) EXPECT_GT(t->stats().reads, 0u);
    }
  }
}

TEST(ClusterTier, AGatherStreamRidesOutAKilledMaster) {
  HASHMEM_REQUIRE_REDIS();
  TestCluster tc(3, 1, 500);
  ScratchDir dir;
  const std::string path = make_table(dir, DType::fp8, "t");
  cluster::push_table(path, tc.seeds(), "t");
  auto c = client_of(tc);
  for (int m = 0; m < 3; ++m) {
    cluster::RedisConn(tc.options.host, tc.status.nodes[static_cast<std::size_t>(m)].port, 2).command({"WAIT", "1", "2000"});
  }
  auto t = Table::open("", cluster_options(tc, "t"));
  // Gathers run before, during and after the failover: the master is killed once the stream is under way, and
  // the stream goes on for 3 s after (the failover takes ~1-2 s at a 500 ms node timeout). Bounded: 60 s at most.
  std::atomic<bool> killed{false};
  std::uint64_t seed = 3, rounds_before = 0, rounds_after = 0;
  double killed_at = 0;
  for (const double deadline = now_seconds() + 60; now_seconds() < deadline;) {
    expect_same_rows(*t, path, seed++, 5);
    if (::testing::Test::HasFatalFailure()) return;
    if (!killed) {
      if (++rounds_before == 20) {
        ASSERT_EQ(::kill(static_cast<pid_t>(tc.status.nodes[0].pid), SIGKILL), 0);
        killed = true;
        killed_at = now_seconds();
      }
    } else {
      ++rounds_after;
      if (now_seconds() - killed_at > 3) break;
    }
  }
  EXPECT_TRUE(killed);
  EXPECT_GT(rounds_after, 1u) << "no gathers ran after the kill";
  expect_same_rows(*t, path, 4, 20);
}

TEST(ClusterTier, WithoutAReplicaErrorsNameTheSlotsAndTheCacheKeepsServing) {
  HASHMEM_REQUIRE_REDIS();
  TestCluster tc(3, 0, 500);
  ScratchDir dir;
  const std::string path = make_table(dir, DType::f32, "t");
  cluster::push_table(path, tc.seeds(), "t");
  store::OpenOptions o = cluster_options(tc, "t", 1 << 20);
  o.cluster_retry_seconds = 2;
  o.hot_rows = {{0, 1, 2, 3}, {}};
  o.static_fraction = 1.0;
  auto t = Table::open("", o);
  std::vector<float> want(4 * 32), got(4 * 32);
  const std::int64_t hot[] = {0, 1, 2, 3};
  t->gather(0, hot, 4, want.data());
  ::kill(static_cast<pid_t>(tc.status.nodes[0].pid), SIGKILL);
  // Rows of the dead master's blocks fail, naming its slots; the hot rows still come from DRAM.
  std::vector<std::int64_t> all(static_cast<std::size_t>(t->info().tensors[0].rows));
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<std::int64_t>(i);
  std::vector<float> out(all.size() * 32);
  const std::string e = error_of([&] { t->gather(0, all.data(), all.size(), out.data()); });
  EXPECT_NE(e.find("unreachable"), std::string::npos) << e;
  EXPECT_NE(e.find("Redis Cluster slots "), std::string::npos) << e;
  t->gather(0, hot, 4, got.data());
  EXPECT_EQ(got, want);
}

TEST(ClusterTier, AGatherStreamStaysCorrectDuringAReshard) {
  HASHMEM_REQUIRE_REDIS();
  if (std::system("command -v redis-cli >/dev/null 2>&1") != 0) GTEST_SKIP() << "redis-cli is not installed";
  TestCluster tc(2, 0);
  ScratchDir dir;
  const std::string path = make_table(dir, DType::bf16, "t");
  cluster::push_table(path, tc.seeds(), "t");
  auto t = Table::open("", cluster_options(tc, "t"));
  const std::string from = cluster::RedisConn(tc.options.host, tc.status.nodes[0].port, 2).text({"CLUSTER", "MYID"});
  const std::string to = cluster::RedisConn(tc.options.host, tc.status.nodes[1].port, 2).text({"CLUSTER", "MYID"});
  std::atomic<int> rc{-1};
  std::atomic<bool> resharding{true};
  std::thread reshard([&] {
    rc = std::system(("redis-cli --cluster reshard " + tc.seeds() + " --cluster-from " + from + " --cluster-to " + to +
                      " --cluster-slots 3000 --cluster-yes >/dev/null 2>&1").c_str());
    resharding = false;
  });
  // Gathers for as long as the reshard runs (bounded: 60 s), so every one of them races the slot moves.
  std::uint64_t seed = 100, rounds = 0;
  for (const double deadline = now_seconds() + 60; resharding && now_seconds() < deadline; ++rounds) {
    expect_same_rows(*t, path, seed++, 2);
    if (::testing::Test::HasFatalFailure()) break;
  }
  reshard.join();
  EXPECT_GT(rounds, 1u) << "no gathers ran during the reshard";
  EXPECT_EQ(rc, 0);
  expect_same_rows(*t, path, 6, 20);
}

// Training on a cluster table: SGD and Adam steps (Adam's moments a pushed table "<name>.adam", made on first use)
// written back to the cluster equal the same steps on a local copy, bit for bit — through the cluster tier with a
// small DRAM cache (rows evicted dirty) and after reopening; checkpoint_to makes the same files as the local copy's.
TEST(ClusterTier, TrainingUpdatesWriteBackAndEqualALocalCopy) {
  HASHMEM_REQUIRE_REDIS();
  TestCluster tc(2, 0);
  ScratchDir dir;
  const std::string path = make_table(dir, DType::f32, "t", 5);
  cluster::push_table(path, tc.seeds(), "t");
  std::filesystem::copy_file(path, dir.file("local.safetensors"));
  store::OpenOptions local_options;
  local_options.writable = true;
  auto local = Table::open(dir.file("local.safetensors"), local_options);
  store::OpenOptions remote_options = cluster_options(tc, "t", 64 * 32 * 4);  // room for 64 rows: evictions
  remote_options.writable = true;
  auto remote = Table::open("", remote_options);
  const std::int64_t dim = remote->info().dim, rows0 = remote->info().tensors[0].rows;
  std::mt19937_64 rng(11);
  std::vector<std::int64_t> rows(40);
  std::vector<float> grads(rows.size() * static_cast<std::size_t>(dim)), a(grads.size()), b(grads.size());
  for (int step = 1; step <= 6; ++step) {
    for (auto& r : rows) r = static_cast<std::int64_t>(rng() % 300);  // repeats across steps and within one
    for (auto& g : grads) g = static_cast<float>(static_cast<std::int64_t>(rng() % 2001) - 1000) / 1000.0f;
    store::UpdateOptions u;
    u.optimizer = step <= 2 ? store::Optimizer::sgd : store::Optimizer::adam;
    u.step = step;
    local->apply_rows(0, rows.data(), rows.size(), grads.data(), u);
    remote->apply_rows(0, rows.data(), rows.size(), grads.data(), u);
    local->gather(0, rows.data(), rows.size(), a.data());
    remote->gather(0, rows.data(), rows.size(), b.data());
    ASSERT_EQ(a, b) << "step " << step;
  }
  EXPECT_EQ(cluster::table_state(tc.seeds(), "t.adam"), cluster::TableState::complete);
  remote->checkpoint();
  remote.reset();
  remote = Table::open("", cluster_options(tc, "t"));
  std::vector<std::int64_t> all(static_cast<std::size_t>(std::min<std::int64_t>(rows0, 300)));
  for (std::size_t i = 0; i < all.size(); ++i) all[i] = static_cast<std::int64_t>(i);
  a.resize(all.size() * static_cast<std::size_t>(dim));
  b.resize(a.size());
  local->gather(0, all.data(), all.size(), a.data());
  remote->gather(0, all.data(), all.size(), b.data());
  EXPECT_EQ(a, b);  // the cluster kept every written-back row
  remote.reset();
  remote_options.dram_budget = 0;
  remote = Table::open("", remote_options);
  local->checkpoint_to(dir.file("from_local.safetensors"));
  remote->checkpoint_to(dir.file("from_cluster.safetensors"));
  for (const char* suffix : {".safetensors", ".safetensors.adam"}) {
    EXPECT_EQ(testing::read_file(dir.file(std::string("from_local") + suffix)),
              testing::read_file(dir.file(std::string("from_cluster") + suffix))) << suffix;
  }
}

TEST(ClusterTier, TheCApiOpensTablesAndSessionsOnACluster) {
  HASHMEM_REQUIRE_REDIS();
  TestCluster tc(2, 0);
  ScratchDir dir;
  const std::string path = make_table(dir, DType::fp8, "t");
  cluster::push_table(path, tc.seeds(), "t");
  const std::string opts = "{\"tier\": \"cluster\", \"cluster\": \"" + tc.seeds() + "\", \"name\": \"t\", \"dram_budget\": 4096}";
  char* err = nullptr;
  hm_table* t = hm_table_open(nullptr, opts.c_str(), &err);
  ASSERT_NE(t, nullptr) << err;
  auto dram = Table::open(path);
  const std::int64_t rows[] = {0, 5, 5, 700, 1};
  std::vector<float> got(5 * 32), want(5 * 32);
  hm_table_gather_f32(t, 1, rows, 5, got.data(), &err);
  ASSERT_EQ(err, nullptr) << err;
  dram->gather(1, rows, 5, want.data());
  EXPECT_EQ(got, want);
  hm_table_close(t);

  // A session on the cluster gathers what a session on the file gathers.
  hm_session* on_cluster = hm_session_open(nullptr, opts.c_str(), &err);
  ASSERT_NE(on_cluster, nullptr) << err;
  hm_session* on_file = hm_session_open(path.c_str(), nullptr, &err);
  ASSERT_NE(on_file, nullptr) << err;
  const std::int64_t tokens[] = {3, 17, 42, 99, 3, 17};
  const std::size_t per = static_cast<std::size_t>(hm_session_layers(on_file) * hm_session_columns(on_file) * hm_session_dim(on_file));
  std::vector<float> a(6 * per), b(6 * per);
  hm_session_prefill_f32(on_cluster, hm_session_add(on_cluster, &err), tokens, 6, a.data(), &err);
  hm_session_prefill_f32(on_file, hm_session_add(on_file, &err), tokens, 6, b.data(), &err);
  ASSERT_EQ(err, nullptr) << err;
  EXPECT_EQ(a, b);
  hm_session_close(on_cluster);
  hm_session_close(on_file);

  auto error = [&](const char* p, const std::string& o) {
    char* e = nullptr;
    hm_table* x = hm_table_open(p, o.c_str(), &e);
    hm_table_close(x);
    std::string msg = e ? e : "no error";
    hm_free(e);
    return msg;
  };
  EXPECT_NE(error(path.c_str(), opts).find("path must be NULL"), std::string::npos);
  EXPECT_NE(error(nullptr, "{\"tier\": \"cluster\", \"cluster\": \"" + tc.seeds() + "\"}").find("needs"), std::string::npos);
  EXPECT_NE(error(path.c_str(), "{\"name\": \"t\"}").find("belong to"), std::string::npos);
  EXPECT_NE(error(nullptr, "{\"tier\": \"cluster\", \"cluster\": \"" + tc.seeds() + "\", \"name\": \"absent\"}").find("does not exist"),
            std::string::npos);
  EXPECT_NE(error(nullptr, "{}").find("path is NULL"), std::string::npos);
  EXPECT_NE(error(path.c_str(), "{\"replica_reads\": true}").find("belong to"), std::string::npos);
  EXPECT_NE(error(nullptr, "{\"tier\": \"cluster\", \"cluster\": \"" + tc.seeds() + "\", \"name\": \"t\", \"replica_reads\": 1}")
                .find("true or false"), std::string::npos);
}

// Reads from replicas: once every replica has caught up with its master (WAIT), gathers with replica reads equal
// the DRAM tier's, the C API's "replica_reads" opens the same way, and the replicas served some of the reads.
TEST(ClusterTier, ReplicaReadsEqualTheDramTierAndReachTheReplicas) {
  HASHMEM_REQUIRE_REDIS();
  TestCluster tc(2, 1);
  ScratchDir dir;
  const std::string path = make_table(dir, DType::bf16, "t", 3);
  cluster::push_table(path, tc.seeds(), "t");
  for (std::size_t i = 0; i < tc.status.nodes.size(); ++i) {
    if (tc.status.nodes[i].role == "master") EXPECT_EQ(tc.node(i)->text({"WAIT", "1", "1500"}), "1");
  }
  // Redis 7.0 leaves a replica out of CLUSTER SLOTS until gossip reports a replication offset above 0 for it.
  const double deadline = now_seconds() + 20;
  for (bool listed = false; !listed && now_seconds() < deadline;) {
    const cluster::SlotMap map = cluster::SlotMap::load(*tc.node(0));
    listed = true;
    for (int s : {0, 16383}) listed = listed && !map.replicas[static_cast<std::size_t>(map.master[static_cast<std::size_t>(s)])].empty();
    if (!listed) ::usleep(100'000);
  }
  store::OpenOptions o = cluster_options(tc, "t");
  o.cluster_replica_reads = true;
  auto t = Table::open("", o);
  expect_same_rows(*t, path, 21);
  char* err = nullptr;
  const std::string opts = "{\"tier\": \"cluster\", \"cluster\": \"" + tc.seeds() + "\", \"name\": \"t\", \"replica_reads\": true}";
  hm_table* c = hm_table_open(nullptr, opts.c_str(), &err);
  ASSERT_NE(c, nullptr) << err;
  hm_table_close(c);
  long replica_getranges = 0;
  for (std::size_t i = 0; i < tc.status.nodes.size(); ++i) {
    if (tc.status.nodes[i].role != "replica") continue;
    const std::string stats = tc.node(i)->text({"INFO", "commandstats"});
    const std::size_t at = stats.find("cmdstat_getrange:calls=");
    if (at != std::string::npos) replica_getranges += std::atol(stats.c_str() + at + 23);
  }
  EXPECT_GT(replica_getranges, 0);
}

}  // namespace
}  // namespace hashmem
