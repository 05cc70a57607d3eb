#include "cluster/client.hpp"

#include <algorithm>
#include <chrono>
#include <hiredis/hiredis.h>
#include <thread>

#include "hashmem/clock.hpp"
#include "hashmem/error.hpp"

namespace hashmem::cluster {
namespace {

// "MOVED 3999 127.0.0.1:6381" / "ASK 3999 127.0.0.1:6381" → slot and endpoint.
bool parse_redirect(const std::string& msg, std::size_t skip, int& slot, Endpoint& to) {
  const std::size_t sp = msg.find(' ', skip);
  const std::size_t colon = msg.rfind(':');
  if (sp == std::string::npos || colon == std::string::npos || colon < sp) return false;
  slot = std::atoi(msg.c_str() + skip);
  to.host = msg.substr(sp + 1, colon - sp - 1);
  to.port = std::atoi(msg.c_str() + colon + 1);
  return slot >= 0 && slot < 16384 && to.port > 0;
}

bool starts_with(const std::string& s, const char* p) { return s.rfind(p, 0) == 0; }

// "slots 0-5460, 10923 (127.0.0.1:7000, ...)": compact ranges for an error message.
std::string describe_slots(std::vector<int> slots) {
  std::sort(slots.begin(), slots.end());
  slots.erase(std::unique(slots.begin(), slots.end()), slots.end());
  std::string out;
  for (std::size_t i = 0; i < slots.size();) {
    std::size_t j = i;
    while (j + 1 < slots.size() && slots[j + 1] == slots[j] + 1) ++j;
    out += (out.empty() ? "" : ", ") + std::to_string(slots[i]) + (j > i ? "-" + std::to_string(slots[j]) : "");
    i = j + 1;
  }
  return out;
}

}  // namespace

ClusterClient::ClusterClient(ClientOptions options) : options_(std::move(options)) {
  if (options_.seeds.empty()) throw Error("cluster client: no seed node given");
  map_.master.fill(-1);
  refresh();
  if (map_.nodes.empty()) {
    std::string names;
    for (const Endpoint& e : options_.seeds) names += (names.empty() ? "" : ", ") + e.name();
    throw Error("cannot reach the Redis Cluster at " + names + " (no node answered CLUSTER SLOTS)");
  }
}

ClusterClient::~ClusterClient() = default;

void ClusterClient::refresh() {
  ++counters_.refreshes;
  std::vector<Endpoint> candidates = map_.nodes;
  candidates.insert(candidates.end(), options_.seeds.begin(), options_.seeds.end());
  for (const Endpoint& e : candidates) {
    auto c = RedisConn::try_connect(e.host, e.port, options_.timeout_seconds);
    if (!c) continue;
    SlotMap fresh;
    try {
      fresh = SlotMap::load(*c);
    } catch (const Error&) {
      continue;
    }
    // Keep the connections of nodes that are still there.
    std::vector<std::unique_ptr<RedisConn>> conns(fresh.nodes.size());
    for (std::size_t i = 0; i < fresh.nodes.size(); ++i) {
      for (std::size_t j = 0; j < map_.nodes.size() && j < conns_.size(); ++j) {
        if (map_.nodes[j] == fresh.nodes[i] && conns_[j]) conns[i] = std::move(conns_[j]);
      }
    }
    map_ = std::move(fresh);
    conns_ = std::move(conns);
    return;
  }
}

RedisConn* ClusterClient::conn(int node) {
  conns_.resize(map_.nodes.size());
  auto& c = conns_[static_cast<std::size_t>(node)];
  if (!c) {
    c = RedisConn::try_connect(map_.nodes[static_cast<std::size_t>(node)].host,
                               map_.nodes[static_cast<std::size_t>(node)].port, options_.timeout_seconds);
    if (c && options_.read_from_replicas) {
      try {
        c->text({"READONLY"});  // a replica serves reads of its master's slots (a master ignores it)
      } catch (const Error&) {
        c.reset();
      }
    }
  }
  return c.get();
}

int ClusterClient::read_node(int master) {
  const std::vector<int>& replicas = map_.replicas[static_cast<std::size_t>(master)];
  if (replicas.empty()) return master;
  const std::size_t k = next_read_++ % (replicas.size() + 1);
  return k == 0 ? master : replicas[k - 1];
}

void ClusterClient::drop(int node) { conns_[static_cast<std::size_t>(node)].reset(); }

std::vector<Reply> ClusterClient::run(const std::vector<Command>& commands, double retry_seconds) {
  if (retry_seconds < 0) retry_seconds = options_.retry_seconds;
  const std::size_t n = commands.size();
  std::vector<Reply> out(n);
  std::vector<int> slot(n), ask(n, -1);
  std::vector<std::size_t> todo(n);
  for (std::size_t i = 0; i < n; ++i) {
    const Command& c = commands[i];
    if (c.key_index < 0 || static_cast<std::size_t>(c.key_index) >= c.args.size()) throw Error("cluster client: a command has no key");
    slot[i] = key_slot(c.args[static_cast<std::size_t>(c.key_index)]);
    todo[i] = i;
  }
  counters_.commands += n;
  const double deadline = now_seconds() + retry_seconds;
  std::string last_error;
  while (!todo.empty()) {
    std::vector<std::vector<std::size_t>> per_node(map_.nodes.size());
    std::vector<std::size_t> again;
    for (std::size_t i : todo) {
      int node = ask[i] >= 0 ? ask[i] : map_.master[static_cast<std::size_t>(slot[i])];
      if (node >= 0 && ask[i] < 0 && commands[i].read_only && options_.read_from_replicas) node = read_node(node);
      if (node < 0) {
        again.push_back(i);
      } else {
        per_node[static_cast<std::size_t>(node)].push_back(i);
      }
    }
    bool trouble = !again.empty();
    if (trouble) last_error = "no node serves the slot";
    // Send to every node first, then read: the nodes work in parallel.
    std::vector<RedisConn*> used(per_node.size(), nullptr);
    for (std::size_t node = 0; node < per_node.size(); ++node) {
      if (per_node[node].empty()) continue;
      RedisConn* c = conn(static_cast<int>(node));
      if (c != nullptr) {
        for (std::size_t i : per_node[node]) {
          if (ask[i] >= 0) c->append({"ASKING"});
          const auto& a = commands[i].args;
          std::string_view views[8];
          if (a.size() > std::size(views)) {
            c->append(std::vector<std::string_view>(a.begin(), a.end()));
          } else {
            std::copy(a.begin(), a.end(), views);
            c->append(views, a.size());
          }
        }
        if (!c->flush()) c = nullptr;
      }
      if (c == nullptr) {
        last_error = "cannot reach " + map_.nodes[node].name();
        drop(static_cast<int>(node));
        again.insert(again.end(), per_node[node].begin(), per_node[node].end());
        trouble = true;
        continue;
      }
      used[node] = c;
    }
    ++counters_.round_trips;
    for (std::size_t node = 0; node < per_node.size(); ++node) {
      RedisConn* c = used[node];
      if (c == nullptr) continue;
      for (std::size_t k = 0; k < per_node[node].size(); ++k) {
        const std::size_t i = per_node[node][k];
        Reply r;
        const bool io_ok = ask[i] < 0 || c->get_reply() != nullptr;  // after ASKING, its +OK comes first
        if (io_ok) r = c->get_reply();
        if (!r) {
          last_error = map_.nodes[node].name() + ": " + c->error();
          drop(static_cast<int>(node));
          again.insert(again.end(), per_node[node].begin() + static_cast<std::ptrdiff_t>(k), per_node[node].end());
          trouble = true;
          break;
        }
        ask[i] = -1;
        if (r->type == REDIS_REPLY_ERROR) {
          const std::string msg(r->str, r->len);
          int s = 0;
          Endpoint to;
          if (starts_with(msg, "MOVED ") && parse_redirect(msg, 6, s, to)) {
            map_.master[static_cast<std::size_t>(s)] = map_.node_index(to);
            ++counters_.moved;
            again.push_back(i);
            continue;
          }
          if (starts_with(msg, "ASK ") && parse_redirect(msg, 4, s, to)) {
            ask[i] = map_.node_index(to);
            ++counters_.ask;
            again.push_back(i);
            continue;
          }
          if (starts_with(msg, "TRYAGAIN") || starts_with(msg, "CLUSTERDOWN") || starts_with(msg, "LOADING")) {
            last_error = map_.nodes[node].name() + ": " + msg;
            again.push_back(i);
            trouble = true;
            continue;
          }
        }
        out[i] = std::move(r);
      }
    }
    todo = std::move(again);
    if (todo.empty()) break;
    if (now_seconds() > deadline) {
      std::vector<int> slots;
      for (std::size_t i : todo) slots.push_back(slot[i]);
      throw Error("Redis Cluster slots " + describe_slots(slots) + " unreachable after " +
                  std::to_string(static_cast<int>(retry_seconds)) + " s of retries (last: " + last_error + ")");
    }
    if (trouble) {
      ++counters_.retries;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
      refresh();
    }
  }
  return out;
}

}  // namespace hashmem::cluster
