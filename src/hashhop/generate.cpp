// HashHop generation, byte-exact with magicproduct/hash-hop for the same seed (../shared/SPEC.md §1).
//
// Cost model at 300 M characters (L = 16, hops = 2): ~250 M MT19937 draws for the letters, ~13 M hash-map
// probes for the dict semantics, an 8.6 M-element Fisher–Yates shuffle, then one pass writing ~0.5 GB.
// Everything is stored as 32-bit hash numbers into one letter arena, so memory stays below the output size.
#include <algorithm>
#include <array>
#include <cstdio>
#include <cstring>
#include <unistd.h>

#include "common/flat_index.hpp"
#include "common/mt19937.hpp"
#include "hashhop/json_text.hpp"
#include "hashhop/problem.hpp"
#include "hashmem/error.hpp"
#include "hashmem/output_file.hpp"
#include "hashmem/progress.hpp"

namespace hashmem::hashhop {
namespace {

constexpr char kAlphabet[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
constexpr std::uint32_t kNone = FlatIndex::kNone;

// Letter for x = mt() & 63; x >= 52 is rejected by the caller, the table just keeps the store branch-free.
constexpr auto kLetterTable = [] {
  std::array<char, 64> t{};
  for (int i = 0; i < 64; ++i) t[i] = i < 52 ? kAlphabet[i] : '?';
  return t;
}();

// numpy legacy np.random.choice(52, n): per letter draw x = mt() & 63 until x <= 51 (masked rejection).
// The hashes of a sample are consecutive runs of one letter stream, so a level's letters are drawn at once.
void draw_letters(Mt19937& mt, char* out, std::size_t n) {
  std::size_t produced = 0;
  while (produced < n) {
    mt.refill_if_empty();
    const std::uint32_t* block = mt.block();
    const int available = mt.available();
    if (n - produced >= static_cast<std::size_t>(available)) {
      // Cannot overrun: at most `available` letters are accepted. Branch-free compaction.
      for (int i = 0; i < available; ++i) {
        std::uint32_t x = block[i] & 63u;
        out[produced] = kLetterTable[x];
        produced += x < 52u;
      }
      mt.consume(available);
    } else {
      // Fewer letters wanted than values left, but rejections may still exhaust the block.
      int i = 0;
      while (produced < n && i < available) {
        std::uint32_t x = block[i++] & 63u;
        if (x < 52u) out[produced++] = kLetterTable[x];
      }
      mt.consume(i);
    }
  }
}

// CPython random._randbelow_with_getrandbits(n) for 2 <= n < 2^32.
inline std::uint32_t randbelow(Mt19937& mt, std::uint32_t n) {
  const int k = 32 - __builtin_clz(n);
  const int shift = 32 - k;
  for (;;) {
    std::uint32_t r = mt.next() >> shift;
    if (r < n) return r;
  }
}

// Python dict semantics (a repeated key keeps its first position; its value is overwritten) through a
// FlatIndex from a hash's text to its entry. Hashes of up to 8 letters are their own exact 64-bit
// fingerprint; longer ones use xxh3 and compare the letters on a fingerprint match.
class EntryIndex {
 public:
  EntryIndex(const Problem& p, std::uint64_t expected) : problem_(p), index_(expected) {}

  std::uint64_t fingerprint(std::uint32_t h) const {
    const char* s = problem_.hash(h);
    if (problem_.hash_length <= 8) {
      std::uint64_t v = 0;
      std::memcpy(&v, s, static_cast<std::size_t>(problem_.hash_length));
      return v;
    }
    return text_fingerprint(std::string_view(s, static_cast<std::size_t>(problem_.hash_length)));
  }
  void prefetch(std::uint64_t fp) const { index_.prefetch(fp); }

  // Returns the entry already keyed by hash `h` (fingerprint fp), or records `new_entry` for it and
  // returns kNone.
  std::uint32_t find_or_insert(std::uint64_t fp, std::uint32_t h, std::uint32_t new_entry) {
    return index_.find_or_insert(fp, new_entry, [&](std::uint32_t entry) {
      return problem_.hash_length <= 8 || std::memcmp(problem_.hash(problem_.keys[entry]), problem_.hash(h),
                                                      static_cast<std::size_t>(problem_.hash_length)) == 0;
    });
  }

 private:
  const Problem& problem_;
  FlatIndex index_;
};

// Inserts keys in order with a prefetch distance, calling on_new(i, entry) / on_existing(i, entry).
// New entries are numbered consecutively from first_new_entry; returns one past the last new entry.
template <class KeyOf, class OnNew, class OnExisting>
std::uint32_t insert_in_order(EntryIndex& index, std::uint64_t count, std::uint32_t first_new_entry, KeyOf key_of,
                     OnNew on_new, OnExisting on_existing) {
  constexpr std::uint64_t kAhead = 16;
  std::vector<std::uint64_t> fps(std::min<std::uint64_t>(count, kAhead));
  for (std::uint64_t i = 0; i < fps.size(); ++i) {
    fps[i] = index.fingerprint(key_of(i));
    index.prefetch(fps[i]);
  }
  std::uint32_t next_entry = first_new_entry;
  for (std::uint64_t i = 0; i < count; ++i) {
    std::uint64_t fp = fps[i % kAhead];
    if (i + kAhead < count) {
      std::uint64_t ahead = index.fingerprint(key_of(i + kAhead));
      index.prefetch(ahead);
      fps[i % kAhead] = ahead;
    }
    std::uint32_t h = key_of(i);
    std::uint32_t found = index.find_or_insert(fp, h, next_entry);
    if (found == kNone) {
      on_new(i, next_entry++);
    } else {
      on_existing(i, found);
    }
  }
  return next_entry;
}

std::uint64_t physical_memory_bytes() {
  long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<std::uint64_t>(pages) * static_cast<std::uint64_t>(page) : 0;
}

std::string gib(double bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f GiB", bytes / (1024.0 * 1024 * 1024));
  return buf;
}

}  // namespace

std::int64_t num_chains(const Params& p) {
  const __int128 per_chain = (2 * static_cast<__int128>(p.hash_length) + 3) * p.hops;
  return static_cast<std::int64_t>((static_cast<__int128>(p.n_chars) + per_chain - 1) / per_chain);
}

void validate(const Params& p) {
  if (p.seed > 0xffffffffull) {
    throw Error("seed must be in [0, 4294967295] (numpy's legacy seeding takes 32 bits), got " +
                std::to_string(p.seed));
  }
  if (p.n_chars <= 0) throw Error("chars must be > 0, got " + std::to_string(p.n_chars));
  if (p.hops < 1) throw Error("hops must be >= 1 (edges per chain), got " + std::to_string(p.hops));
  if (p.hash_length < 1) throw Error("hash length must be >= 1, got " + std::to_string(p.hash_length));
  if (p.num_queries < 0) throw Error("queries must be >= 0, got " + std::to_string(p.num_queries));
  if (p.n_chars > (std::int64_t{1} << 53)) throw Error("chars must be <= 2^53, got " + std::to_string(p.n_chars));
  if (p.hops > 1000000) throw Error("hops must be <= 1000000, got " + std::to_string(p.hops));
  if (p.hash_length > 1000000) throw Error("hash length must be <= 1000000, got " + std::to_string(p.hash_length));
  const std::int64_t chains = num_chains(p);
  if (p.num_queries > chains) {
    throw Error("queries (" + std::to_string(p.num_queries) + ") exceed the number of chains (" +
                std::to_string(chains) + ") that chars=" + std::to_string(p.n_chars) +
                ", hops=" + std::to_string(p.hops) + ", hash length=" + std::to_string(p.hash_length) + " give");
  }
  const double hashes = static_cast<double>(chains) * static_cast<double>(p.hops + 1);
  if (hashes >= 4294967295.0) {
    throw Error("problem too large: " + std::to_string(chains) + " chains of " + std::to_string(p.hops) +
                " hops need more than 2^32 hashes");
  }
}

Problem build_problem(const Params& params, Progress* progress) {
  validate(params);
  const double hashes = static_cast<double>(num_chains(params)) * static_cast<double>(params.hops + 1);
  const double bytes = hashes * static_cast<double>(params.hash_length) + hashes * 16.0;
  const double ram = static_cast<double>(physical_memory_bytes());
  if (ram > 0 && bytes > 0.8 * ram) {
    throw Error("problem too large: generation needs about " + gib(bytes) + " of memory, this machine has " +
                gib(ram));
  }
  Problem p;
  p.params = params;
  p.hash_length = static_cast<int>(params.hash_length);
  p.chains = num_chains(params);
  const std::uint64_t n = static_cast<std::uint64_t>(p.chains);
  const std::uint64_t L = static_cast<std::uint64_t>(params.hash_length);
  const std::uint64_t hops = static_cast<std::uint64_t>(params.hops);

  // Upper bounds: each later level has at most as many entries as the one before.
  const std::uint64_t max_hashes = n * (hops + 1);
  const std::uint64_t max_entries = n * hops;
  p.letters.resize(max_hashes * L);
  p.keys.resize(max_entries);
  p.values.resize(max_entries);
  p.link.resize(max_entries);
  std::uint32_t* keys = p.keys.data();
  std::uint32_t* values = p.values.data();
  std::uint32_t* link = p.link.data();

  Mt19937 numpy_mt(static_cast<std::uint32_t>(params.seed));
  if (progress) progress->set_label("hashhop: drawing hashes");

  // Level 0: n (key, value) pairs drawn key then value into a dict.
  draw_letters(numpy_mt, p.letters.data(), 2 * n * L);
  std::uint32_t next_hash = static_cast<std::uint32_t>(2 * n);
  p.level_begin = {0};
  {
    EntryIndex index(p, n);
    std::uint32_t end = insert_in_order(
        index, n, 0, [](std::uint64_t i) { return static_cast<std::uint32_t>(2 * i); },
        [&](std::uint64_t i, std::uint32_t e) {
          keys[e] = static_cast<std::uint32_t>(2 * i);
          values[e] = static_cast<std::uint32_t>(2 * i + 1);
        },
        [&](std::uint64_t i, std::uint32_t e) { values[e] = static_cast<std::uint32_t>(2 * i + 1); });
    p.level_begin.push_back(end);
  }
  if (progress) progress->update(1);

  // Level l+1 = {v: new_hash for v in level_l.values()}: one new hash per level-l entry, in order.
  for (std::uint64_t level = 1; level < hops; ++level) {
    const std::uint32_t begin = static_cast<std::uint32_t>(p.level_begin[level - 1]);
    const std::uint32_t end = static_cast<std::uint32_t>(p.level_begin[level]);
    const std::uint32_t count = end - begin;
    const std::uint32_t first_hash = next_hash;
    draw_letters(numpy_mt, p.letters.data() + static_cast<std::size_t>(first_hash) * L,
                 static_cast<std::size_t>(count) * L);
    next_hash += count;
    EntryIndex index(p, count);
    std::uint32_t new_end = insert_in_order(
        index, count, end, [&](std::uint64_t i) { return values[begin + i]; },
        [&](std::uint64_t i, std::uint32_t e) {
          keys[e] = values[begin + i];
          values[e] = first_hash + static_cast<std::uint32_t>(i);
          link[begin + i] = e;
        },
        [&](std::uint64_t i, std::uint32_t e) {
          values[e] = first_hash + static_cast<std::uint32_t>(i);
          link[begin + i] = e;
        });
    p.level_begin.push_back(new_end);
    if (progress) progress->update(level + 1);
  }

  // random.shuffle(lines), then random.shuffle(list(targets.items())) whose result is discarded.
  if (progress) progress->set_label("hashhop: shuffling");
  Mt19937 python_mt;
  const std::uint32_t seed_key = static_cast<std::uint32_t>(params.seed);
  python_mt.seed_by_array(&seed_key, 1);
  const std::uint64_t lines = p.num_entries();
  p.order.resize(lines);
  std::uint32_t* order = p.order.data();
  for (std::uint64_t i = 0; i < lines; ++i) order[i] = static_cast<std::uint32_t>(i);
  for (std::uint64_t i = lines - 1; i > 0; --i) {
    std::uint32_t j = randbelow(python_mt, static_cast<std::uint32_t>(i + 1));
    std::swap(order[i], order[j]);
  }
  for (std::uint64_t i = p.num_targets() - 1; i > 0; --i) randbelow(python_mt, static_cast<std::uint32_t>(i + 1));
  return p;
}

namespace {

// Writes the prompt lines in shuffled order, separated by `separator`.
template <class Sink>
void write_prompt(const Problem& p, Sink& out, std::string_view separator, Progress* progress) {
  const std::uint64_t lines = p.num_entries();
  const std::uint64_t quoted_from = p.last_level_begin();
  const std::size_t L = static_cast<std::size_t>(p.hash_length);
  const std::uint32_t* order = p.order.data();
  const std::uint32_t* keys = p.keys.data();
  const std::uint32_t* values = p.values.data();
  std::string line;
  line.reserve(2 * L + 8 + separator.size());
  constexpr std::uint64_t kAhead = 8;
  for (std::uint64_t i = 0; i < lines; ++i) {
    // Lines are visited in random order: prefetch the entry two steps ahead and its letters one step ahead.
    if (i + 2 * kAhead < lines) {
      const std::uint32_t e = order[i + 2 * kAhead];
      __builtin_prefetch(keys + e);
      __builtin_prefetch(values + e);
    }
    if (i + kAhead < lines) {
      const std::uint32_t e = order[i + kAhead];
      __builtin_prefetch(p.hash(keys[e]));
      __builtin_prefetch(p.hash(values[e]));
    }
    const std::uint32_t e = order[i];
    const bool quoted = e >= quoted_from;
    line.clear();
    if (i) line.append(separator);
    line.append(p.hash(keys[e]), L);
    line.append(quoted ? " = '" : " = ");
    line.append(p.hash(values[e]), L);
    if (quoted) line.push_back('\'');
    out.write(line.data(), line.size());
    if (progress && (i & 0xffff) == 0) progress->update(i);
  }
}

// Calls fn(key, value) for every target in dict order. `value` is the last hash, or with CoT the chain.
template <class Fn>
void for_each_target(const Problem& p, std::uint64_t limit, Fn fn) {
  const std::size_t L = static_cast<std::size_t>(p.hash_length);
  std::string value;
  const std::uint64_t count = std::min<std::uint64_t>(limit, p.num_targets());
  for (std::uint64_t t = 0; t < count; ++t) {
    std::uint32_t e = static_cast<std::uint32_t>(t);
    value.assign(p.hash(p.values[e]), L);
    for (std::int64_t l = 1; l < p.params.hops; ++l) {
      e = p.link[e];
      if (p.params.cot) {
        value.append(" = ");
        value.append(p.hash(p.values[e]), L);
      } else {
        value.assign(p.hash(p.values[e]), L);
      }
    }
    fn(std::string_view(p.hash(p.keys[t]), L), std::string_view(value));
  }
}

std::string completion_text(const Problem& p) {
  std::string text = "COMPLETION:\nHops=" + std::to_string(p.params.hops) +
                     "\n\nCoT=" + (p.params.cot ? "True" : "False") + "\n\n";
  bool first = true;
  for_each_target(p, static_cast<std::uint64_t>(p.params.num_queries),
                  [&](std::string_view key, std::string_view value) {
                    if (!first) text.push_back('\n');
                    first = false;
                    text.append(key).append(" = '").append(value).push_back('\'');
                  });
  text.push_back('\n');
  return text;
}

struct StringSink {
  std::string& text;
  void write(const char* data, std::size_t size) { text.append(data, size); }
};

}  // namespace

Sample generate(const Params& params) {
  Problem p = build_problem(params, nullptr);
  Sample sample;
  sample.prompt.reserve(p.num_entries() * (2 * static_cast<std::size_t>(p.hash_length) + 7));
  StringSink sink{sample.prompt};
  write_prompt(p, sink, "\n", nullptr);
  sample.completion = completion_text(p);
  sample.targets.reserve(p.num_targets());
  for_each_target(p, p.num_targets(), [&](std::string_view key, std::string_view value) {
    sample.targets.emplace_back(std::string(key), std::string(value));
  });
  return sample;
}

GenerateStats write_sample_json(const Params& params, OutputFile& out, Progress* progress) {
  const std::uint64_t start_bytes = out.bytes_written();
  Problem p = build_problem(params, progress);
  GenerateStats stats;
  stats.chains = p.chains;
  stats.distinct_chains = static_cast<std::int64_t>(p.num_targets());
  stats.lines = static_cast<std::int64_t>(p.num_entries());

  out.write(std::string_view("{\"params\":"));
  out.write(params_json(params));
  out.write(std::string_view(",\"prompt\":\""));
  if (progress) progress->set_label("hashhop: writing prompt");
  const std::uint64_t prompt_start = out.bytes_written();
  write_prompt(p, out, "\\n", progress);
  // Every separator is 2 bytes in JSON ("\n" escaped) but one character of prompt text.
  stats.prompt_chars = static_cast<std::int64_t>(out.bytes_written() - prompt_start) -
                       (stats.lines > 0 ? stats.lines - 1 : 0);
  out.write(std::string_view("\",\"completion\":"));
  append_json_string(out, completion_text(p));
  out.write(std::string_view(",\"targets\":{"));
  if (progress) progress->set_label("hashhop: writing targets");
  bool first = true;
  for_each_target(p, p.num_targets(), [&](std::string_view key, std::string_view value) {
    if (!first) out.write(std::string_view(","));
    first = false;
    append_json_string(out, key);
    out.write(std::string_view(":"));
    append_json_string(out, value);
  });
  out.write(std::string_view("}}\n"));
  stats.bytes = out.bytes_written() - start_bytes;
  return stats;
}

}  // namespace hashmem::hashhop
