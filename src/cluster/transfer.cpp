// hashmem table push / pull: a table file to and from a Redis Cluster (table_keys.hpp, include/hashmem/cluster.hpp).
//
// push is idempotent and resumable: for each batch of blocks it asks the cluster for the SHA-1 of what it holds
// (EVAL of redis.sha1hex, computed by the server, so nothing comes back over the wire), sends only the blocks that
// differ from the file, then asks again and requires a match. The table becomes visible (meta state "complete")
// only after every block verified; a push cut off midway leaves state "pushing", which open refuses and the next
// push finishes. pull writes the file beside its target, checks it as `table verify` does, then renames it.
#include <fcntl.h>
#include <filesystem>
#include <hiredis/hiredis.h>
#include <openssl/sha.h>
#include <unistd.h>

#include "cluster/client.hpp"
#include "cluster/cluster_device.hpp"
#include "cluster/table_keys.hpp"
#include "common/file_io.hpp"
#include "hashmem/clock.hpp"
#include "hashmem/cluster.hpp"
#include "hashmem/error.hpp"
#include "hashmem/output_file.hpp"
#include "hashmem/progress.hpp"
#include "hashmem/store.hpp"

namespace hashmem::cluster {
namespace {

constexpr std::int64_t kBatchBlocks = 64;
constexpr const char* kSha1Script = "return redis.sha1hex(redis.call('GET', KEYS[1]) or '')";

std::string sha1_hex(const std::string& bytes) {
  unsigned char d[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), d);
  static const char* hex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : d) {
    out += hex[c >> 4];
    out += hex[c & 15];
  }
  return out;
}

std::string file_bytes_at(int fd, std::uint64_t offset, std::size_t size, const std::string& path) {
  std::string s(size, '\0');
  if (size) read_exact(fd, offset, s.data(), size, path);
  return s;
}

// The SHA-1 of blocks [first, first + n) as the cluster holds them ("da39..." for a missing key).
std::vector<std::string> cluster_sha1(ClusterClient& c, const std::string& name, std::int64_t first, std::int64_t n) {
  std::vector<Command> cmds;
  for (std::int64_t k = first; k < first + n; ++k) cmds.push_back({{"EVAL", kSha1Script, "1", block_key(name, k)}, 3});
  std::vector<std::string> out;
  for (const Reply& r : c.run(cmds)) {
    if (r->type != REDIS_REPLY_STRING) throw Error("the cluster refused to checksum a block of table '" + name + "'");
    out.emplace_back(r->str, r->len);
  }
  return out;
}

}  // namespace

PushResult push_table(const std::string& path, const std::string& seeds, const std::string& name) {
  if (name.empty() || name.find_first_of(":{} ") != std::string::npos) {
    throw Error("table name '" + name + "' must be non-empty, without ':', '{', '}' or spaces");
  }
  const double t0 = now_seconds();
  const store::TableInfo info = store::read_info(path);
  ClientOptions o;
  o.seeds = parse_seeds(seeds);
  ClusterClient client(o);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error("cannot open table '" + path + "'");
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  const std::int64_t rows = info.total_rows(), blocks = (rows + kBlockRows - 1) / kBlockRows;
  client.run({{{"HSET", meta_key(name), "state", "pushing", "file_bytes", std::to_string(info.file_bytes), "header_bytes",
                std::to_string(info.header_bytes), "checksums_offset", std::to_string(info.checksums_offset), "row_bytes",
                std::to_string(info.row_bytes), "rows", std::to_string(rows), "block_rows", std::to_string(kBlockRows)}},
              {{"SET", head_key(name), file_bytes_at(fd, 0, info.header_bytes, path)}},
              {{"SET", sums_key(name), file_bytes_at(fd, info.checksums_offset, info.file_bytes - info.checksums_offset, path)}}});
  PushResult result;
  result.blocks = blocks;
  Progress progress("push " + path + " to " + seeds, static_cast<std::uint64_t>(blocks));
  for (std::int64_t first = 0; first < blocks; first += kBatchBlocks) {
    const std::int64_t n = std::min(kBatchBlocks, blocks - first);
    std::vector<std::string> bytes, sums;
    for (std::int64_t k = first; k < first + n; ++k) {
      const std::int64_t r0 = k * kBlockRows, r1 = std::min(rows, r0 + kBlockRows);
      bytes.push_back(file_bytes_at(fd, info.header_bytes + static_cast<std::uint64_t>(r0) * info.row_bytes,
                                    static_cast<std::size_t>(r1 - r0) * info.row_bytes, path));
      sums.push_back(sha1_hex(bytes.back()));
    }
    const std::vector<std::string> held = cluster_sha1(client, name, first, n);
    std::vector<Command> sets;
    std::vector<std::int64_t> sent;
    for (std::int64_t i = 0; i < n; ++i) {
      if (held[static_cast<std::size_t>(i)] == sums[static_cast<std::size_t>(i)]) continue;
      sets.push_back({{"SET", block_key(name, first + i), std::move(bytes[static_cast<std::size_t>(i)])}});
      sent.push_back(i);
      result.bytes_sent += sets.back().args[2].size();
    }
    if (!sets.empty()) {
      client.run(sets);
      const std::vector<std::string> now = cluster_sha1(client, name, first, n);
      for (std::int64_t i : sent) {
        if (now[static_cast<std::size_t>(i)] != sums[static_cast<std::size_t>(i)]) {
          throw Error("block " + std::to_string(first + i) + " of table '" + name + "' did not verify on the cluster after upload");
        }
      }
    }
    result.sent += static_cast<std::int64_t>(sent.size());
    result.skipped += n - static_cast<std::int64_t>(sent.size());
    progress.update(static_cast<std::uint64_t>(first + n));
  }
  progress.finish();
  client.run({{{"HSET", meta_key(name), "state", "complete"}}});
  result.seconds = now_seconds() - t0;
  return result;
}

void pull_table(const std::string& seeds, const std::string& name, const std::string& path) {
  const store::TableInfo info = read_cluster_info(seeds, name);
  ClientOptions o;
  o.seeds = parse_seeds(seeds);
  ClusterClient client(o);
  const std::string partial = path + ".pulling";
  {
    OutputFile out(partial);
    std::vector<Reply> r = client.run({{{"GET", head_key(name)}}, {{"GET", sums_key(name)}}});
    const std::string sums(r[1]->str, r[1]->len);
    out.write(std::string_view(r[0]->str, r[0]->len));
    const std::int64_t rows = info.total_rows(), blocks = (rows + kBlockRows - 1) / kBlockRows;
    Progress progress("pull " + name + " from " + seeds, static_cast<std::uint64_t>(blocks));
    for (std::int64_t first = 0; first < blocks; first += kBatchBlocks) {
      const std::int64_t n = std::min(kBatchBlocks, blocks - first);
      std::vector<Command> gets;
      for (std::int64_t k = first; k < first + n; ++k) gets.push_back({{"GET", block_key(name, k)}});
      const std::vector<Reply> got = client.run(gets);
      for (std::int64_t i = 0; i < n; ++i) {
        const std::int64_t k = first + i, want = (std::min(rows, (k + 1) * kBlockRows) - k * kBlockRows) *
                                                 static_cast<std::int64_t>(info.row_bytes);
        const Reply& b = got[static_cast<std::size_t>(i)];
        if (b->type != REDIS_REPLY_STRING || static_cast<std::int64_t>(b->len) != want) {
          throw Error("block " + std::to_string(k) + " of table '" + name + "' is missing or damaged on the cluster");
        }
        out.write(std::string_view(b->str, b->len));
      }
      progress.update(static_cast<std::uint64_t>(first + n));
    }
    progress.finish();
    out.write(sums);
    out.commit();
  }
  try {
    const std::vector<std::string> bad = store::verify_table(partial);
    if (!bad.empty()) throw Error("table '" + name + "' pulled from " + seeds + " fails its checksums: " + bad.front());
  } catch (...) {
    std::filesystem::remove(partial);
    throw;
  }
  std::filesystem::rename(partial, path);
}

}  // namespace hashmem::cluster
