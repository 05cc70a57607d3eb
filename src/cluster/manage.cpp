// Starting, inspecting and stopping a Redis Cluster of Debian's redis-server (include/hashmem/cluster.hpp).
//
// up(): each node gets a config file and is started daemonized; once all answer PING the masters take their slot
// ranges (CLUSTER ADDSLOTSRANGE), the first node meets the others (CLUSTER MEET), replicas follow their masters
// (CLUSTER REPLICATE), and up() polls CLUSTER INFO / ROLE until the cluster is whole. Doing these steps ourselves
// rather than through `redis-cli --cluster create` makes slot assignment deterministic and failures name the step.
#include <arpa/inet.h>
#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <sstream>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

#include "cluster/redis_conn.hpp"
#include "hashmem/clock.hpp"
#include "hashmem/cluster.hpp"
#include "hashmem/error.hpp"
#include "hashmem/output_file.hpp"
#include "hashmem/process.hpp"

namespace fs = std::filesystem;

namespace hashmem::cluster {
namespace {

constexpr double kCommandTimeout = 2.0;

struct Manifest {
  std::string host;
  int masters = 0, replicas = 0;
  std::vector<int> ports;
};

std::string manifest_path(const std::string& dir) { return (fs::path(dir) / "cluster.json").string(); }
fs::path node_dir(const std::string& dir, int port) { return fs::path(dir) / ("node-" + std::to_string(port)); }

void write_manifest(const std::string& dir, const Manifest& m) {
  nlohmann::ordered_json j{{"host", m.host}, {"masters", m.masters}, {"replicas", m.replicas}, {"ports", m.ports}};
  OutputFile out(manifest_path(dir));
  out.write(j.dump(2) + "\n");
  out.commit();
}

Manifest read_manifest(const std::string& dir) {
  std::ifstream in(manifest_path(dir));
  if (!in) throw Error("no cluster in '" + dir + "' (" + manifest_path(dir) + " is missing; start one with hashmem cluster up)");
  try {
    const nlohmann::json j = nlohmann::json::parse(in);
    Manifest m;
    m.host = j.at("host").get<std::string>();
    m.masters = j.at("masters").get<int>();
    m.replicas = j.at("replicas").get<int>();
    m.ports = j.at("ports").get<std::vector<int>>();
    return m;
  } catch (const nlohmann::json::exception& e) {
    throw Error("'" + manifest_path(dir) + "' is not a cluster manifest: " + e.what());
  }
}

long read_pid(const std::string& dir, int port) {
  std::ifstream in(node_dir(dir, port) / "redis.pid");
  long pid = 0;
  if (!(in >> pid)) return 0;
  return pid;
}

// A running redis-server (not a zombie, not another program that took over the pid).
bool process_alive(long pid) {
  if (pid <= 0) return false;
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  if (!std::getline(stat, line)) return false;
  const std::size_t paren = line.rfind(')');
  if (paren == std::string::npos || paren + 2 >= line.size() || line[paren + 2] == 'Z') return false;
  return line.find("redis-server") != std::string::npos || line.find("redis-check") != std::string::npos;
}

std::string log_text(const std::string& dir, int port) {
  std::ifstream in(node_dir(dir, port) / "redis.log");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The last lines of a node's log, for errors.
std::string log_tail(const std::string& dir, int port) {
  const fs::path log = node_dir(dir, port) / "redis.log";
  std::ifstream in(log);
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::string tail;
  for (std::size_t i = lines.size() > 3 ? lines.size() - 3 : 0; i < lines.size(); ++i) tail += "\n  " + lines[i];
  return " (" + log.string() + ":" + (tail.empty() ? std::string(" empty") : tail) + ")";
}

bool can_bind(const std::string& host, int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  const bool ok = ::inet_pton(AF_INET, host.c_str(), &a.sin_addr) == 1 &&
                  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
  ::close(fd);
  return ok;
}

void write_node_config(const UpOptions& o, int port) {
  const fs::path d = fs::absolute(node_dir(o.dir, port));
  fs::create_directories(d);
  for (const char* stale : {"nodes.conf", "redis.pid", "dump.rdb"}) fs::remove(d / stale);
  std::ostringstream c;
  c << "port " << port << "\nbind " << o.host << "\nprotected-mode no\ncluster-enabled yes\n"
    << "cluster-config-file nodes.conf\ncluster-node-timeout " << o.node_timeout_ms << "\n"
    << "cluster-require-full-coverage no\n"  // masters still serve their own slots while another's are down
    << "cluster-announce-ip " << o.host << "\n"
    << "dir " << d.string() << "\npidfile " << (d / "redis.pid").string() << "\nlogfile " << (d / "redis.log").string()
    << "\ndaemonize yes\nsave \"\"\nappendonly no\n"
    << "repl-diskless-sync-delay 0\n";  // a replica links at once (the default waits 5 s for more replicas)
  OutputFile out((d / "redis.conf").string());
  out.write(c.str());
  out.commit();
}

// Polls `ready` every 50 ms until it returns "" (done) or the deadline passes; then throws with its last answer.
template <class Fn>
void wait_until(double deadline, const std::string& what, Fn&& ready) {
  std::string missing;
  for (;;) {
    try {
      missing = ready();
    } catch (const Error& e) {
      missing = e.what();
    }
    if (missing.empty()) return;
    if (now_seconds() > deadline) throw Error("timed out waiting for " + what + ": " + missing);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
}

// "key:value" from CLUSTER INFO / INFO text.
std::string info_field(const std::string& info, const std::string& key) {
  const std::size_t at = info.find(key + ":");
  if (at == std::string::npos) return "";
  const std::size_t begin = at + key.size() + 1, end = info.find_first_of("\r\n", begin);
  return info.substr(begin, end == std::string::npos ? std::string::npos : end - begin);
}

void start_nodes(const UpOptions& o, const std::vector<int>& ports) {
  for (int port : ports) {
    write_node_config(o, port);
    const ChildResult r = run_child({o.redis_server, fs::absolute(node_dir(o.dir, port) / "redis.conf").string()});
    if (r.exit_code == 127) throw Error("cannot run '" + o.redis_server + "' (install Debian's redis-server)");
    if (r.exit_code != 0) throw Error("redis-server for node " + o.host + ":" + std::to_string(port) + " exited with " +
                                      std::to_string(r.exit_code) + log_tail(o.dir, port));
  }
}

void form_cluster(const UpOptions& o, const std::vector<int>& ports, double deadline) {
  for (int port : ports) {
    // Ours answers: the node on the port reports the pid its pidfile holds (redis writes it once listening).
    wait_until(deadline, "node " + o.host + ":" + std::to_string(port) + " to answer", [&]() -> std::string {
      const long pid = read_pid(o.dir, port);
      if (pid == 0) {
        if (log_text(o.dir, port).find("Could not create server TCP listening socket") != std::string::npos) {
          throw Error("node " + o.host + ":" + std::to_string(port) + " cannot listen" + log_tail(o.dir, port));
        }
        return "not started yet";
      }
      if (!process_alive(pid)) throw Error("node " + o.host + ":" + std::to_string(port) + " exited" + log_tail(o.dir, port));
      auto c = RedisConn::try_connect(o.host, port, kCommandTimeout);
      if (!c) return "no answer yet";
      return info_field(c->text({"INFO", "server"}), "process_id") == std::to_string(pid) ? "" : "another process answers";
    });
  }
  std::vector<std::string> ids;
  for (int port : ports) ids.push_back(RedisConn(o.host, port, kCommandTimeout).text({"CLUSTER", "MYID"}));
  for (int m = 0; m < o.masters; ++m) {
    const int lo = kSlots * m / o.masters, hi = kSlots * (m + 1) / o.masters - 1;
    RedisConn(o.host, ports[m], kCommandTimeout).command({"CLUSTER", "ADDSLOTSRANGE", std::to_string(lo), std::to_string(hi)});
  }
  RedisConn first(o.host, ports[0], kCommandTimeout);
  for (std::size_t i = 1; i < ports.size(); ++i) first.command({"CLUSTER", "MEET", o.host, std::to_string(ports[i])});
  for (int port : ports) {
    wait_until(deadline, "node " + o.host + ":" + std::to_string(port) + " to know every node", [&]() -> std::string {
      const std::string info = RedisConn(o.host, port, kCommandTimeout).text({"CLUSTER", "INFO"});
      const std::string known = info_field(info, "cluster_known_nodes");
      return known == std::to_string(ports.size()) ? "" : "it knows " + known + " of " + std::to_string(ports.size());
    });
  }
  for (std::size_t i = static_cast<std::size_t>(o.masters); i < ports.size(); ++i) {
    const std::string& master = ids[(i - static_cast<std::size_t>(o.masters)) % static_cast<std::size_t>(o.masters)];
    wait_until(deadline, "replica " + o.host + ":" + std::to_string(ports[i]) + " to follow its master", [&]() {
      RedisConn(o.host, ports[i], kCommandTimeout).command({"CLUSTER", "REPLICATE", master});
      return std::string();
    });
  }
  for (std::size_t i = 0; i < ports.size(); ++i) {
    const std::string name = o.host + ":" + std::to_string(ports[i]);
    wait_until(deadline, "node " + name + " to see the whole cluster", [&]() -> std::string {
      RedisConn c(o.host, ports[i], kCommandTimeout);
      const std::string info = c.text({"CLUSTER", "INFO"});
      if (info_field(info, "cluster_state") != "ok") return "cluster_state " + info_field(info, "cluster_state");
      if (info_field(info, "cluster_slots_ok") != std::to_string(kSlots)) return "slots ok " + info_field(info, "cluster_slots_ok");
      if (i >= static_cast<std::size_t>(o.masters)) {
        const std::string link = info_field(c.text({"INFO", "replication"}), "master_link_status");
        if (link != "up") return "replica link " + (link.empty() ? std::string("not set up") : link);
      }
      // Every node's view (what status() and clients read) has heard of every replica by gossip.
      const std::string nodes = c.text({"CLUSTER", "NODES"});
      std::size_t replicas = 0;
      for (std::size_t at = nodes.find("slave"); at != std::string::npos; at = nodes.find("slave", at + 5)) ++replicas;
      const std::size_t want = ports.size() - static_cast<std::size_t>(o.masters);
      return replicas == want ? "" : "it sees " + std::to_string(replicas) + " of " + std::to_string(want) + " replicas";
    });
  }
}

// One line of CLUSTER NODES: "<id> <ip:port@bus> <flags> <master> <ping> <pong> <epoch> <link> <slot> ...".
void parse_node_line(const std::string& line, const std::string& host, std::vector<Node>& nodes) {
  std::istringstream in(line);
  std::string id, addr, flags, master, ping, pong, epoch, link;
  if (!(in >> id >> addr >> flags >> master >> ping >> pong >> epoch >> link)) return;
  const std::size_t colon = addr.rfind(':', addr.find('@'));
  if (colon == std::string::npos || addr.substr(0, colon) != host) return;
  const int port = std::atoi(addr.c_str() + colon + 1);
  for (Node& n : nodes) {
    if (n.port != port) continue;
    n.id = id;
    const bool failed = flags.find("fail") != std::string::npos && flags.find("fail?") == std::string::npos;
    n.role = failed ? "down" : flags.find("master") != std::string::npos ? "master" : "replica";
    n.master_id = master == "-" ? "" : master;
    for (std::string slot; in >> slot;) {
      if (slot.front() == '[') continue;  // a slot being migrated
      const std::size_t dash = slot.find('-');
      const int lo = std::atoi(slot.c_str());
      n.slots.emplace_back(lo, dash == std::string::npos ? lo : std::atoi(slot.c_str() + dash + 1));
    }
  }
}

}  // namespace

Status status(const std::string& dir) {
  const Manifest m = read_manifest(dir);
  Status s;
  s.dir = dir;
  s.host = m.host;
  for (int port : m.ports) {
    Node n;
    n.port = port;
    n.pid = read_pid(dir, port);
    n.role = "down";
    auto c = RedisConn::try_connect(m.host, port, kCommandTimeout);
    try {
      n.alive = c && c->text({"PING"}) == "PONG";
    } catch (const Error&) {
      n.alive = false;
    }
    if (!process_alive(n.pid)) n.pid = 0;
    s.nodes.push_back(n);
  }
  for (const Node& n : s.nodes) {
    if (!n.alive) continue;
    try {
      RedisConn c(m.host, n.port, kCommandTimeout);
      const std::string info = c.text({"CLUSTER", "INFO"});
      s.state = info_field(info, "cluster_state");
      s.slots_ok = std::atoi(info_field(info, "cluster_slots_ok").c_str());
      std::istringstream lines(c.text({"CLUSTER", "NODES"}));
      for (std::string line; std::getline(lines, line);) parse_node_line(line, m.host, s.nodes);
      break;
    } catch (const Error&) {
      continue;  // try the next node
    }
  }
  for (Node& n : s.nodes) {
    if (!n.alive) n.role = "down";
  }
  return s;
}

Status up(const UpOptions& o) {
  if (o.dir.empty()) throw Error("cluster up: --dir is required");
  if (o.masters < 1) throw Error("cluster up: --masters must be at least 1, got " + std::to_string(o.masters));
  if (o.replicas < 0) throw Error("cluster up: --replicas must be at least 0, got " + std::to_string(o.replicas));
  const int count = o.masters * (1 + o.replicas);
  if (o.port < 1 || o.port + count - 1 + 10000 > 65535) {
    throw Error("cluster up: ports " + std::to_string(o.port) + ".." + std::to_string(o.port + count - 1) +
                " and their bus ports (+10000) must lie in 1..65535");
  }
  fs::create_directories(o.dir);
  if (fs::exists(manifest_path(o.dir))) {
    for (const Node& n : status(o.dir).nodes) {
      if (n.alive || n.pid != 0) {
        throw Error("a cluster is already running in '" + o.dir + "' (node " + o.host + ":" + std::to_string(n.port) +
                    "); stop it with hashmem cluster down --dir " + o.dir);
      }
    }
  }
  std::vector<int> ports;
  for (int i = 0; i < count; ++i) ports.push_back(o.port + i);
  for (int port : ports) {
    for (int p : {port, port + 10000}) {
      if (!can_bind(o.host, p)) {
        throw Error("cannot start node " + o.host + ":" + std::to_string(port) + ": port " + std::to_string(p) +
                    (p == port ? "" : " (its cluster bus)") + " is in use");
      }
    }
  }
  write_manifest(o.dir, {o.host, o.masters, o.replicas, ports});
  const double deadline = now_seconds() + o.timeout_seconds;
  try {
    start_nodes(o, ports);
    form_cluster(o, ports, deadline);
  } catch (...) {
    down(o.dir, 5);  // no half-started cluster left behind
    throw;
  }
  return status(o.dir);
}

void down(const std::string& dir, double timeout_seconds) {
  // By pid, not by port: a node that never started (its port taken by someone else) must not stop that someone.
  // SIGTERM is redis-server's shutdown (nothing to save: no RDB, no AOF).
  const Manifest m = read_manifest(dir);
  std::vector<long> pids;
  for (int port : m.ports) {
    const long pid = read_pid(dir, port);
    if (process_alive(pid) && ::kill(static_cast<pid_t>(pid), SIGTERM) == 0) pids.push_back(pid);
  }
  const double deadline = now_seconds() + timeout_seconds;
  for (long pid : pids) {
    while (process_alive(pid) && now_seconds() < deadline) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (process_alive(pid)) ::kill(static_cast<pid_t>(pid), SIGKILL);
  }
  for (int port : m.ports) fs::remove(node_dir(dir, port) / "redis.pid");
}

int free_port_base(int count, int start, const std::string& host) {
  for (int base = std::max(start, 1); base + count - 1 + 10000 <= 65535; base += count) {
    bool free = true;
    for (int i = 0; i < count && free; ++i) free = can_bind(host, base + i) && can_bind(host, base + i + 10000);
    if (free) return base;
  }
  throw Error("no " + std::to_string(count) + " free ports (and bus ports) on " + host + " from " + std::to_string(start));
}

}  // namespace hashmem::cluster
