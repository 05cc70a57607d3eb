// hashmem/cluster.hpp — a Redis Cluster on this machine, made of Debian's redis-server, for the store's cluster
// tier (docs/cluster.md). hashmem does not build a distributed store: Redis Cluster is the engine (16,384 hash
// slots spread over masters, replicas promoted when a master fails) and hashmem starts, inspects and stops it.
//
//   up(dir, masters M, replicas R, port P)  nodes on ports P .. P + M·(1+R) − 1 (cluster bus: port + 10000), bound to
//                                           `host` (loopback by default), each in dir/node-<port>/ (redis.conf,
//                                           nodes.conf, redis.log, redis.pid); slots split evenly over the masters;
//                                           replica i follows master i mod M. Returns once every node reports
//                                           cluster_state:ok with all 16,384 slots covered and every replica linked.
//   status(dir)                             each node's port, role, pid, liveness and slot ranges, from the nodes'
//                                           own CLUSTER NODES.
//   down(dir)                               SIGTERM to each node's pid (redis-server's shutdown), SIGKILL for any left
//                                           after the timeout. By pid, never by port: only nodes this dir started.
//
// The nodes keep data in memory only (no RDB, no AOF): a cluster brought down loses its tables. dir/cluster.json
// (written atomically) records the nodes; `up` on a dir whose cluster still runs is an error, on a stopped one it
// starts afresh.
//
// Threads: the calls are independent and may run on different threads for different dirs; one dir at a time.
// Errors: hashmem::Error naming the node (host:port), its log file or the missing program.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace hashmem::cluster {

constexpr int kSlots = 16384;

struct UpOptions {
  std::string dir;                          // created if missing
  int masters = 3;                          // >= 1
  int replicas = 0;                         // per master, >= 0
  int port = 7000;                          // first node's port; the cluster bus adds 10000
  std::string host = "127.0.0.1";           // address the nodes bind to and announce
  std::string redis_server = "redis-server";  // the program (searched in PATH)
  int node_timeout_ms = 2000;               // cluster-node-timeout: how soon a dead master's replica takes over
  double timeout_seconds = 60;              // for the whole start
};

struct Node {
  int port = 0;
  std::string id;              // the node's cluster id ("" if it cannot be reached)
  std::string role;            // "master", "replica", or "down"
  std::string master_id;       // a replica's master
  long pid = 0;                // from redis.pid (0 if none)
  bool alive = false;          // answers PING
  std::vector<std::pair<int, int>> slots;  // inclusive ranges served (masters)
};

struct Status {
  std::string dir, host;
  std::vector<Node> nodes;     // in port order
  std::string state;           // cluster_state reported by the first reachable node ("" if none)
  int slots_ok = 0;            // cluster_slots_ok of that node
};

// Starts a cluster; see above. Throws Error on bad options, a missing program, a port in use (naming it), a node that
// exits (naming its log), a cluster already running in `dir`, or a timeout (naming what was still missing); nodes it
// started are stopped again.
Status up(const UpOptions& options);

// Stops every node of the cluster in `dir` (no error for nodes already down). Throws Error if `dir` holds no
// cluster.json.
void down(const std::string& dir, double timeout_seconds = 10);

// The state of the cluster in `dir`. Throws Error if `dir` holds no cluster.json.
Status status(const std::string& dir);

// Tables on a cluster (docs/cluster.md, key layout in src/cluster/table_keys.hpp). push_table uploads the table
// file at `path` as `name` to the cluster at `seeds` ("host:port[,...]"): idempotent and resumable (blocks the
// cluster already holds, checked by a server-side SHA-1, are skipped; every sent block is verified the same way);
// the table is visible to opens only once complete. pull_table writes it back to `path`, byte-identical, checked
// against its checksums before it appears. Errors name the table, block or unreachable slots.
struct PushResult {
  std::int64_t blocks = 0, sent = 0, skipped = 0;
  std::uint64_t bytes_sent = 0;
  double seconds = 0;
};
PushResult push_table(const std::string& path, const std::string& seeds, const std::string& name);
void pull_table(const std::string& seeds, const std::string& name, const std::string& path);

// The first port p >= `start` such that p .. p + count − 1 and their bus ports (+ 10000) can be bound on `host` now
// (for tests and benchmarks that start their own clusters). Throws Error if none below 55535.
int free_port_base(int count, int start, const std::string& host = "127.0.0.1");

}  // namespace hashmem::cluster
