// hashmem cluster up | down | status — a Redis Cluster of Debian's redis-server on this machine (hashmem/cluster.hpp).
#include <cstdio>
#include <filesystem>

#include "cli.hpp"
#include "hashmem/cluster.hpp"

namespace hashmem::cli {
namespace {

using ojson = nlohmann::ordered_json;

std::string slot_text(const cluster::Node& n) {
  std::string s;
  for (const auto& [lo, hi] : n.slots) s += (s.empty() ? "" : ",") + std::to_string(lo) + "-" + std::to_string(hi);
  return s.empty() ? "-" : s;
}

ojson status_json(const cluster::Status& s) {
  ojson nodes = ojson::array();
  for (const cluster::Node& n : s.nodes) {
    ojson slots = ojson::array();
    for (const auto& [lo, hi] : n.slots) slots.push_back({lo, hi});
    nodes.push_back({{"port", n.port}, {"role", n.role}, {"pid", n.pid}, {"alive", n.alive}, {"id", n.id},
                     {"master_id", n.master_id}, {"slots", slots}});
  }
  return {{"dir", s.dir}, {"host", s.host}, {"state", s.state}, {"slots_ok", s.slots_ok}, {"nodes", nodes}};
}

void print_status(const cluster::Status& s, bool json) {
  if (json) {
    print_json(status_json(s));
    return;
  }
  std::printf("cluster in %s: state %s, %d of %d slots ok\n", s.dir.c_str(), s.state.empty() ? "unreachable" : s.state.c_str(),
              s.slots_ok, cluster::kSlots);
  std::printf("  %-21s %-8s %-8s %s\n", "node", "role", "pid", "slots");
  for (const cluster::Node& n : s.nodes) {
    std::printf("  %-21s %-8s %-8ld %s\n", (s.host + ":" + std::to_string(n.port)).c_str(), n.role.c_str(), n.pid,
                slot_text(n).c_str());
  }
}

}  // namespace

void register_cluster(CLI::App& app, Action& action) {
  CLI::App* c = app.add_subcommand("cluster", "A Redis Cluster of Debian's redis-server on this machine (the cluster tier's engine)");
  c->require_subcommand(1);

  auto up = std::make_shared<cluster::UpOptions>();
  auto up_json = std::make_shared<bool>(false);
  CLI::App* u = c->add_subcommand("up", "Start a cluster and wait until every slot is covered and every replica linked");
  u->add_option("--dir", up->dir, "Directory for the nodes (node-<port>/ each) and cluster.json")->required();
  u->add_option("--masters", up->masters, "Masters (the 16384 slots are split evenly)")->capture_default_str();
  u->add_option("--replicas", up->replicas, "Replicas per master")->capture_default_str();
  u->add_option("--port", up->port, "First node's port (nodes take consecutive ports; cluster bus +10000)")->capture_default_str();
  u->add_option("--host", up->host, "Address to bind and announce (loopback by default)")->capture_default_str();
  u->add_option("--node-timeout-ms", up->node_timeout_ms, "cluster-node-timeout (failover speed)")->capture_default_str();
  u->add_option("--timeout", up->timeout_seconds, "Seconds to wait for the cluster")->capture_default_str();
  u->add_option("--redis-server", up->redis_server, "The redis-server program")->capture_default_str();
  u->add_flag("--json", *up_json, "Print the status as JSON");
  u->callback([&action, up, up_json] {
    action = [up, up_json] {
      print_status(cluster::up(*up), *up_json);
      return 0;
    };
  });

  auto dir = std::make_shared<std::string>();
  auto json = std::make_shared<bool>(false);
  CLI::App* d = c->add_subcommand("down", "Stop every node of the cluster in --dir");
  d->add_option("--dir", *dir, "The cluster's directory")->required();
  d->callback([&action, dir] {
    action = [dir] {
      cluster::down(*dir);
      std::printf("cluster in %s stopped\n", dir->c_str());
      return 0;
    };
  });

  CLI::App* s = c->add_subcommand("status", "Each node's port, role, pid and slots");
  s->add_option("--dir", *dir, "The cluster's directory")->required();
  s->add_flag("--json", *json, "JSON output");
  s->callback([&action, dir, json] {
    action = [dir, json] {
      print_status(cluster::status(*dir), *json);
      return 0;
    };
  });
}

void register_table_cluster(CLI::App* table, Action& action) {
  struct Args {
    std::string file, cluster, name;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  CLI::App* push = table->add_subcommand("push", "Upload a table file to a Redis Cluster (resumable, idempotent, verified)");
  push->add_option("file", a->file, "Table file")->required();
  push->add_option("--cluster", a->cluster, "HOST:PORT of any node (comma-separated for several)")->required();
  push->add_option("--name", a->name, "Name on the cluster (default: the file's name without .safetensors)");
  push->add_flag("--json", a->json, "JSON output");
  push->callback([&action, a] {
    action = [a] {
      std::string name = a->name;
      if (name.empty()) name = std::filesystem::path(a->file).stem().string();
      const cluster::PushResult r = cluster::push_table(a->file, a->cluster, name);
      if (a->json) {
        print_json({{"name", name}, {"blocks", r.blocks}, {"sent", r.sent}, {"skipped", r.skipped},
                    {"bytes_sent", r.bytes_sent}, {"seconds", r.seconds}});
      } else {
        std::printf("pushed %s as '%s': %lld blocks, %lld sent (%.1f MB), %lld already there, %.1f s\n", a->file.c_str(),
                    name.c_str(), static_cast<long long>(r.blocks), static_cast<long long>(r.sent), r.bytes_sent / 1e6,
                    static_cast<long long>(r.skipped), r.seconds);
      }
      return 0;
    };
  });
  auto b = std::make_shared<Args>();
  CLI::App* pull = table->add_subcommand("pull", "Download a table from a Redis Cluster to a file (checked, atomic)");
  pull->add_option("--cluster", b->cluster, "HOST:PORT of any node")->required();
  pull->add_option("--name", b->name, "The table's name on the cluster")->required();
  pull->add_option("--out", b->file, "Output file")->required();
  pull->callback([&action, b] {
    action = [b] {
      cluster::pull_table(b->cluster, b->name, b->file);
      std::printf("pulled '%s' to %s\n", b->name.c_str(), b->file.c_str());
      return 0;
    };
  });
}

}  // namespace hashmem::cli
