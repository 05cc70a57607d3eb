// Redis Cluster's key → hash slot map and the slot → node routing table of one cluster.
//
// key_slot: CRC16-XMODEM of the key (or of the part inside its first non-empty "{...}", the hash tag) mod 16384,
// exactly as Redis computes it (cluster.c keyHashSlot), so keys sharing a tag share a slot.
// SlotMap: from CLUSTER SLOTS — for each slot, the master serving it and its replicas.
//
// Threads: values; a SlotMap is not shared between threads while it is updated.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace hashmem::cluster {

class RedisConn;

std::uint16_t crc16_xmodem(std::string_view bytes);
int key_slot(std::string_view key);

struct Endpoint {
  std::string host;
  int port = 0;
  bool operator==(const Endpoint& o) const { return port == o.port && host == o.host; }
  std::string name() const { return host + ":" + std::to_string(port); }
};

struct SlotMap {
  std::vector<Endpoint> nodes;                 // every node named by CLUSTER SLOTS
  std::array<int, 16384> master{};             // slot → index in nodes (−1: no node serves it)
  std::vector<std::vector<int>> replicas;      // per node index: its replicas' indexes (masters only)

  // Reads CLUSTER SLOTS through `conn`. Throws Error naming the node if the reply is not what Redis sends.
  static SlotMap load(RedisConn& conn);
  int node_index(const Endpoint& e);           // adds e if new
  std::vector<int> uncovered() const;          // slots no node serves
};

}  // namespace hashmem::cluster
