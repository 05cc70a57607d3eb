// The pieces of `hashmem bench gather --tier cluster` (docs/cluster.md): the delay proxy that stands in for netem
// forwards every byte in order, holds it back at least its delay and closes both sides together; a --quick run
// starts its own cluster, checks every decoded row against the DRAM table, prints JSON that parses and leaves no
// table, cluster or node behind; bad options are named. No timing assertions beyond the delay's lower bound, which
// is what the proxy is for.
#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <atomic>
#include <filesystem>
#include <netinet/in.h>
#include <nlohmann/json.hpp>
#include <random>
#include <sys/socket.h>
#include <thread>
#include <unistd.h>

#include "cluster_test_util.hpp"
#include "delay_proxy.hpp"
#include "hashmem/clock.hpp"
#include "hashmem/process.hpp"
#include "test_util.hpp"

namespace hashmem::testing {
namespace {

// A loopback server that echoes what each connection sends until it closes; counts the connections that ended.
class EchoServer {
 public:
  EchoServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    EXPECT_EQ(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    EXPECT_EQ(::listen(fd_, 16), 0);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] {
      for (;;) {
        const int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        char buf[65536];
        for (ssize_t n; (n = ::read(c, buf, sizeof buf)) > 0;) {
          for (ssize_t at = 0; at < n;) at += std::max<ssize_t>(::write(c, buf + at, static_cast<std::size_t>(n - at)), 1);
        }
        ::close(c);
        ++ended_;
      }
    });
  }
  ~EchoServer() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  int port() const { return port_; }
  int ended() const { return ended_.load(); }

 private:
  int fd_ = -1, port_ = 0;
  std::atomic<int> ended_{0};
  std::thread thread_;
};

int connect_to(int port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<std::uint16_t>(port));
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  return fd;
}

std::string read_exactly(int fd, std::size_t n) {
  std::string out(n, '\0');
  for (std::size_t at = 0; at < n;) {
    const ssize_t r = ::read(fd, out.data() + at, n - at);
    if (r <= 0) break;
    at += static_cast<std::size_t>(r);
  }
  return out;
}

TEST(DelayProxy, ForwardsEveryByteInOrderAndHoldsItBackTheDelay) {
  EchoServer echo;
  bench::DelayProxy proxy("127.0.0.1", {echo.port()}, 0.005);
  const int fd = connect_to(proxy.listen_port(0));
  const double t0 = now_seconds();
  ASSERT_EQ(::write(fd, "ping", 4), 4);
  EXPECT_EQ(read_exactly(fd, 4), "ping");
  EXPECT_GE(now_seconds() - t0, 0.010);  // 5 ms each way, at least
  std::string payload(3 << 20, '\0');  // more than the socket buffers hold: the proxy must wait for room
  std::mt19937_64 rng(3);
  for (char& c : payload) c = static_cast<char>(rng());
  proxy.set_delay(0);
  std::thread writer([&] {
    for (std::size_t at = 0; at < payload.size();) at += static_cast<std::size_t>(std::max<ssize_t>(::write(fd, payload.data() + at, payload.size() - at), 1));
  });
  EXPECT_TRUE(read_exactly(fd, payload.size()) == payload);
  writer.join();
  // The proxy counts a chunk after sending it: the reader may get the last bytes before the count does.
  const double deadline = now_seconds() + 10;
  while (proxy.bytes_forwarded() < 2 * (payload.size() + 4) && now_seconds() < deadline) ::usleep(1000);
  EXPECT_EQ(proxy.bytes_forwarded(), 2 * (payload.size() + 4));
  EXPECT_EQ(proxy.connections(), 1u);
  ::close(fd);
}

// Connections end while other threads fork children (as the benchmark runs redis-benchmark beside the proxy): a
// child between fork and exec holds the sockets, so the proxy must take a closed link out of its epoll set itself
// (ASan saw the events of a freed link when it did not).
TEST(DelayProxy, AClosedSideClosesTheOther) {
  EchoServer echo;
  bench::DelayProxy proxy("127.0.0.1", {echo.port(), echo.port()}, 0.001);
  std::atomic<bool> done{false};
  std::thread forker([&] {
    for (int i = 0; i < 200 && !done; ++i) run_child({"true"});
  });
  constexpr int kConnections = 40;
  for (int i = 0; i < kConnections; ++i) {
    const int fd = connect_to(proxy.listen_port(static_cast<std::size_t>(i % 2)));
    ASSERT_EQ(::write(fd, "x", 1), 1);
    EXPECT_EQ(read_exactly(fd, 1), "x");
    ::close(fd);
  }
  const double deadline = now_seconds() + 10;
  while (echo.ended() < kConnections && now_seconds() < deadline) ::usleep(1000);
  done = true;
  forker.join();
  EXPECT_EQ(echo.ended(), kConnections);  // the server saw every connection end
}

class ClusterBench : public CliTest {};

TEST_F(ClusterBench, QuickRunChecksEveryRowAndLeavesNothingBehind) {
  HASHMEM_REQUIRE_REDIS();
  if (!std::filesystem::exists(HASHMEM_DEEPSEEK_TOKENIZER) || !std::filesystem::exists(HASHMEM_DATA_DIR "/corpus/valid.txt")) {
    GTEST_SKIP() << "skipped: the corpus or DeepSeek-V3's tokenizer is missing (./run build fetches them)";
  }
  const std::string work = dir_.file("bench");
  const CommandResult r = run("bench gather --tier cluster --quick --json --workdir " + work + " --port " +
                              std::to_string(test_ports(2)) + " --tokenizer " + HASHMEM_DEEPSEEK_TOKENIZER +
                              " --valid " HASHMEM_DATA_DIR "/corpus/valid.txt");
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["table"]["row_bytes"].get<int>(), 264);
  ASSERT_EQ(j["points"].size(), 2u);  // 2 masters × rtt 0 and 1 ms
  EXPECT_EQ(j["points"][1]["rtt_ms"].get<double>(), 1.0);
  for (const auto& p : j["points"]) {
    EXPECT_GT(p["rows_per_s"].get<double>(), 0);
    EXPECT_GT(p["anchor_rows_per_s"].get<double>(), 0);
    EXPECT_GT(p["verified_rows"].get<std::uint64_t>(), 0u);
    EXPECT_EQ(p["mismatched_rows"].get<std::uint64_t>(), 0u);
  }
  EXPECT_TRUE(std::filesystem::exists(work + "/cluster-gather.csv"));
  EXPECT_FALSE(std::filesystem::exists(work + "/table.safetensors"));
  EXPECT_FALSE(std::filesystem::exists(work + "/cluster-2"));  // the cluster was stopped and removed
}

TEST_F(ClusterBench, BadOptionsAreNamed) {
  const CommandResult masters = run("bench gather --tier cluster --masters 0 --workdir " + dir_.file("b"));
  EXPECT_NE(masters.exit_code, 0);
  EXPECT_NE(masters.err.find("--masters"), std::string::npos) << masters.err;
  const CommandResult rtt = run("bench gather --tier cluster --rtt-ms -1 --workdir " + dir_.file("b"));
  EXPECT_NE(rtt.exit_code, 0);
  EXPECT_NE(rtt.err.find("--rtt-ms"), std::string::npos) << rtt.err;
  const CommandResult table = run("bench gather");
  EXPECT_NE(table.exit_code, 0);
  EXPECT_NE(table.err.find("--table"), std::string::npos) << table.err;
  const CommandResult tier = run("bench gather --tier tape");
  EXPECT_NE(tier.exit_code, 0);
  EXPECT_NE(tier.err.find("--tier"), std::string::npos) << tier.err;
}

}  // namespace
}  // namespace hashmem::testing
