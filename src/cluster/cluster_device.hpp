// The cluster tier: a table pushed to a Redis Cluster (table_keys.hpp), read through the store's cached tier as a
// RowDevice. store::Table::open picks it for Tier::cluster.
#pragma once

#include <memory>
#include <string>

#include "hashmem/store.hpp"
#include "store/row_device.hpp"

namespace hashmem::cluster {

// The TableInfo of table `name` on the cluster at `seeds` ("host:port[,...]"), from its header and checksum keys,
// checked as a file's would be. Throws Error naming the table when it is missing or its push is incomplete.
store::TableInfo read_cluster_info(const std::string& seeds, const std::string& name);

// Rows of `info` from the cluster: GETRANGEs of blocks pipelined to every node by an I/O thread (up to
// `queue_depth` rows per batch); writes (writable tables) are SETRANGEs. A read waits up to `retry_seconds` for a
// failover or reshard. Errors name the slots and rows.
std::unique_ptr<store::RowDevice> open_cluster_device(const std::string& seeds, const std::string& name,
                                                      const store::TableInfo& info, int queue_depth,
                                                      double retry_seconds);

}  // namespace hashmem::cluster
