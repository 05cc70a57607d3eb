#include "offload_loop.hpp"

#include "timing.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <ctime>
#include <cerrno>
#include <fcntl.h>
#include <liburing.h>
#include <memory>
#include <random>
#include <sys/prctl.h>
#include <unistd.h>

#include "cache_trace.hpp"
#include "hashmem/bpe.hpp"
#include "hashmem/clock.hpp"
#include "hashmem/mapped_file.hpp"
#include "hashmem/error.hpp"

namespace hashmem::bench {
namespace {

// The model's work: a sleep (the SSD tier's I/O thread keeps the core). Timer slack is set to 1 µs once, so a
// sleep overshoots by tens of µs, not the default 50 µs + scheduler slack; DRAM and SSD runs share the overshoot.
void model_work(double seconds) {
  if (seconds <= 0) return;
  timespec t{};
  t.tv_sec = static_cast<time_t>(seconds);
  t.tv_nsec = static_cast<long>((seconds - static_cast<double>(t.tv_sec)) * 1e9);
  while (::nanosleep(&t, &t) != 0) {
  }
}

// Gathers tensor `t` of `l` again from `reference` and counts the rows that differ (bit for bit) from `out`.
void verify(store::Table& reference, const engram::Lookup& l, std::size_t t, std::int64_t dim, const float* out,
            std::vector<float>& scratch, std::uint64_t& verified, std::uint64_t& mismatched) {
  const std::vector<std::int64_t>& rows = l.rows[t];
  if (rows.empty()) return;
  scratch.resize(rows.size() * static_cast<std::size_t>(dim));
  reference.gather(static_cast<int>(t), rows.data(), rows.size(), scratch.data());
  const std::size_t row_bytes = static_cast<std::size_t>(dim) * sizeof(float);
  for (std::size_t i = 0; i < rows.size(); ++i) {
    ++verified;
    if (std::memcmp(out + i * static_cast<std::size_t>(dim), scratch.data() + i * static_cast<std::size_t>(dim),
                    row_bytes) != 0) {
      ++mismatched;
    }
  }
}

// When each tensor's rows are gathered, as a fraction of the model step: the layer's position in the model
// (layered) or the end of the step. Tensors are in the layout's order, which is the layers' order.
std::vector<double> gather_points(const engram::Layout& layout, const DecodeRun& run) {
  std::vector<double> points;
  for (const engram::LayerLayout& layer : layout.layers) {
    if (run.schedule == Schedule::step_end) {
      points.push_back(1.0);
    } else {
      if (layer.layer_id >= run.model_layers) {
        throw Error("Engram layer " + std::to_string(layer.layer_id) + " is not below --model-layers " +
                    std::to_string(run.model_layers));
      }
      points.push_back(static_cast<double>(layer.layer_id) / run.model_layers);
    }
  }
  for (std::size_t i = 1; i < points.size(); ++i) {
    if (points[i] < points[i - 1]) throw Error("the Engram layers must be listed in model order");
  }
  return points;
}

}  // namespace

const char* schedule_name(Schedule schedule) { return schedule == Schedule::layered ? "layered" : "step-end"; }

double DecodeResult::tokens_per_s() const {
  return seconds > 0 ? static_cast<double>(tokens) / seconds : 0.0;
}

double DecodeResult::percentile_step(double q) const { return percentile(step_seconds, q); }

DecodeResult decode_loop(engram::Memory& memory, const std::vector<std::vector<std::int64_t>>& requests,
                         const DecodeRun& run, store::Table* reference) {
  const auto batch = static_cast<std::int64_t>(requests.size());
  if (batch < 1 || run.steps < 1) throw Error("decode loop: needs at least one request and one step");
  for (const auto& r : requests) {
    if (static_cast<std::int64_t>(r.size()) < run.steps) throw Error("decode loop: a request is shorter than the steps");
  }
  ::prctl(PR_SET_TIMERSLACK, 1000UL, 0, 0, 0);
  const std::vector<double> points = gather_points(memory.layout(), run);
  const double S = run.model_step_seconds;
  engram::Stream stream = memory.stream(batch);
  std::vector<std::int64_t> ids(static_cast<std::size_t>(batch));
  std::vector<float> out(static_cast<std::size_t>(batch * memory.width())), scratch;
  DecodeResult result;
  result.step_seconds.reserve(static_cast<std::size_t>(run.steps));
  result.gather_seconds.assign(points.size(), 0.0);
  memory.table().reset_stats();
  const double start = now_seconds();
  double verify_seconds = 0;
  for (std::int64_t step = 0; step < run.steps; ++step) {
    const double step_start = now_seconds();
    double step_verify = 0;
    for (std::int64_t b = 0; b < batch; ++b) ids[static_cast<std::size_t>(b)] = requests[static_cast<std::size_t>(b)][static_cast<std::size_t>(step)];
    engram::Lookup lookup = memory.lookup(ids.data(), batch, 1, &stream);
    result.lookup_seconds += now_seconds() - step_start;
    double done = 0;  // fraction of the model step's work done
    for (std::size_t t = 0; t < points.size(); ++t) {
      model_work((points[t] - done) * S);
      done = points[t];
      const double g0 = now_seconds();
      memory.gather(lookup, t, out.data());
      result.gather_seconds[t] += now_seconds() - g0;
      if (reference) {  // not serving work: its time is taken out of the step's
        const double v0 = now_seconds();
        verify(*reference, lookup, t, memory.row_dim(), out.data(), scratch, result.verified_rows, result.mismatched_rows);
        step_verify += now_seconds() - v0;
      }
    }
    model_work((1.0 - done) * S);
    result.step_seconds.push_back(now_seconds() - step_start - step_verify);
    verify_seconds += step_verify;
  }
  result.seconds = now_seconds() - start - verify_seconds;
  result.stall_seconds = result.lookup_seconds;
  for (double g : result.gather_seconds) result.stall_seconds += g;
  result.tokens = batch * run.steps;
  result.stats = memory.table().stats();
  return result;
}

PrefillResult prefill(engram::Memory& memory, const std::vector<std::int64_t>& prompt, store::Table* reference) {
  if (prompt.empty()) throw Error("prefill: empty prompt");
  PrefillResult r;
  r.tokens = static_cast<std::int64_t>(prompt.size());
  std::vector<float> out(prompt.size() * static_cast<std::size_t>(memory.width())), scratch;
  memory.table().reset_stats();
  const double start = now_seconds();
  engram::Lookup lookup = memory.lookup(prompt.data(), 1, r.tokens);
  for (std::size_t t = 0; t < memory.tensors(); ++t) {
    memory.gather(lookup, t, out.data());
    if (reference) {
      const double pause = now_seconds();
      verify(*reference, lookup, t, memory.row_dim(), out.data(), scratch, r.verified_rows, r.mismatched_rows);
      r.seconds -= now_seconds() - pause;  // the check is not part of the prefill
    }
  }
  r.seconds += now_seconds() - start;
  r.stats = memory.table().stats();
  return r;
}

BatchReadTimes raw_batch_reads(const std::string& path, std::uint64_t begin, std::uint64_t end, int reads, int rounds) {
  const std::uint64_t first = (begin + 4095) / 4096, blocks = end / 4096 > first ? end / 4096 - first : 0;
  if (reads < 1 || rounds < 1 || blocks < 2) throw Error("raw batch reads: nothing to read in '" + path + "'");
  const int fd = ::open(path.c_str(), O_RDONLY | O_DIRECT | O_CLOEXEC);
  if (fd < 0) throw Error("cannot open '" + path + "' with O_DIRECT: " + std::strerror(errno));
  io_uring ring;
  if (io_uring_queue_init(static_cast<unsigned>(reads), &ring, 0) < 0) {
    ::close(fd);
    throw Error("io_uring_queue_init failed for '" + path + "'");
  }
  std::unique_ptr<std::uint8_t, decltype(&std::free)> buffers(
      static_cast<std::uint8_t*>(std::aligned_alloc(4096, static_cast<std::size_t>(reads) * 4096)), &std::free);
  std::mt19937_64 rng(11);
  std::vector<double> times;
  std::string failure;
  for (int round = 0; round < rounds && failure.empty(); ++round) {
    const double t0 = now_seconds();
    for (int i = 0; i < reads; ++i) {
      io_uring_sqe* sqe = io_uring_get_sqe(&ring);
      io_uring_prep_read(sqe, fd, buffers.get() + static_cast<std::size_t>(i) * 4096, 4096, (first + rng() % blocks) * 4096);
    }
    io_uring_submit(&ring);
    for (int i = 0; i < reads; ++i) {
      io_uring_cqe* cqe = nullptr;
      if (io_uring_wait_cqe(&ring, &cqe) < 0) {
        failure = "io_uring_wait_cqe failed";
        break;
      }
      if (cqe->res < 0 && failure.empty()) failure = std::strerror(-cqe->res);
      io_uring_cqe_seen(&ring, cqe);
    }
    times.push_back(now_seconds() - t0);
  }
  io_uring_queue_exit(&ring);
  ::close(fd);
  if (!failure.empty()) throw Error("raw reads of '" + path + "' failed: " + failure);
  return {reads, percentile(times, 0.5), percentile(times, 0.99)};
}

RequestSource::RequestSource(std::vector<std::vector<std::int64_t>> documents)
    : documents_(std::move(documents)), used_(documents_.size(), 0) {}

std::vector<std::int64_t> RequestSource::take(std::int64_t n) {
  const std::size_t want = static_cast<std::size_t>(std::max<std::int64_t>(n, 0));
  for (std::size_t tried = 0; tried < documents_.size(); ++tried) {
    const std::size_t d = next_;
    next_ = (next_ + 1) % documents_.size();
    if (documents_[d].size() - used_[d] < want) continue;
    std::vector<std::int64_t> out(documents_[d].begin() + static_cast<std::ptrdiff_t>(used_[d]),
                                  documents_[d].begin() + static_cast<std::ptrdiff_t>(used_[d] + want));
    used_[d] += want;
    return out;
  }
  throw Error("the held-out text has no document with " + std::to_string(n) +
              " unused tokens left (fewer steps, a smaller batch or more text)");
}

void RequestSource::rewind() {
  std::fill(used_.begin(), used_.end(), 0);
  next_ = 0;
}

// The held-out file's documents as token ids (DeepSeek-V3's tokenizer).
std::vector<std::vector<std::int64_t>> held_out_documents(const std::string& tokenizer_path, const std::string& path) {
  const bpe::Tokenizer tokenizer = bpe::Tokenizer::load(tokenizer_path);
  bpe::Encoder encoder(tokenizer);
  const MappedFile file(path);
  std::vector<std::vector<std::int64_t>> docs;
  for (std::string_view doc : split_documents(file.view())) {
    const std::vector<std::int32_t> ids = encoder.encode(doc);
    if (!ids.empty()) docs.emplace_back(ids.begin(), ids.end());
  }
  if (docs.empty()) throw Error("held-out text '" + path + "' has no documents");
  return docs;
}

}  // namespace hashmem::bench
