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

// Whether table `name` is on the cluster at `seeds`: absent, its push incomplete, or complete (opens accept it).
// Throws Error naming the seeds when no node answers.
enum class TableState { missing, pushing, complete };
TableState table_state(const std::string& seeds, const std::string& name);

// Rows of `info` from the cluster options.cluster, table options.name: GETRANGEs of blocks pipelined to every node
// by options.cluster_io_threads I/O threads, each with its own connections, each taking what waits (up to
// options.queue_depth rows), so reads that arrive while one batch is on the wire go out at once in another; writes
// (writable tables) are SETRANGEs. A read waits up to options.cluster_retry_seconds for a failover or reshard. Errors name the slots and
// rows.
std::unique_ptr<store::RowDevice> open_cluster_device(const store::OpenOptions& options, const store::TableInfo& info);

}  // namespace hashmem::cluster
