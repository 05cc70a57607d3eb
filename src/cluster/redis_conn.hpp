// RedisConn: one hiredis connection to one Redis node, with timeouts, commands as argument vectors (binary-safe)
// and errors as hashmem::Error naming the node. The cluster's management (manage.cpp) and, next, the cluster tier's
// client build on it.
//
// Threads: a connection belongs to one thread at a time. Ownership: owns its redisContext.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

struct redisContext;
struct redisReply;

namespace hashmem::cluster {

struct ReplyDeleter {
  void operator()(redisReply* r) const;
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

class RedisConn {
 public:
  // Connects with `timeout_seconds` for the connect and for every command after. Throws Error naming host:port.
  RedisConn(const std::string& host, int port, double timeout_seconds);
  ~RedisConn();
  RedisConn(const RedisConn&) = delete;
  RedisConn& operator=(const RedisConn&) = delete;

  // nullptr instead of an exception when the node cannot be reached.
  static std::unique_ptr<RedisConn> try_connect(const std::string& host, int port, double timeout_seconds);

  // Runs one command. Throws Error naming the node on an I/O error, a timeout or an error reply ("-ERR ...").
  Reply command(const std::vector<std::string_view>& args);
  // The reply as text: a status, bulk string or integer ("" for nil). Throws like command().
  std::string text(const std::vector<std::string_view>& args);

  // Pipelining, for the cluster client: append() queues a command, flush() writes every queued one (false on an
  // I/O error), get_reply() reads the next reply (nullptr on an I/O error or timeout: the connection is then unusable).
  void append(const std::vector<std::string_view>& args);
  void append(const std::string_view* args, std::size_t n);
  bool flush();
  Reply get_reply();
  std::string error() const;  // the connection's last I/O error

  const std::string& name() const { return name_; }  // "host:port"

 private:
  redisContext* ctx_ = nullptr;
  std::string name_;
  std::string format_buffer_;  // append()'s, reused
};

}  // namespace hashmem::cluster
