// HashHop oracle: a hashed memory over the prompt. Each line "A = B" / "A = 'B'" is an edge A → B, indexed by
// a FlatIndex on A; a query follows `hops` edges, unquoted except the last.
//
// Queries are answered 16 at a time, hop by hop, so the three dependent cache misses of a lookup (index slot,
// edge, key text) of 16 independent queries overlap. A query whose path meets a hash with more than one
// outgoing edge (duplicate hashes, short hash lengths) or the wrong quoting falls back to a depth-first search
// that finds every path of the right shape: more than one is "ambiguous" (answered with the first found).
#include <algorithm>
#include <cstring>

#include "common/flat_index.hpp"
#include "hashhop/json_text.hpp"
#include "hashmem/clock.hpp"
#include "hashmem/hashhop.hpp"
#include "hashmem/output_file.hpp"
#include "hashmem/progress.hpp"

namespace hashmem::hashhop {
namespace {

constexpr std::uint32_t kNone = FlatIndex::kNone;

class PromptMemory {
 public:
  struct Edge {
    std::uint64_t key_offset;
    std::uint32_t key_size, value_size;
    std::uint32_t next_same_key;  // another edge leaving the same hash, or kNone
    bool quoted;
  };

  explicit PromptMemory(std::string_view prompt) : prompt_(prompt) {
    parse_lines();
    index_ = FlatIndex(edges_.size());
    constexpr std::size_t kAhead = 16;
    const std::size_t n = edges_.size();
    for (std::size_t i = 0; i < std::min(n, kAhead); ++i) index_.prefetch(text_fingerprint(key(i)));
    for (std::size_t i = 0; i < n; ++i) {
      if (i + kAhead < n) index_.prefetch(text_fingerprint(key(i + kAhead)));
      const std::string_view k = key(i);
      const std::uint32_t e = static_cast<std::uint32_t>(i);
      const std::uint32_t head =
          index_.find_or_insert(text_fingerprint(k), e, [&](std::uint32_t other) { return key(other) == k; });
      if (head != kNone) {  // a second edge from the same hash: chain it after the first
        edges_[e].next_same_key = edges_[head].next_same_key;
        edges_[head].next_same_key = e;
      }
    }
  }

  std::size_t lines() const { return edges_.size(); }
  const Edge& edge(std::uint32_t e) const { return edges_[e]; }
  std::string_view key(std::size_t e) const { return prompt_.substr(edges_[e].key_offset, edges_[e].key_size); }
  std::string_view value(std::size_t e) const {
    const Edge& x = edges_[e];
    return prompt_.substr(x.key_offset + x.key_size + 3 + x.quoted, x.value_size);
  }
  const FlatIndex& index() const { return index_; }
  const char* key_text(std::uint32_t e) const { return prompt_.data() + edges_[e].key_offset; }

  std::uint32_t first_edge(std::string_view k) const {
    return index_.find(text_fingerprint(k), [&](std::uint32_t e) { return key(e) == k; });
  }

 private:
  void parse_lines() {
    edges_.reserve(static_cast<std::size_t>(std::count(prompt_.begin(), prompt_.end(), '\n')) + 1);
    std::size_t pos = 0;
    while (pos <= prompt_.size()) {
      std::size_t end = prompt_.find('\n', pos);
      if (end == std::string_view::npos) end = prompt_.size();
      const std::string_view line = prompt_.substr(pos, end - pos);
      const std::size_t eq = line.find(" = ");
      if (eq != std::string_view::npos) {  // the original's prompt has nothing else, but be lenient
        std::string_view v = line.substr(eq + 3);
        const bool quoted = v.size() >= 2 && v.front() == '\'' && v.back() == '\'';
        edges_.push_back(Edge{pos, static_cast<std::uint32_t>(eq),
                              static_cast<std::uint32_t>(v.size() - (quoted ? 2 : 0)), kNone, quoted});
      }
      pos = end + 1;
    }
  }

  std::string_view prompt_;
  HugeVector<Edge> edges_;
  FlatIndex index_;
};

enum class Outcome { kUnique, kAmbiguous, kNone };

// Depth-first search for paths of exactly `hops` edges from `query`, unquoted except the last. Stops at the
// second complete path (ambiguity is all we need to know) or after `work_limit` steps, so one-letter-hash datasets
// with huge fan-out stay fast. `path` receives the edges of the first path found; `work` counts the steps taken.
Outcome search(const PromptMemory& memory, std::string_view query, std::int64_t hops, std::int64_t work_limit,
               std::vector<std::uint32_t>& path, std::vector<std::uint32_t>& stack, std::int64_t& work) {
  work = 0;
  stack.clear();
  path.clear();
  int found = 0;
  std::uint32_t e = memory.first_edge(query);
  for (;;) {
    if (e == kNone) {
      if (stack.empty()) break;
      e = memory.edge(stack.back()).next_same_key;  // backtrack to the next sibling one level up
      stack.pop_back();
      continue;
    }
    if (++work > work_limit) return found ? Outcome::kAmbiguous : Outcome::kNone;
    const auto& edge = memory.edge(e);
    const std::int64_t depth = static_cast<std::int64_t>(stack.size()) + 1;
    if (edge.quoted != (depth == hops)) {
      e = edge.next_same_key;
      continue;
    }
    if (depth == hops) {
      if (++found > 1) return Outcome::kAmbiguous;
      path = stack;
      path.push_back(e);
      e = edge.next_same_key;
      continue;
    }
    stack.push_back(e);
    e = memory.first_edge(memory.value(e));
  }
  return found ? Outcome::kUnique : Outcome::kNone;
}

// Answers queries [first, first+count) of `targets`: outcomes[q], and for an answered query the `hops` hashes after
// it (views into the prompt) in hashes[starts[q], starts[q + 1]); an unanswered query has none. Memory and time
// follow the paths found rather than count · hops (hops may be 10^6: a buffer of count · hops views for queries
// that mostly had no answer took gigabytes, found on the fuzz_hashhop_dataset target).
class BatchSolver {
 public:
  static constexpr std::size_t kBatch = 16;
  static constexpr std::int64_t kMaxPipelinedHops = 64;
  // Steps of the depth-first search for one query. The caller's `budget` bounds the steps of all queries.
  static constexpr std::int64_t kQueryWork = 1 << 20;

  BatchSolver(const PromptMemory& memory, std::int64_t hops, std::int64_t& budget)
      : memory_(memory), hops_(hops), budget_(budget) {}

  void solve(const TargetList& targets, std::size_t first, std::size_t count, std::vector<std::string_view>& hashes,
             std::vector<std::size_t>& starts, std::vector<Outcome>& outcomes) {
    const std::size_t h = static_cast<std::size_t>(hops_);
    outcomes.assign(count, Outcome::kUnique);
    std::vector<char> slow(count, 1);
    if (hops_ <= kMaxPipelinedHops) {
      fast_.assign(count * h, std::string_view());
      std::string_view current[kBatch];
      std::uint64_t fp[kBatch];
      std::uint32_t candidate[kBatch];
      bool active[kBatch];
      for (std::size_t b = 0; b < count; b += kBatch) {
        const std::size_t n = std::min(kBatch, count - b);
        for (std::size_t i = 0; i < n; ++i) {
          current[i] = targets.key(first + b + i);
          active[i] = true;
          slow[b + i] = 0;
        }
        for (std::size_t d = 0; d < h; ++d) {
          for (std::size_t i = 0; i < n; ++i) {
            if (!active[i]) continue;
            fp[i] = text_fingerprint(current[i]);
            memory_.index().prefetch(fp[i]);
          }
          for (std::size_t i = 0; i < n; ++i) {
            if (!active[i]) continue;
            candidate[i] = memory_.index().peek(fp[i]);
            if (candidate[i] != kNone) __builtin_prefetch(&memory_.edge(candidate[i]));
          }
          for (std::size_t i = 0; i < n; ++i) {
            if (active[i] && candidate[i] != kNone) __builtin_prefetch(memory_.key_text(candidate[i]));
          }
          for (std::size_t i = 0; i < n; ++i) {
            if (!active[i]) continue;
            const std::string_view k = current[i];
            const std::uint32_t e =
                memory_.index().find(fp[i], [&](std::uint32_t x) { return memory_.key(x) == k; });
            const bool last = d + 1 == h;
            if (e == kNone || memory_.edge(e).next_same_key != kNone || memory_.edge(e).quoted != last) {
              active[i] = false;
              slow[b + i] = 1;
              continue;
            }
            current[i] = memory_.value(e);
            fast_[(b + i) * h + d] = current[i];
          }
        }
      }
    }
    hashes.clear();
    starts.assign(count + 1, 0);
    for (std::size_t q = 0; q < count; ++q) {
      if (!slow[q]) {
        hashes.insert(hashes.end(), fast_.begin() + static_cast<std::ptrdiff_t>(q * h),
                      fast_.begin() + static_cast<std::ptrdiff_t>((q + 1) * h));
      } else {
        std::int64_t work = 0;
        outcomes[q] = budget_ > 0 ? search(memory_, targets.key(first + q), hops_, std::min(kQueryWork, budget_),
                                           path_, stack_, work)
                                  : Outcome::kNone;
        budget_ -= work;
        if (outcomes[q] != Outcome::kNone) {
          for (std::uint32_t e : path_) hashes.push_back(memory_.value(e));
        }
      }
      starts[q + 1] = hashes.size();
    }
  }

 private:
  const PromptMemory& memory_;
  std::int64_t hops_;
  std::int64_t& budget_;  // search steps left (shared by the samples of a dataset)
  std::vector<std::string_view> fast_;  // the pipelined walk's hashes, hops per query
  std::vector<std::uint32_t> path_, stack_;
};

}  // namespace

SolveStats solve(const std::string& dataset_path, OutputFile& out, bool all_targets, Progress* progress) {
  SolveStats stats;
  std::vector<std::string_view> hashes;
  std::vector<std::size_t> starts;
  std::vector<Outcome> outcomes;
  std::string answer, head;
  // Depth-first search steps left for the whole dataset: 2^20, plus 16 per byte of prompt and query read. A
  // generated dataset needs far fewer (only queries through duplicate hashes search, and each hop of a chain is
  // several bytes of prompt); a hostile one (hops 10^6 through a self-loop "a = a", every query a full 2^20-step
  // search) took seconds per query. Its time is now linear in its size: queries left when the budget is spent are
  // unanswered. Found on the fuzz_hashhop_dataset target (docs/fuzzing.md).
  std::int64_t search_budget = BatchSolver::kQueryWork;
  double mark = now_seconds();
  for_each_sample(dataset_path, true, [&](std::int64_t index, DatasetSample& sample) {
    if (progress) progress->set_label("hashhop solve: sample " + std::to_string(index));
    const double t0 = now_seconds();
    stats.read_seconds += t0 - mark;
    PromptMemory memory(sample.prompt);
    const double t1 = now_seconds();
    stats.build_seconds += t1 - t0;
    stats.lines += static_cast<std::int64_t>(memory.lines());
    const std::size_t count =
        all_targets ? sample.targets.size()
                    : std::min(sample.targets.size(), static_cast<std::size_t>(sample.params.num_queries));
    std::size_t read_bytes = sample.prompt.size();
    for (std::size_t q = 0; q < count; ++q) read_bytes += sample.targets.key(q).size();
    search_budget += 16 * static_cast<std::int64_t>(read_bytes);
    // Only the queries (target keys) are read from the dataset; the expected answers are never looked at.
    BatchSolver solver(memory, sample.params.hops, search_budget);
    solver.solve(sample.targets, 0, count, hashes, starts, outcomes);
    const double t2 = now_seconds();
    stats.query_seconds += t2 - t1;
    stats.queries += static_cast<std::int64_t>(count);
    head = "{\"sample\":" + std::to_string(index) + ",\"query\":";
    for (std::size_t q = 0; q < count; ++q) {
      constexpr std::size_t kAhead = 16;  // the answers' text is scattered over the prompt
      if (q + kAhead < count && starts[q + kAhead + 1] > starts[q + kAhead]) {
        __builtin_prefetch(hashes[starts[q + kAhead + 1] - 1].data());
      }
      stats.ambiguous += outcomes[q] == Outcome::kAmbiguous;
      stats.unanswered += outcomes[q] == Outcome::kNone;
      answer.clear();
      if (outcomes[q] != Outcome::kNone) {
        if (sample.params.cot) {
          for (std::size_t d = starts[q]; d < starts[q + 1]; ++d) {
            if (d > starts[q]) answer.append(" = ");
            answer.append(hashes[d]);
          }
        } else {
          answer.assign(hashes[starts[q + 1] - 1]);
        }
      }
      out.write(head);
      append_json_string(out, sample.targets.key(q));
      out.write(std::string_view(",\"answer\":"));
      append_json_string(out, answer);
      out.write(std::string_view("}\n"));
    }
    stats.samples += 1;
    mark = now_seconds();
    stats.write_seconds += mark - t2;
  });
  return stats;
}

}  // namespace hashmem::hashhop
