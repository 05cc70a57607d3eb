// How a table file lives on a Redis Cluster (docs/cluster.md), shared by push/pull (transfer.cpp) and the cluster
// tier's device (cluster_device.cpp).
//
//   hm:<name>:meta     hash: file_bytes, header_bytes, checksums_offset, row_bytes, rows, block_rows, state
//                      ("pushing" while blocks are uploaded, "complete" once every block is verified)
//   hm:<name>:head     the file's bytes [0, header_bytes): the safetensors header, as in the file
//   hm:<name>:sums     the file's checksum section [checksums_offset, file_bytes)
//   hm:<name>:b:<k>    block k: the stored bytes of global rows [k·block_rows, (k+1)·block_rows) back to back (the
//                      last block may be shorter) — the file's data region cut into values of ~67 KB
//
// A block is one key, so its rows share a hash slot; blocks spread over the slots by CRC16 of their keys. A gather
// reads each row with GETRANGE of its block (the server copies row_bytes, whatever the block size); push and pull
// move whole blocks; updates write rows with SETRANGE. One key per row instead would cost ~70 B of Redis overhead
// per 264 B row (~25 % at V4.1's 768 M rows); one per block costs ~0.1 %.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "cluster/slots.hpp"

namespace hashmem::cluster {

inline constexpr std::int64_t kBlockRows = 256;

inline std::string meta_key(const std::string& name) { return "hm:" + name + ":meta"; }
inline std::string head_key(const std::string& name) { return "hm:" + name + ":head"; }
inline std::string sums_key(const std::string& name) { return "hm:" + name + ":sums"; }
inline std::string block_key(const std::string& name, std::int64_t block) {
  return "hm:" + name + ":b:" + std::to_string(block);
}

// "host:port[,host:port...]" → endpoints. Throws Error naming the text when it is not that.
std::vector<Endpoint> parse_seeds(const std::string& text);

}  // namespace hashmem::cluster
