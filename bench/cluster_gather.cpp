// hashmem bench gather --tier cluster (cluster_gather.hpp): the cluster, the proxies, the anchor and our figures.
#include "cluster_gather.hpp"

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <deque>
#include <filesystem>
#include <random>
#include <sched.h>
#include <unistd.h>

#include "bench.hpp"
#include "cluster/redis_conn.hpp"
#include "cluster/slots.hpp"
#include "cluster_report.hpp"
#include "delay_proxy.hpp"
#include "hashmem/clock.hpp"
#include "hashmem/cluster.hpp"
#include "hashmem/engram_memory.hpp"
#include "hashmem/error.hpp"
#include "hashmem/process.hpp"
#include "hashmem/progress.hpp"
#include "offload_loop.hpp"
#include "timing.hpp"

namespace hashmem::bench {
namespace {

namespace fs = std::filesystem;
const std::string kHost = "127.0.0.1";
constexpr int kRowsPerGather = 48;  // one token of V4.1: 24 rows in each of its two Engram layers

// What an interrupted run leaves behind is stopped here: the nodes (by pid) and the table file. kill and unlink
// are async-signal-safe; the values are set before the handler is installed.
long g_pids[64];
char g_table[4096];
void stop_and_reraise(int sig) {
  for (long pid : g_pids) {
    if (pid > 0) ::kill(static_cast<pid_t>(pid), SIGTERM);
  }
  if (g_table[0]) ::unlink(g_table);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

// Every thread of process `pid` onto `cpus` (nothing if empty).
void pin_process(long pid, const std::vector<int>& cpus) {
  if (cpus.empty()) return;
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : cpus) CPU_SET(c, &set);
  std::error_code ec;
  for (const auto& task : fs::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    ::sched_setaffinity(static_cast<pid_t>(std::atol(task.path().filename().c_str())), sizeof set, &set);
  }
}

// The machine's CPUs split in two: the clients (this process, its threads and redis-benchmark) on the first half,
// the nodes and the delay proxies on the second — as if the cluster ran on other machines, so a client's CPU is
// not taken from the nodes. Nothing to split on one CPU.
void split_cpus(ClusterGatherOptions& o) {
  cpu_set_t mine;
  CPU_ZERO(&mine);
  ::sched_getaffinity(0, sizeof mine, &mine);
  std::vector<int> all;
  for (int c = 0; c < CPU_SETSIZE; ++c) {
    if (CPU_ISSET(c, &mine)) all.push_back(c);
  }
  if (all.size() < 2) return;
  o.client_cpus.assign(all.begin(), all.begin() + static_cast<std::ptrdiff_t>(all.size() / 2));
  o.cluster_cpus.assign(all.begin() + static_cast<std::ptrdiff_t>(all.size() / 2), all.end());
  cpu_set_t set;
  CPU_ZERO(&set);
  for (int c : o.client_cpus) CPU_SET(c, &set);
  ::sched_setaffinity(0, sizeof set, &set);  // this thread: the threads it starts and its children inherit it
}

// A cluster of this run: up in the constructor, down (and its dir removed) in the destructor.
struct RunCluster {
  std::string dir;
  std::vector<int> ports;
  bool keep = false;
  RunCluster(const ClusterGatherOptions& o, int masters) : dir(o.workdir + "/cluster-" + std::to_string(masters)), keep(o.keep_cluster) {
    cluster::UpOptions up;
    up.dir = dir;
    up.masters = masters;
    up.port = cluster::free_port_base(masters, o.port, kHost);
    up.redis_server = o.redis_server;
    const cluster::Status s = up_cluster(up);
    for (std::size_t i = 0; i < s.nodes.size(); ++i) {
      ports.push_back(s.nodes[i].port);
      if (i < std::size(g_pids)) g_pids[i] = s.nodes[i].pid;
      pin_process(s.nodes[i].pid, o.cluster_cpus);
    }
  }
  static cluster::Status up_cluster(const cluster::UpOptions& up) {
    if (fs::exists(up.dir + "/cluster.json")) cluster::down(up.dir);  // a --keep-cluster run's
    return cluster::up(up);
  }
  ~RunCluster() {
    if (keep) return;
    try {
      cluster::down(dir);
    } catch (const std::exception& e) {
      std::fprintf(stderr, "bench gather: stopping the cluster in %s: %s\n", dir.c_str(), e.what());
    }
    std::fill(std::begin(g_pids), std::end(g_pids), 0);
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  std::string seed(const DelayProxy* proxy) const {
    return kHost + ":" + std::to_string(proxy ? proxy->listen_port(0) : ports[0]);
  }
};

// Makes every node announce its proxy's port (the bus keeps its own), then waits until every node's CLUSTER SLOTS
// names the proxies only: from then on every client that reads the map crosses them.
void announce_proxies(const RunCluster& c, const DelayProxy& proxy) {
  std::vector<int> wanted;
  for (std::size_t i = 0; i < c.ports.size(); ++i) {
    cluster::RedisConn conn(kHost, c.ports[i], 2);
    conn.text({"CONFIG", "SET", "cluster-announce-bus-port", std::to_string(c.ports[i] + 10000)});
    conn.text({"CONFIG", "SET", "cluster-announce-port", std::to_string(proxy.listen_port(i))});
    wanted.push_back(proxy.listen_port(i));
  }
  const double deadline = now_seconds() + 30;
  for (std::size_t i = 0; i < c.ports.size(); ++i) {
    for (;;) {
      cluster::RedisConn conn(kHost, c.ports[i], 2);
      const cluster::SlotMap map = cluster::SlotMap::load(conn);
      bool all = map.uncovered().empty();
      for (const cluster::Endpoint& e : map.nodes) all = all && std::count(wanted.begin(), wanted.end(), e.port) > 0;
      if (all) break;
      if (now_seconds() > deadline) throw Error("bench gather: node " + conn.name() + " still maps slots to the nodes' own ports after 30 s");
      ::usleep(50'000);
    }
  }
}

// redis-benchmark on the cluster: `test` (get | set) of values of `bytes`, pipelines of 48, `clients` connections.
GatherRate redis_benchmark(const ClusterGatherOptions& o, const std::string& seed, int masters, const char* test,
                           std::size_t bytes, int clients, std::int64_t requests, std::int64_t keyspace) {
  const std::size_t colon = seed.rfind(':');
  const double cpu0 = cpu_seconds(RUSAGE_CHILDREN);
  // Its cluster mode refuses a cluster of one node; that node serves every slot, so plain mode is the same there.
  std::vector<std::string> argv = {o.redis_benchmark, "-h", seed.substr(0, colon), "-p", seed.substr(colon + 1),
                                   "-t", test, "-d", std::to_string(bytes), "-P", std::to_string(kRowsPerGather), "-c",
                                   std::to_string(clients), "-n", std::to_string(requests), "-r",
                                   std::to_string(keyspace), "--csv"};
  if (masters > 1) argv.insert(argv.begin() + 1, "--cluster");
  const ChildResult r = run_child(argv);
  // The figures are the last CSV line: "GET","rps","avg","min","p50","p95","p99","max" (latencies in ms).
  const std::string& out = r.stdout_text;
  const std::size_t line = out.rfind("\n\"", out.size() >= 2 ? out.size() - 2 : 0);
  double v[7] = {};
  char name[16] = {};
  if (r.exit_code != 0 || line == std::string::npos ||
      std::sscanf(out.c_str() + line + 1, "\"%15[A-Z]\",\"%lf\",\"%lf\",\"%lf\",\"%lf\",\"%lf\",\"%lf\",\"%lf\"", name, &v[0],
                  &v[1], &v[2], &v[3], &v[4], &v[5], &v[6]) != 8) {
    throw Error("redis-benchmark on " + seed + " failed (exit " + std::to_string(r.exit_code) + "): " + out.substr(0, 300));
  }
  const double cpu = cpu_seconds(RUSAGE_CHILDREN) - cpu0;
  return {v[0], v[3] / 1e3, v[5] / 1e3, cpu / static_cast<double>(requests)};
}

// A stream of 48-row gathers (24 random rows of each layer), `ahead` in flight, for `seconds`: rows/s and each
// gather's time from its prefetch to the end of its gather.
GatherRate gather_stream(store::Table& table, int ahead, double seconds, std::uint64_t seed) {
  const store::TableInfo& info = table.info();
  const std::size_t per = kRowsPerGather / info.tensors.size();
  std::mt19937_64 rng(seed);
  struct InFlight {
    std::vector<store::Ticket> tickets;
    double start = 0;
  };
  std::deque<InFlight> queue;
  std::vector<std::int64_t> ids(per);
  auto submit = [&] {
    InFlight f;
    f.start = now_seconds();
    for (std::size_t t = 0; t < info.tensors.size(); ++t) {
      for (auto& id : ids) id = static_cast<std::int64_t>(rng() % static_cast<std::uint64_t>(info.tensors[t].rows));
      f.tickets.push_back(table.prefetch(static_cast<int>(t), ids.data(), ids.size()));
    }
    queue.push_back(std::move(f));
  };
  std::vector<float> out(per * static_cast<std::size_t>(info.dim));
  std::vector<double> latencies;
  for (int i = 0; i < ahead; ++i) submit();
  const double t0 = now_seconds(), cpu0 = cpu_seconds(RUSAGE_SELF);
  double t = t0;
  std::int64_t gathers = 0;
  while (t - t0 < seconds) {
    InFlight f = std::move(queue.front());
    queue.pop_front();
    for (store::Ticket& ticket : f.tickets) table.gather(ticket, out.data());
    t = now_seconds();
    latencies.push_back(t - f.start);
    ++gathers;
    submit();
  }
  const double rows = static_cast<double>(gathers) * kRowsPerGather;
  return {rows / (t - t0), percentile(latencies, 0.5), percentile(latencies, 0.99), (cpu_seconds(RUSAGE_SELF) - cpu0) / rows};
}

// The table (V4.1's format, `scale` times smaller), the decode loop's DRAM anchor and its requests.
void prepare_inputs(const ClusterGatherOptions& o, GatherInputs& in, GatherReport& report) {
  in.compression = engram::compress_tokenizer(o.tokenizer);
  const engram::Config full = engram::preset(o.preset);
  if (in.compression.compressed_vocab > full.compressed_vocab) {
    throw Error("the tokenizer compresses to more ids than preset " + o.preset + "'s compressed_vocab");
  }
  in.compression.compressed_vocab = full.compressed_vocab;  // the preset's hashing; the tokenizer's ids are a subset
  in.layout = engram::make_layout(engram::scaled(full, o.scale));
  store::CreateOptions c;
  c.config = in.layout.config;
  c.dim = in.layout.config.head_dim;
  c.dtype = store::DType::fp8;
  c.seed = 1;
  in.path = o.workdir + "/table.safetensors";
  const double t0 = now_seconds();
  report.table = store::create_table(c, in.path);
  report.create_seconds = now_seconds() - t0;
  in.dram = std::make_unique<engram::Memory>(in.layout, report.table.dim, in.compression);
  in.dram->open(in.path, store::OpenOptions{});
  in.reference = in.dram->shared_table().get();
  RequestSource source(held_out_documents(o.tokenizer, o.valid));
  for (std::int64_t b = 0; b < o.batch; ++b) in.requests.push_back(source.take(o.steps));
  in.keyspace = o.quick ? 20'000 : 1'000'000;
}

// redis-benchmark's keys (key:{tag}:NNNNNNNNNNNN, values of a row's size), so its GETs find values as ours do.
void fill_anchor_keys(const ClusterGatherOptions& o, const RunCluster& c, const GatherInputs& in, GatherReport& report) {
  const double t0 = now_seconds();
  redis_benchmark(o, c.seed(nullptr), static_cast<int>(c.ports.size()), "set", report.table.row_bytes, o.clients.front(), 3 * in.keyspace, in.keyspace);
  report.fill_seconds = now_seconds() - t0;
}

store::OpenOptions cluster_options(const ClusterGatherOptions& o, const std::string& seed) {
  store::OpenOptions c;
  c.tier = store::Tier::cluster;
  c.cluster = seed;
  c.name = "bench";
  c.dram_budget = 0;  // every row from the cluster
  c.queue_depth = o.queue_depth;
  c.cluster_io_threads = o.io_threads;
  c.staging_bytes = 256ull << 20;
  return c;
}

// One (masters, rtt) point: every figure, anchor and ours alternating over the rounds, the best of each kept.
GatherPoint measure_point(const ClusterGatherOptions& o, const RunCluster& c, const DelayProxy* proxy, double rtt_ms,
                    const store::TableInfo& info, const GatherInputs& decode, Progress& progress, std::size_t& done) {
  GatherPoint p;
  p.masters = static_cast<int>(c.ports.size());
  p.rtt_ms = rtt_ms;
  const std::string seed = c.seed(proxy);
  const auto keep_best = [](GatherRate& best, const GatherRate& now) {
    if (now.rows_per_s > best.rows_per_s) best = now;
  };
  const auto keep_fastest = [](GatherRate& best, const GatherRate& now) {
    if (best.p50_seconds == 0 || now.p50_seconds < best.p50_seconds) best = now;
  };
  auto table = store::Table::open("", cluster_options(o, seed));
  for (int round = 0; round < o.rounds; ++round) {
    const auto requests = static_cast<std::int64_t>(std::max(100'000.0, 1.0e6 * o.seconds * (o.quick ? 0.1 : 1)));
    for (int clients : o.clients) {
      keep_best(p.anchor, redis_benchmark(o, seed, p.masters, "get", info.row_bytes, clients, requests, decode.keyspace));
    }
    keep_best(p.ours, gather_stream(*table, o.ahead, o.seconds, 17 + static_cast<std::uint64_t>(round)));
    const std::int64_t latency_requests = std::max<std::int64_t>(2000, static_cast<std::int64_t>(4000 * o.seconds));
    keep_fastest(p.anchor_latency, redis_benchmark(o, seed, p.masters, "get", info.row_bytes, p.masters, latency_requests, decode.keyspace));
    keep_fastest(p.ours_latency, gather_stream(*table, 1, o.seconds / 2, 99 + static_cast<std::uint64_t>(round)));
    progress.update(++done);
  }
  table.reset();
  engram::Memory memory(decode.layout, info.dim, decode.compression);
  memory.open("", cluster_options(o, seed));
  for (Schedule schedule : {Schedule::step_end, Schedule::layered}) {
    DecodeRun run;
    run.batch = o.batch;
    run.steps = o.steps;
    run.model_step_seconds = o.step_ms / 1e3;
    run.schedule = schedule;
    run.model_layers = o.model_layers;
    GatherDecodeFigure f;
    f.schedule = schedule;
    for (int round = 0; round < o.rounds; ++round) {
      const DecodeResult dram = decode_loop(*decode.dram, decode.requests, run, nullptr);
      const DecodeResult ours = decode_loop(memory, decode.requests, run, decode.reference);
      f.dram_tokens_per_s = std::max(f.dram_tokens_per_s, dram.tokens_per_s());
      if (ours.tokens_per_s() > f.tokens_per_s) {
        f.tokens_per_s = ours.tokens_per_s();
        f.p99_step_seconds = ours.percentile_step(0.99);
        f.dram_p99_step_seconds = dram.percentile_step(0.99);
        const auto steps = static_cast<double>(ours.step_seconds.size());
        f.lookup_seconds_per_step = ours.lookup_seconds / steps;
        f.gather_seconds_per_step = (ours.stall_seconds - ours.lookup_seconds) / steps;
        f.dram_stall_seconds_per_step = dram.stall_seconds / steps;
      }
      f.verified_rows += ours.verified_rows;
      f.mismatched_rows += ours.mismatched_rows;
    }
    p.decode.push_back(f);
  }
  return p;
}

void check_options(const ClusterGatherOptions& o) {
  if (o.masters.empty() || o.rtt_ms.empty()) throw Error("--masters and --rtt-ms each need at least one value");
  for (int m : o.masters) {
    if (m < 1 || m > 32) throw Error("--masters: each count must be in [1, 32], got " + std::to_string(m));
  }
  for (double r : o.rtt_ms) {
    if (!(r >= 0 && r <= 1000)) throw Error("--rtt-ms: each delay must be in [0, 1000] ms, got " + std::to_string(r));
  }
  if (!(o.seconds > 0 && o.seconds <= 600)) throw Error("--seconds must be in (0, 600]");
  if (o.rounds < 1 || o.ahead < 1 || o.ahead > 4096) throw Error("--rounds must be >= 1 and --ahead in [1, 4096]");
  if (o.queue_depth < 1 || o.queue_depth > 4096) throw Error("--queue-depth must be in [1, 4096]");
  if (o.io_threads < 1 || o.io_threads > 64) throw Error("--io-threads must be in [1, 64]");
  if (o.clients.empty() || *std::min_element(o.clients.begin(), o.clients.end()) < 1 || o.batch < 1 || o.steps < 1 || !(o.step_ms >= 0)) throw Error("--clients, --batch and --steps must be >= 1, --step-ms >= 0");
  if (!(o.scale >= 1)) throw Error("--scale must be >= 1");
  if (o.port < 1024 || o.port > 55000) throw Error("--port must be in [1024, 55000]");
  for (const std::string* f : {&o.tokenizer, &o.valid}) {
    if (!fs::exists(*f)) throw Error("'" + *f + "' does not exist (run ./run build, which fetches the data)");
  }
}

}  // namespace

int run_cluster_gather_bench(ClusterGatherOptions o) {
  if (o.quick) {  // a ~25 MB table, short figures: the whole path once, every decoded row checked (for tests)
    o.scale = 8192;
    o.masters = {2};
    o.rtt_ms = {0, 1};
    o.seconds = 0.2;
    o.rounds = 1;
    o.steps = 8;
    o.step_ms = 2;
  }
  check_options(o);
  std::sort(o.rtt_ms.begin(), o.rtt_ms.end());  // straight to the nodes first: then the proxies are announced
  if (o.pin) split_cpus(o);
  fs::create_directories(o.workdir);
  GatherReport report;
  report.options = &o;
  GatherInputs decode;
  prepare_inputs(o, decode, report);  // the table file, its DRAM copy and the requests
  std::snprintf(g_table, sizeof g_table, "%s", decode.path.c_str());
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) std::signal(sig, stop_and_reraise);
  Progress progress("bench gather --tier cluster", o.masters.size() * o.rtt_ms.size() * static_cast<std::size_t>(o.rounds));
  std::size_t done = 0;
  for (int masters : o.masters) {
    const RunCluster c(o, masters);
    const double t0 = now_seconds();
    cluster::push_table(decode.path, c.seed(nullptr), "bench");
    const double push_seconds = now_seconds() - t0;
    fill_anchor_keys(o, c, decode, report);
    std::unique_ptr<DelayProxy> proxy;
    for (double rtt : o.rtt_ms) {
      if (rtt > 0 && !proxy) {
        proxy = std::make_unique<DelayProxy>(kHost, c.ports, rtt / 2e3, o.cluster_cpus);
        announce_proxies(c, *proxy);
      }
      if (proxy) proxy->set_delay(rtt / 2e3);
      GatherPoint p = measure_point(o, c, rtt > 0 ? proxy.get() : nullptr, rtt, report.table, decode, progress, done);
      p.push_seconds = push_seconds;
      report.points.push_back(p);
    }
  }
  progress.finish();
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) std::signal(sig, SIG_DFL);
  decode.close();
  std::memset(g_table, 0, sizeof g_table);
  return write_gather_report(report);
}

void add_cluster_gather_options(CLI::App* gather, ClusterGatherOptions& o) {
  const std::string g = "Cluster tier (--tier cluster)";
  gather->add_option("--workdir", o.workdir, "Directory for the table, the clusters (removed after) and the CSV/JSON")
      ->group(g)->capture_default_str();
  gather->add_option("--tokenizer", o.tokenizer, "tokenizer.json (DeepSeek-V3's)")->group(g)->capture_default_str();
  gather->add_option("--valid", o.valid, "Held-out text: the decode loop's requests")->group(g)->capture_default_str();
  gather->add_option("--preset", o.preset, "Engram preset")->group(g)->capture_default_str();
  gather->add_option("--scale", o.scale, "Table this many times smaller than the preset's")->group(g)->capture_default_str();
  gather->add_option("--masters", o.masters, "Master counts, one cluster each")->delimiter(',')->group(g)->capture_default_str();
  gather->add_option("--rtt-ms", o.rtt_ms, "Added round trips in ms (0: straight to the nodes; else through delay proxies)")
      ->delimiter(',')->group(g)->capture_default_str();
  gather->add_option("--port", o.port, "First port to look for free ones from")->group(g)->capture_default_str();
  gather->add_option("--seconds", o.seconds, "Seconds per throughput figure")->group(g)->capture_default_str();
  gather->add_option("--rounds", o.rounds, "Alternated rounds of anchor and ours (best kept)")->group(g)->capture_default_str();
  gather->add_option("--ahead", o.ahead, "48-row gathers in flight in the throughput stream")->group(g)->capture_default_str();
  gather->add_option("--queue-depth", o.queue_depth, "Rows per pipelined batch of the cluster tier")->group(g)->capture_default_str();
  gather->add_option("--io-threads", o.io_threads, "The cluster tier's I/O threads")->group(g)->capture_default_str();
  gather->add_option("--clients", o.clients, "redis-benchmark connection counts in its throughput figure (best kept)")
      ->delimiter(',')->group(g)->capture_default_str();
  gather->add_flag("!--no-pin", o.pin, "Do not split the CPUs between clients and nodes")->group(g);
  gather->add_option("--batch", o.batch, "Decode loop: requests B")->group(g)->capture_default_str();
  gather->add_option("--steps", o.steps, "Decode loop: steps")->group(g)->capture_default_str();
  gather->add_option("--step-ms", o.step_ms, "Decode loop: model step S in ms")->group(g)->capture_default_str();
  gather->add_option("--model-layers", o.model_layers, "Decode loop: layers (layer l is reached at l/N of S)")->group(g)->capture_default_str();
  gather->add_flag("--quick", o.quick, "A ~25 MB table, one 2-master cluster, short figures (for tests)")->group(g);
  gather->add_flag("--keep-cluster", o.keep_cluster, "Leave the clusters running")->group(g);
}

}  // namespace hashmem::bench
