#include "common/fault_injection.hpp"

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

namespace hashmem::fault {
namespace {

struct Active {
  std::uint64_t id;
  Rule rule;
  std::uint64_t seen = 0, hits = 0;
};

std::mutex g_mu;
std::vector<Active> g_rules;  // guarded by g_mu
std::atomic<int> g_count{0};  // rules in g_rules: the fast path reads only this
std::uint64_t g_next_id = 1;  // guarded by g_mu

}  // namespace

Injection::Injection(Rule rule) {
  std::lock_guard<std::mutex> lock(g_mu);
  id_ = g_next_id++;
  g_rules.push_back({id_, std::move(rule)});
  g_count.store(static_cast<int>(g_rules.size()), std::memory_order_relaxed);
}

Injection::~Injection() {
  std::lock_guard<std::mutex> lock(g_mu);
  for (auto it = g_rules.begin(); it != g_rules.end(); ++it) {
    if (it->id == id_) {
      g_rules.erase(it);
      break;
    }
  }
  g_count.store(static_cast<int>(g_rules.size()), std::memory_order_relaxed);
}

std::uint64_t Injection::hits() const {
  std::lock_guard<std::mutex> lock(g_mu);
  for (const Active& a : g_rules) {
    if (a.id == id_) return a.hits;
  }
  return 0;
}

Outcome check(Op op, const std::string& path) {
  if (g_count.load(std::memory_order_relaxed) == 0) return {};
  Outcome outcome;
  double delay = 0;
  {
    std::lock_guard<std::mutex> lock(g_mu);
    for (Active& a : g_rules) {
      const Rule& r = a.rule;
      if (r.op != op || path.find(r.path_contains) == std::string::npos) continue;
      const std::uint64_t n = a.seen++;
      if (n < r.skip || n - r.skip >= r.times) continue;
      ++a.hits;
      outcome.error = r.error;
      outcome.max_bytes = r.error ? -1 : r.short_bytes;
      delay = r.delay_seconds;
      break;
    }
  }
  if (delay > 0) std::this_thread::sleep_for(std::chrono::duration<double>(delay));
  return outcome;
}

}  // namespace hashmem::fault
