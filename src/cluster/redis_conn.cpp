#include "cluster/redis_conn.hpp"

#include <cmath>
#include <hiredis/hiredis.h>
#include <sys/time.h>

#include "hashmem/error.hpp"

namespace hashmem::cluster {
namespace {

timeval to_timeval(double seconds) {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(seconds);
  tv.tv_usec = static_cast<suseconds_t>(std::lround((seconds - static_cast<double>(tv.tv_sec)) * 1e6));
  return tv;
}

}  // namespace

void ReplyDeleter::operator()(redisReply* r) const { freeReplyObject(r); }

RedisConn::RedisConn(const std::string& host, int port, double timeout_seconds)
    : name_(host + ":" + std::to_string(port)) {
  const timeval tv = to_timeval(timeout_seconds);
  ctx_ = redisConnectWithTimeout(host.c_str(), port, tv);
  if (ctx_ == nullptr) throw Error("cannot connect to Redis node " + name_ + ": out of memory");
  if (ctx_->err) {
    const std::string why = ctx_->errstr;
    redisFree(ctx_);
    ctx_ = nullptr;
    throw Error("cannot connect to Redis node " + name_ + ": " + why);
  }
  redisSetTimeout(ctx_, tv);
}

RedisConn::~RedisConn() {
  if (ctx_ != nullptr) redisFree(ctx_);
}

std::unique_ptr<RedisConn> RedisConn::try_connect(const std::string& host, int port, double timeout_seconds) {
  try {
    return std::make_unique<RedisConn>(host, port, timeout_seconds);
  } catch (const Error&) {
    return nullptr;
  }
}

Reply RedisConn::command(const std::vector<std::string_view>& args) {
  std::vector<const char*> argv;
  std::vector<size_t> lens;
  for (std::string_view a : args) {
    argv.push_back(a.data());
    lens.push_back(a.size());
  }
  Reply r(static_cast<redisReply*>(redisCommandArgv(ctx_, static_cast<int>(argv.size()), argv.data(), lens.data())));
  const std::string what = args.empty() ? std::string() : std::string(args[0]);
  if (!r) throw Error("Redis node " + name_ + " failed on " + what + ": " + (ctx_->err ? ctx_->errstr : "no reply"));
  if (r->type == REDIS_REPLY_ERROR) throw Error("Redis node " + name_ + " refused " + what + ": " + std::string(r->str, r->len));
  return r;
}

std::string RedisConn::text(const std::vector<std::string_view>& args) {
  Reply r = command(args);
  switch (r->type) {
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
      return std::string(r->str, r->len);
    case REDIS_REPLY_INTEGER:
      return std::to_string(r->integer);
    default:
      return "";
  }
}

void RedisConn::append(const std::vector<std::string_view>& args) { append(args.data(), args.size()); }

void RedisConn::append(const std::string_view* args, std::size_t n) {
  // The command in RESP ("*<n>\r\n" then "$<len>\r\n<bytes>\r\n" per argument), handed to hiredis's
  // redisAppendFormattedCommand: hiredis's own formatter goes through printf and was a quarter of the cluster
  // tier's client time.
  std::string& buf = format_buffer_;
  buf.clear();
  char num[24];
  const auto put_count = [&](char tag, std::size_t v) {
    buf.push_back(tag);
    char* end = num + sizeof num;
    char* p = end;
    do {
      *--p = static_cast<char>('0' + v % 10);
      v /= 10;
    } while (v);
    buf.append(p, static_cast<std::size_t>(end - p));
    buf.append("\r\n", 2);
  };
  put_count('*', n);
  for (std::size_t i = 0; i < n; ++i) {
    put_count('$', args[i].size());
    buf.append(args[i].data(), args[i].size());
    buf.append("\r\n", 2);
  }
  if (redisAppendFormattedCommand(ctx_, buf.data(), buf.size()) != REDIS_OK) throw std::bad_alloc();
}

bool RedisConn::flush() {
  int done = 0;
  while (!done) {
    if (redisBufferWrite(ctx_, &done) != REDIS_OK) return false;
  }
  return true;
}

Reply RedisConn::get_reply() {
  void* r = nullptr;
  if (redisGetReply(ctx_, &r) != REDIS_OK) return nullptr;
  return Reply(static_cast<redisReply*>(r));
}

std::string RedisConn::error() const { return ctx_->err ? ctx_->errstr : "no error"; }

}  // namespace hashmem::cluster
