// ClusterClient: commands on keys of a Redis Cluster, routed to the node serving each key's slot, pipelined to all
// the nodes at once, following MOVED (the slot moved: update the map) and ASK (the slot is migrating: ASKING, then
// the command, on the named node, once), and riding out a failover: a node that stops answering is dropped, the
// slot map reloaded from any node that answers, and its commands sent again until `retry_seconds` run out — then
// Error names the slots still unreachable.
//
// Threads: a client belongs to one thread at a time. Ownership: owns one connection per node it has talked to.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "cluster/redis_conn.hpp"
#include "cluster/slots.hpp"

namespace hashmem::cluster {

struct ClientOptions {
  std::vector<Endpoint> seeds;     // any nodes of the cluster (the slot map is read from the first that answers)
  double timeout_seconds = 2.0;    // connect and per-reply timeout
  double retry_seconds = 15.0;     // how long one run() keeps retrying through failovers and reshards
  // Commands marked read_only go to the slot's master and its replicas in turn (every connection sends READONLY
  // first). Replicas lag their master by the replication delay: for tables that are not being written.
  bool read_from_replicas = false;
};

// One command: args[key_index] is the key that routes it. Writes and reads alike; the caller keeps commands
// idempotent (GET, GETRANGE, SET, SETRANGE), since a command cut off by a failover is sent again.
struct Command {
  std::vector<std::string> args;
  int key_index = 1;
  bool read_only = false;  // may be served by a replica (ClientOptions::read_from_replicas)
};

class ClusterClient {
 public:
  // Throws Error naming the seeds when none answers CLUSTER SLOTS.
  explicit ClusterClient(ClientOptions options);
  ~ClusterClient();
  ClusterClient(const ClusterClient&) = delete;
  ClusterClient& operator=(const ClusterClient&) = delete;

  // Runs every command; replies in command order (error replies other than MOVED/ASK/TRYAGAIN/CLUSTERDOWN are
  // returned as they are). Throws Error naming the unreachable slots when retries run out.
  // `retry_seconds` < 0: the options' budget.
  std::vector<Reply> run(const std::vector<Command>& commands, double retry_seconds = -1);

  const SlotMap& slots() const { return map_; }
  void refresh();  // reloads the slot map (from the seeds and every node known)

  struct Counters {
    std::uint64_t commands = 0, moved = 0, ask = 0, retries = 0, refreshes = 0, round_trips = 0;
  };
  const Counters& counters() const { return counters_; }

 private:
  RedisConn* conn(int node);  // nullptr if the node cannot be reached now
  int read_node(int master);  // the master or one of its replicas, in turn
  void drop(int node);

  ClientOptions options_;
  SlotMap map_;
  std::vector<std::unique_ptr<RedisConn>> conns_;  // per node index of map_
  Counters counters_;
  std::size_t next_read_ = 0;
};

}  // namespace hashmem::cluster
