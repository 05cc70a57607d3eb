#include "cluster/slots.hpp"

#include <algorithm>
#include <hiredis/hiredis.h>

#include "cluster/redis_conn.hpp"
#include "hashmem/error.hpp"

namespace hashmem::cluster {

namespace {

// CRC16-XMODEM (polynomial 0x1021, MSB first) a byte at a time: entry b is the CRC of the byte b, bit by bit.
struct Crc16Table {
  std::uint16_t v[256];
  constexpr Crc16Table() : v{} {
    for (int b = 0; b < 256; ++b) {
      std::uint16_t crc = static_cast<std::uint16_t>(b << 8);
      for (int i = 0; i < 8; ++i) crc = static_cast<std::uint16_t>(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
      v[b] = crc;
    }
  }
};
constexpr Crc16Table kCrc16;

}  // namespace

std::uint16_t crc16_xmodem(std::string_view bytes) {
  std::uint16_t crc = 0;
  for (unsigned char b : bytes) crc = static_cast<std::uint16_t>((crc << 8) ^ kCrc16.v[((crc >> 8) ^ b) & 0xff]);
  return crc;
}

int key_slot(std::string_view key) {
  const std::size_t open = key.find('{');
  if (open != std::string_view::npos) {
    const std::size_t close = key.find('}', open + 1);
    if (close != std::string_view::npos && close > open + 1) key = key.substr(open + 1, close - open - 1);
  }
  return crc16_xmodem(key) & 16383;
}

int SlotMap::node_index(const Endpoint& e) {
  for (std::size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i] == e) return static_cast<int>(i);
  }
  nodes.push_back(e);
  replicas.emplace_back();
  return static_cast<int>(nodes.size() - 1);
}

std::vector<int> SlotMap::uncovered() const {
  std::vector<int> out;
  for (int s = 0; s < 16384; ++s) {
    if (master[static_cast<std::size_t>(s)] < 0) out.push_back(s);
  }
  return out;
}

SlotMap SlotMap::load(RedisConn& conn) {
  SlotMap m;
  m.master.fill(-1);
  Reply r = conn.command({"CLUSTER", "SLOTS"});
  auto bad = [&](const std::string& why) { return Error("Redis node " + conn.name() + " sent a malformed CLUSTER SLOTS reply: " + why); };
  if (r->type != REDIS_REPLY_ARRAY) throw bad("not an array");
  for (std::size_t i = 0; i < r->elements; ++i) {
    const redisReply* range = r->element[i];
    if (range->type != REDIS_REPLY_ARRAY || range->elements < 3) throw bad("a range is not [first, last, master, ...]");
    const redisReply* lo = range->element[0];
    const redisReply* hi = range->element[1];
    if (lo->type != REDIS_REPLY_INTEGER || hi->type != REDIS_REPLY_INTEGER || lo->integer < 0 || hi->integer > 16383 ||
        lo->integer > hi->integer) {
      throw bad("slot bounds");
    }
    int master = -1;
    for (std::size_t k = 2; k < range->elements; ++k) {
      const redisReply* node = range->element[k];
      if (node->type != REDIS_REPLY_ARRAY || node->elements < 2 || node->element[0]->type != REDIS_REPLY_STRING ||
          node->element[1]->type != REDIS_REPLY_INTEGER) {
        throw bad("a node is not [host, port, ...]");
      }
      Endpoint e{std::string(node->element[0]->str, node->element[0]->len), static_cast<int>(node->element[1]->integer)};
      if (e.host.empty() || e.host == "?") {
        const std::string& self = conn.name();
        e.host = self.substr(0, self.rfind(':'));  // Redis sends "" for "the address you reached me at"
      }
      const int idx = m.node_index(e);
      if (k == 2) {
        master = idx;
      } else {
        auto& reps = m.replicas[static_cast<std::size_t>(master)];
        if (std::find(reps.begin(), reps.end(), idx) == reps.end()) reps.push_back(idx);
      }
    }
    for (long long s = lo->integer; s <= hi->integer; ++s) m.master[static_cast<std::size_t>(s)] = master;
  }
  return m;
}

}  // namespace hashmem::cluster
