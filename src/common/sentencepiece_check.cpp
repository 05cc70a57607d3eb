// The character-map check of common/sentencepiece_check.hpp.
#include "common/sentencepiece_check.hpp"

#include <cstdint>
#include <algorithm>
#include <cstring>
#include <vector>

#include "hashmem/error.hpp"

namespace hashmem {
namespace {

// ModelProto.normalizer_spec = 3, ModelProto.denormalizer_spec = 5, NormalizerSpec.precompiled_charsmap = 2
// (sentencepiece_model.proto).
constexpr std::uint64_t kNormalizerSpec = 3, kDenormalizerSpec = 5, kPrecompiledCharsmap = 2;
// Normalizer::kMaxTrieResultsSize (normalizer.h): prefix matches the library keeps per position.
constexpr int kMaxMatches = 32;

// A cursor over protobuf wire format. next() yields (field, wire type, payload of a length-delimited field); false
// at the end. Malformed input (truncated, groups) throws: a model the library could parse has neither.
class WireReader {
 public:
  WireReader(std::string_view bytes, const std::string& what) : bytes_(bytes), what_(what) {}

  bool next(std::uint64_t* field, std::string_view* payload) {
    if (bytes_.empty()) return false;
    const std::uint64_t key = varint();
    *field = key >> 3;
    *payload = {};
    switch (key & 7) {
      case 0: varint(); break;
      case 1: skip(8); break;
      case 5: skip(4); break;
      case 2: {
        const std::uint64_t n = varint();
        if (n > bytes_.size()) throw bad("a field runs past the end of the model");
        *payload = bytes_.substr(0, n);
        bytes_.remove_prefix(n);
        break;
      }
      default: throw bad("unsupported protobuf wire type " + std::to_string(key & 7));
    }
    return true;
  }

 private:
  std::uint64_t varint() {
    std::uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (bytes_.empty()) throw bad("truncated");
      const auto c = static_cast<unsigned char>(bytes_.front());
      bytes_.remove_prefix(1);
      v |= static_cast<std::uint64_t>(c & 0x7f) << shift;
      if (c < 0x80) return v;
    }
    throw bad("a varint longer than 10 bytes");
  }
  void skip(std::size_t n) {
    if (n > bytes_.size()) throw bad("truncated");
    bytes_.remove_prefix(n);
  }
  Error bad(const std::string& problem) const { return Error(what_ + ": malformed protobuf (" + problem + ")"); }

  std::string_view bytes_;
  const std::string& what_;
};

// darts-clone's DoubleArrayUnit (darts.h).
bool has_leaf(std::uint32_t u) { return (u >> 8) & 1; }
std::uint32_t value_of(std::uint32_t u) { return u & 0x7fffffffu; }
std::uint32_t label_of(std::uint32_t u) { return u & (0x80000000u | 0xffu); }
std::uint32_t offset_of(std::uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }

// <trie bytes: uint32 LE><trie: uint32 units><replacement strings, each NUL-terminated> (normalizer.cc).
// Walks every state Darts::DoubleArray::commonPrefixSearch can reach on any input, as it does: from state s the
// byte c reads unit s ^ c (any c, so the whole 256-unit block of s must exist), a matching label moves to
// s ^ c ^ offset, whose unit holds the value when the label's unit has a leaf. Along any path at most kMaxMatches
// leaves, and no cycles but the harmless self-loops of byte 0 (a cycle with a leaf gives unboundedly many matches).
void check_charsmap(std::string_view blob, const std::string& where) {
  auto bad = [&](const std::string& problem) { return Error(where + ": " + problem); };
  std::uint32_t trie_bytes = 0;
  if (blob.size() <= 4) return;  // the library refuses it itself ("Blob for normalization rule is broken")
  std::memcpy(&trie_bytes, blob.data(), 4);  // little-endian, as the library reads it on this host
  if (trie_bytes >= blob.size()) return;     // refused by the library too
  blob.remove_prefix(4);
  // The library checks the size against the map with its 4-byte prefix, so up to 3 bytes too many pass.
  if (trie_bytes > blob.size()) throw bad("its trie runs past the end of the map");
  const std::size_t n = trie_bytes / 4;
  std::vector<std::uint32_t> units(n);
  if (n) std::memcpy(units.data(), blob.data(), 4 * n);
  const std::string_view strings = blob.substr(trie_bytes);
  if (n == 0) throw bad("its trie is empty");

  auto unit_at = [&](std::uint64_t i) {
    if (i >= n) throw bad("its trie points outside itself (unit " + std::to_string(i) + " of " + std::to_string(n) + ")");
    return units[i];
  };
  auto too_many = [&] {
    return bad("an input matches more than " + std::to_string(kMaxMatches) + " of its rules at one position");
  };
  // Per state: 0 unseen, 1 on the path being walked, 2 done; and the most leaves on a path from it.
  std::vector<std::uint8_t> color(n, 0), most(n, 0);
  struct Frame {
    std::uint32_t state;
    std::uint32_t next_byte;
    int best;          // most leaves on a path from this state, over the bytes tried so far
    int pending_leaf;  // whether the byte that led to the child being walked passed a leaf
  };
  const std::uint64_t root = offset_of(unit_at(0));  // commonPrefixSearch starts at 0 ^ offset
  if (root >= n) throw bad("its trie points outside itself (root state " + std::to_string(root) + ")");
  std::vector<Frame> stack = {{static_cast<std::uint32_t>(root), 0, 0, 0}};
  color[root] = 1;
  while (!stack.empty()) {
    Frame& f = stack.back();
    if (f.next_byte == 256) {
      color[f.state] = 2;
      most[f.state] = static_cast<std::uint8_t>(f.best);
      const int done = f.best;
      stack.pop_back();
      if (!stack.empty()) {
        Frame& parent = stack.back();
        parent.best = std::max(parent.best, parent.pending_leaf + done);
        if (parent.best > kMaxMatches) throw too_many();
      }
      continue;
    }
    const std::uint32_t c = f.next_byte++;
    const std::uint32_t index = f.state ^ c;
    const std::uint32_t u = unit_at(index);
    if (label_of(u) != c) continue;
    const std::uint64_t next = index ^ offset_of(u);
    if (next >= n) throw bad("its trie points outside itself (state " + std::to_string(next) + ")");
    const int leaf = has_leaf(u) ? 1 : 0;
    if (leaf) {
      const std::uint32_t v = value_of(units[next]);
      if (v >= strings.size() || std::memchr(strings.data() + v, '\0', strings.size() - v) == nullptr) {
        throw bad("a replacement string lies outside the map or has no terminating NUL");
      }
    }
    if (next == f.state) {
      // Byte 0 at a state whose unit is unused (0) leads back to the state: real tries have these self-loops, and
      // without a match on them they change nothing.
      if (leaf) throw bad("its trie has a cycle through a rule");
      continue;
    }
    if (color[next] == 1) throw bad("its trie has a cycle");
    if (color[next] == 2) {
      f.best = std::max(f.best, leaf + most[next]);
      if (f.best > kMaxMatches) throw too_many();
      continue;
    }
    f.pending_leaf = leaf;
    color[next] = 1;
    stack.push_back({static_cast<std::uint32_t>(next), 0, 0, 0});
  }
}

}  // namespace

void check_sentencepiece_model(std::string_view model, const std::string& what) {
  WireReader top(model, what);
  std::uint64_t field = 0;
  std::string_view payload;
  while (top.next(&field, &payload)) {
    if (field != kNormalizerSpec && field != kDenormalizerSpec) continue;
    const std::string where = what + ": the " + (field == kNormalizerSpec ? "normalizer" : "denormalizer") +
                              "'s precompiled character map is malformed";
    WireReader spec(payload, what);
    std::uint64_t inner = 0;
    std::string_view charsmap;
    while (spec.next(&inner, &charsmap)) {
      if (inner == kPrecompiledCharsmap) check_charsmap(charsmap, where);
    }
  }
}

}  // namespace hashmem
