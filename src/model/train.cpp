// Training the tiny LM: batches, schedule, evaluation, checkpoints and resume (include/hashmem/model.hpp), and
// the step benchmark. Resuming is exact: a run stopped and resumed ends with the same bits as one run straight,
// because everything a step depends on is either saved (weights, AdamW moments, table rows and their Adam
// moments, row profile, loss average, metrics) or a pure function of (seed, step) (the batch, the learning rate).
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <unistd.h>

#include "hashmem/attention.hpp"
#include "hashmem/clock.hpp"
#include "hashmem/error.hpp"
#include "hashmem/mapped_file.hpp"
#include "hashmem/output_file.hpp"
#include "hashmem/progress.hpp"
#include "hashmem/safetensors.hpp"
#include "hashmem/model.hpp"
#include "hashmem/store.hpp"
#include "model/lm.hpp"
#include "model/run_files.hpp"

namespace hashmem::model {
namespace {

namespace fs = std::filesystem;
using torch::Tensor;
namespace F = torch::nn::functional;

std::string metrics_csv(const std::vector<Metric>& metrics) {
  std::ostringstream csv;
  csv.precision(8);
  csv << "step,tokens,train_loss,val_loss,lr,tokens_per_s,seconds\n";
  for (const auto& m : metrics) {
    csv << m.step << ',' << m.tokens << ',' << m.train_loss << ',';
    if (m.val_loss >= 0) csv << m.val_loss;
    csv << ',' << m.lr << ',' << m.tokens_per_s << ',' << m.seconds << '\n';
  }
  return csv.str();
}

// The windows of step `step`: a pure function of (seed, step), so resuming needs no RNG state.
Tensor batch_of(const std::vector<std::int64_t>& stream, const Config& c, std::int64_t step) {
  std::seed_seq seq{static_cast<std::uint32_t>(c.seed), static_cast<std::uint32_t>(c.seed >> 32),
                    static_cast<std::uint32_t>(step), static_cast<std::uint32_t>(static_cast<std::uint64_t>(step) >> 32)};
  std::mt19937_64 rng(seq);
  const std::uint64_t span = stream.size() - static_cast<std::size_t>(c.context);
  Tensor batch = torch::empty({c.batch, c.context + 1}, torch::kInt64);
  for (std::int64_t b = 0; b < c.batch; ++b) {
    const auto at = static_cast<std::ptrdiff_t>(rng() % span);
    std::copy(stream.begin() + at, stream.begin() + at + c.context + 1, batch[b].data_ptr<std::int64_t>());
  }
  return batch;
}

// Linear warm-up, then cosine from lr to min_lr_fraction·lr.
double lr_at(const Config& c, std::int64_t step) {
  const std::int64_t steps = c.steps();
  const std::int64_t warmup = std::max<std::int64_t>(1, static_cast<std::int64_t>(c.warmup_fraction * static_cast<double>(steps)));
  if (step < warmup) return c.lr * static_cast<double>(step + 1) / static_cast<double>(warmup);
  const double progress = static_cast<double>(step - warmup) / static_cast<double>(std::max<std::int64_t>(1, steps - warmup));
  return c.lr * (c.min_lr_fraction + (1 - c.min_lr_fraction) * 0.5 * (1 + std::cos(M_PI * progress)));
}

void fsync_directory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

// Everything one run holds: model, optimizer, memory and data.
struct Trainer {
  Config c;
  std::int64_t vocab = 0;
  std::vector<std::int64_t> train_stream, valid_stream;
  LM model{nullptr};
  std::unique_ptr<torch::optim::AdamW> optimizer;
  std::unique_ptr<engram::Memory> memory;
  std::vector<std::pair<std::string, Tensor>> params;  // named, in module order

  Trainer(const Config& config, const std::string& corpus, const std::string& compression) : c(config) {
    train_stream = token_stream(corpus + "/train.ids", kEos, &vocab);
    std::int64_t valid_vocab = 0;
    valid_stream = token_stream(corpus + "/valid.ids", kEos, &valid_vocab);
    if (valid_vocab != vocab) throw Error("corpus '" + corpus + "': train.ids and valid.ids have different vocabularies");
    if (static_cast<std::int64_t>(train_stream.size()) <= c.context + 1 ||
        static_cast<std::int64_t>(valid_stream.size()) <= c.context + 1) {
      throw Error("corpus '" + corpus + "' is shorter than one context window");
    }
    memory = make_memory(c, vocab, compression);
    torch::manual_seed(c.seed);
    model = LM(c, vocab, engram_width(c));
    std::vector<Tensor> decay, no_decay;
    for (const auto& p : model->named_parameters()) {
      params.emplace_back(p.key(), p.value());
      (decays(p.key(), p.value()) ? decay : no_decay).push_back(p.value());
    }
    const auto options = torch::optim::AdamWOptions(c.lr).betas({0.9, 0.95}).eps(1e-8);
    std::vector<torch::optim::OptimizerParamGroup> groups;
    groups.emplace_back(decay, std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(options).weight_decay(c.weight_decay)));
    groups.emplace_back(no_decay, std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(options).weight_decay(0)));
    optimizer = std::make_unique<torch::optim::AdamW>(groups, options);
  }

  std::int64_t dense_parameters() const {
    std::int64_t n = 0;
    for (const auto& [name, p] : params) n += p.numel();
    return n;
  }

  void set_lr(double lr) {
    for (auto& group : optimizer->param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);
  }

  // One training step on `batch`; the Engram rows come from `lookup` (started for this batch). Returns the loss.
  struct StepTimes {
    double lookup = 0, update = 0;
  };
  double step(const Tensor& batch, engram::Lookup& lookup, std::int64_t step_index, StepTimes* times = nullptr) {
    const double lr = lr_at(c, step_index);
    set_lr(lr);
    const Tensor x = batch.narrow(1, 0, c.context), y = batch.narrow(1, 1, c.context);
    std::vector<Tensor> gathered(memory ? memory->tensors() : 0);
    std::size_t next = 0;
    MemoryFn mem = [&](std::size_t) -> Tensor {
      const double t0 = now_seconds();
      Tensor e = gather_tensor(*memory, lookup, next);
      e.requires_grad_(true);
      gathered[next++] = e;
      if (times) times->lookup += now_seconds() - t0;
      return e;
    };
    const Tensor logits = model->forward(x, memory ? mem : MemoryFn());
    const Tensor loss = F::cross_entropy(logits.reshape({-1, vocab}), y.reshape({-1}));
    optimizer->zero_grad();
    loss.backward();
    if (c.grad_clip > 0) torch::nn::utils::clip_grad_norm_(model->parameters(), c.grad_clip);
    optimizer->step();
    if (memory) {
      const double t0 = now_seconds();
      update_memory(*memory, lookup, gathered, static_cast<float>(lr * c.engram_lr_multiplier), step_index + 1);
      if (times) times->update += now_seconds() - t0;
    }
    return loss.item<double>();
  }

  // The Engram lookup of a batch's inputs (rows counted into the profile when `count`), its reads started.
  engram::Lookup lookup_of(const Tensor& batch, bool count) {
    if (!memory) return {};
    const Tensor x = batch.narrow(1, 0, c.context).contiguous();
    return memory->lookup(x.data_ptr<std::int64_t>(), x.size(0), x.size(1), nullptr, count);
  }

  // Mean loss over validation windows of `context` tokens: `windows` evenly spaced ones, or (windows <= 0) every
  // non-overlapping window of the split.
  double evaluate(std::int64_t windows, bool engram_on) {
    torch::NoGradGuard no_grad;
    const std::int64_t T = c.context;
    const std::int64_t whole = (static_cast<std::int64_t>(valid_stream.size()) - 1) / T;
    const std::int64_t n = windows <= 0 ? whole : std::min(windows, whole);
    auto start_of = [&](std::int64_t w) {
      return windows <= 0 ? w * T : w * (whole - 1) / std::max<std::int64_t>(n - 1, 1) * T;
    };
    double total = 0;
    constexpr std::int64_t kPerBatch = 32;
    for (std::int64_t w0 = 0; w0 < n; w0 += kPerBatch) {
      const std::int64_t nb = std::min(kPerBatch, n - w0);
      Tensor batch = torch::empty({nb, T + 1}, torch::kInt64);
      for (std::int64_t b = 0; b < nb; ++b) {
        const auto at = static_cast<std::ptrdiff_t>(start_of(w0 + b));
        std::copy(valid_stream.begin() + at, valid_stream.begin() + at + T + 1, batch[b].data_ptr<std::int64_t>());
      }
      const Tensor x = batch.narrow(1, 0, T), y = batch.narrow(1, 1, T);
      engram::Lookup lookup;
      if (memory && engram_on) {
        const Tensor xc = x.contiguous();
        lookup = memory->lookup(xc.data_ptr<std::int64_t>(), nb, T);
      }
      std::size_t next = 0;
      MemoryFn mem = [&](std::size_t) { return gather_tensor(*memory, lookup, next++); };
      const Tensor logits = model->forward(x, memory && engram_on ? mem : MemoryFn());
      total += F::cross_entropy(logits.reshape({-1, vocab}), y.reshape({-1})).item<double>() * static_cast<double>(nb);
    }
    return total / static_cast<double>(n);
  }

  void save_optimizer(const std::string& path) {
    std::vector<Tensor> keep;
    std::vector<TensorView> views;
    auto& state = optimizer->state();
    for (const auto& [name, p] : params) {
      const auto it = state.find(c10::guts::to_string(p.unsafeGetTensorImpl()));
      if (it == state.end()) continue;
      auto& s = static_cast<torch::optim::AdamWParamState&>(*it->second);
      for (const auto& [prefix, t] : {std::pair<std::string, Tensor>{"exp_avg.", s.exp_avg()}, {"exp_avg_sq.", s.exp_avg_sq()}}) {
        keep.push_back(t.contiguous());
        views.push_back({prefix + name, "F32", keep.back().sizes().vec(), keep.back().data_ptr<float>()});
      }
    }
    write_safetensors(path, views, {{"format", "hashmem-adamw"}});
  }

  void load_optimizer(const std::string& path, std::int64_t adam_step) {
    const SafetensorsFile file(path);
    auto& state = optimizer->state();
    for (const auto& [name, p] : params) {
      if (!file.contains("exp_avg." + name)) continue;
      auto s = std::make_unique<torch::optim::AdamWParamState>();
      s->step(adam_step);
      auto load = [&](const std::string& key) {
        const auto& e = file.get(key, "F32", p.sizes().vec());
        return torch::from_blob(const_cast<void*>(e.data), p.sizes(), torch::kFloat32).clone();
      };
      s->exp_avg(load("exp_avg." + name));
      s->exp_avg_sq(load("exp_avg_sq." + name));
      state[c10::guts::to_string(p.unsafeGetTensorImpl())] = std::move(s);
    }
  }
};

const char* kCheckpointFiles[] = {"model.safetensors", "optimizer.safetensors", "state.json"};

// Writes out/checkpoint.new completely, then swaps it in: checkpoint → checkpoint.old, checkpoint.new →
// checkpoint, remove checkpoint.old. A crash leaves at least one complete checkpoint (read_checkpoint_dir).
void write_checkpoint(const std::string& out, Trainer& t, const RunState& s) {
  const std::string next = out + "/checkpoint.new", current = out + "/checkpoint", old = out + "/checkpoint.old";
  fs::remove_all(next);
  fs::create_directories(next);
  save_weights(*t.model, next + "/model.safetensors");
  t.save_optimizer(next + "/optimizer.safetensors");
  if (t.memory) {
    t.memory->table().checkpoint_to(next + "/engram.safetensors");
    t.memory->write_profile(next + "/row-profile.safetensors");
  }
  write_file_atomically(next + "/state.json",
                        run_state_json(s, t.memory != nullptr, {t.train_stream.size(), t.valid_stream.size()}));
  fsync_directory(next);
  if (fs::exists(current)) {
    fs::remove_all(old);
    fs::rename(current, old);
  }
  fs::rename(next, current);
  fsync_directory(out);
  fs::remove_all(old);
}

RunState read_state(const std::string& dir) {
  const std::string path = dir + "/state.json";
  const MappedFile file(path);
  return parse_run_state(file.view(), path);
}

void load_checkpoint(const std::string& dir, Trainer& t, RunState* s) {
  for (const char* f : kCheckpointFiles) {
    if (!fs::exists(dir + "/" + f)) throw Error("checkpoint '" + dir + "' is incomplete: " + f + " is missing");
  }
  *s = read_state(dir);
  load_weights(*t.model, dir + "/model.safetensors");
  t.load_optimizer(dir + "/optimizer.safetensors", s->step);
  if (t.memory) {
    const std::string table = dir + "/engram.safetensors";
    const auto damaged = store::verify_table(table);
    if (!damaged.empty()) throw Error("Engram table '" + table + "' is damaged: " + damaged.front());
    store::OpenOptions oo;
    oo.writable = true;
    t.memory->open(table, oo);
    t.memory->read_profile(dir + "/row-profile.safetensors");
  }
}

nlohmann::ordered_json summary_json(const Config& c, const TrainResult& r) {
  return {{"engram", c.engram},
          {"ablate", c.ablate},
          {"seed", c.seed},
          {"steps", r.steps},
          {"tokens", r.tokens},
          {"finished", r.finished},
          {"val_loss", r.val_loss},
          {"val_perplexity", std::exp(r.val_loss)},
          {"val_loss_engram_off", r.val_loss_engram_off},
          {"first_train_loss", r.first_train_loss},
          {"last_train_loss", r.last_train_loss},
          {"dense_parameters", r.dense_parameters},
          {"table_parameters", r.table_parameters},
          {"train_flops_per_token", r.train_flops_per_token},
          {"tokens_per_s", r.tokens_per_s},
          {"seconds", r.seconds}};
}

// Block 0's attention inputs on the first 64 K validation tokens, in the format `bench attention --inputs
// captured` reads (attention::save_inputs).
void dump_qkv(Trainer& t, const std::string& path) {
  torch::NoGradGuard no_grad;
  const std::int64_t n = std::min<std::int64_t>(65536, static_cast<std::int64_t>(t.valid_stream.size()));
  const Tensor ids = torch::from_blob(t.valid_stream.data(), {1, n}, torch::kInt64).clone();
  const auto [cos, sin] = t.model->rope_tables(0, n);
  const auto qkv = t.model->blocks[0]->qkv_of(t.model->emb->forward(ids), cos, sin);
  attention::Inputs in;
  in.heads = qkv[0].size(1);
  in.tokens = n;
  in.dim = qkv[0].size(3);
  std::vector<float>* out[] = {&in.q, &in.k, &in.v};
  for (int i = 0; i < 3; ++i) {
    const Tensor x = qkv[static_cast<std::size_t>(i)].squeeze(0).contiguous();
    out[i]->assign(x.data_ptr<float>(), x.data_ptr<float>() + x.numel());
  }
  attention::save_inputs(path, in);
}

}  // namespace

TrainResult train(const TrainOptions& o) {
  if (o.out.empty()) throw Error("train: give a run directory (--out)");
  Config c = o.config;
  if (o.resume) {
    c = read_run_config(o.out);
  } else if (fs::exists(o.out + "/config.json") || fs::exists(o.out + "/checkpoint")) {
    throw Error("'" + o.out + "' already holds a run: continue it with --resume, or choose another --out");
  }
  validate(c);
  if (o.stop_after < 0) throw Error("train: --stop-after must be >= 0");
  torch::set_num_threads(c.threads);
  fs::create_directories(o.out);

  Trainer t(c, o.corpus, o.compression);
  RunState s;
  const std::string init_table = o.out + "/.engram-init.safetensors";
  if (o.resume) {
    fs::remove_all(o.out + "/checkpoint.new");  // an interrupted checkpoint: the complete one is kept
    load_checkpoint(checkpoint_dir(o.out), t, &s);
    const std::vector<std::size_t> here = {t.train_stream.size(), t.valid_stream.size()};
    if (!s.corpus_tokens.empty() && s.corpus_tokens != here) {
      throw Error("corpus '" + o.corpus + "' is not the one run '" + o.out + "' was trained on (" +
                  std::to_string(here[0]) + " training tokens, the run's " + std::to_string(s.corpus_tokens[0]) + ")");
    }
  } else {
    write_file_atomically(o.out + "/config.json", config_to_json(c) + "\n");
    if (t.memory) {
      t.memory->create(init_table, c.seed, static_cast<float>(c.engram_init_std));
      store::OpenOptions oo;
      oo.writable = true;
      t.memory->open(init_table, oo);
    }
  }

  TrainResult r;
  r.dense_parameters = t.dense_parameters();
  r.table_parameters = t.memory ? t.memory->table().info().total_rows() * c.engram_row_dim : 0;
  r.train_flops_per_token = train_flops_per_token(t.model, c);
  const std::int64_t steps = c.steps();
  const std::int64_t end = o.stop_after > 0 ? std::min(steps, s.step + o.stop_after) : steps;
  const std::int64_t tokens_per_step = c.batch * c.context;
  const std::int64_t first_step = s.step;
  const double t_start = now_seconds();
  double train_seconds = 0;  // this call's (the progress line); s.train_seconds is the run's

  Progress progress(c.engram ? "train (engram)" : "train (baseline)", static_cast<std::uint64_t>(steps));
  Tensor batch = batch_of(t.train_stream, c, s.step);
  engram::Lookup lookup = t.lookup_of(batch, true);
  for (std::int64_t step = s.step; step < end; ++step) {
    const double t0 = now_seconds();
    const double loss = t.step(batch, lookup, step);
    // The next step's rows are known from its tokens: start reading them now (they are gathered as of the
    // gather, so this step's updates, applied above, are seen).
    if (step + 1 < end) {
      batch = batch_of(t.train_stream, c, step + 1);
      lookup = t.lookup_of(batch, true);
    }
    train_seconds += now_seconds() - t0;
    if (step == 0) s.first_train_loss = s.smooth_loss = loss;
    s.smooth_loss = 0.95 * s.smooth_loss + 0.05 * loss;
    s.step = step + 1;
    s.train_seconds += now_seconds() - t0;
    const bool eval = s.step % c.eval_every == 0 || s.step == steps;
    Metric m;
    m.step = s.step;
    m.tokens = s.step * tokens_per_step;
    m.train_loss = loss;
    m.lr = lr_at(c, step);
    m.seconds = s.train_seconds;
    m.tokens_per_s = static_cast<double>(m.tokens) / s.train_seconds;
    if (eval) m.val_loss = t.evaluate(c.eval_windows, true);
    s.metrics.push_back(m);
    if (eval) write_file_atomically(o.out + "/metrics.csv", metrics_csv(s.metrics));  // curves while it runs
    if (o.progress) {
      std::ostringstream label;
      label.precision(4);
      label << (c.engram ? "train (engram) loss " : "train (baseline) loss ") << s.smooth_loss << ", "
            << static_cast<std::int64_t>(static_cast<double>((s.step - first_step) * tokens_per_step) / train_seconds)
            << " tokens/s";
      for (auto it = s.metrics.rbegin(); it != s.metrics.rend(); ++it) {
        if (it->val_loss >= 0) {
          label << ", val " << it->val_loss;
          break;
        }
      }
      progress.set_label(label.str());
      progress.update(static_cast<std::uint64_t>(s.step));
    }
    if (c.checkpoint_every > 0 && s.step % c.checkpoint_every == 0 && s.step < end) write_checkpoint(o.out, t, s);
  }
  progress.finish();

  r.finished = s.step == steps;
  r.steps = s.step;
  r.tokens = s.step * tokens_per_step;
  r.tokens_per_s = s.train_seconds > 0 ? static_cast<double>(r.tokens) / s.train_seconds : 0;
  r.first_train_loss = s.first_train_loss;
  const std::size_t last = std::max<std::size_t>(1, s.metrics.size() / 10);
  for (std::size_t i = s.metrics.size() - std::min(last, s.metrics.size()); i < s.metrics.size(); ++i) {
    r.last_train_loss += s.metrics[i].train_loss / static_cast<double>(std::min(last, s.metrics.size()));
  }
  // The honest number: (by default) every validation window, with the memory on and (for Engram) off.
  r.val_loss = t.evaluate(c.final_eval_windows, true);
  if (t.memory) r.val_loss_engram_off = t.evaluate(c.final_eval_windows, false);
  write_checkpoint(o.out, t, s);
  if (fs::exists(init_table)) {
    fs::remove(init_table);
    fs::remove(init_table + ".adam");
  }
  if (!o.dump_qkv.empty()) dump_qkv(t, o.dump_qkv);
  write_file_atomically(o.out + "/metrics.csv", metrics_csv(s.metrics));
  r.seconds = now_seconds() - t_start;
  write_file_atomically(o.out + "/summary.json", summary_json(c, r).dump(2) + "\n");
  return r;
}

StepBenchResult bench_step(const TrainOptions& o, std::int64_t steps, int rounds) {
  Config c = o.config;
  validate(c);
  if (!c.engram) throw Error("bench step: the config must have Engram on (the baseline is the same config without it)");
  if (steps < 1 || rounds < 1) throw Error("bench step: steps and rounds must be >= 1");
  torch::set_num_threads(c.threads);
  Config base = c;
  base.engram = false;
  base.ablate.clear();
  Trainer baseline(base, o.corpus, ""), with(c, o.corpus, o.compression);
  const std::string dir = o.out.empty() ? fs::temp_directory_path().string() : o.out;
  fs::create_directories(dir);
  const std::string table = dir + "/.bench-step-engram.safetensors";
  with.memory->create(table, c.seed, static_cast<float>(c.engram_init_std));
  store::OpenOptions oo;
  oo.writable = true;
  with.memory->open(table, oo);

  std::vector<double> base_ms, engram_ms;
  double lookup = 0, update = 0;
  std::int64_t step = 0;
  auto run = [&](Trainer& t, std::int64_t n, std::vector<double>* ms, bool timed) {
    for (std::int64_t i = 0; i < n; ++i, ++step) {
      const Tensor batch = batch_of(t.train_stream, c, step % 64);
      const double t0 = now_seconds();
      engram::Lookup rows = t.lookup_of(batch, false);
      Trainer::StepTimes times;
      times.lookup = now_seconds() - t0;  // hashing and starting the reads; the gathers add theirs
      t.step(batch, rows, std::min(step, c.steps() - 1), &times);
      if (timed) {
        ms->push_back(1000 * (now_seconds() - t0));
        lookup += times.lookup;
        update += times.update;
      }
    }
  };
  run(baseline, 3, nullptr, false);  // warm-up: allocations, thread pools, first-touch of the table
  run(with, 3, nullptr, false);
  for (int k = 0; k < rounds; ++k) {
    run(baseline, steps, &base_ms, true);
    run(with, steps, &engram_ms, true);
  }
  with.memory.reset();
  fs::remove(table);
  fs::remove(table + ".adam");
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  StepBenchResult r;
  r.steps = steps * rounds;
  r.baseline_ms = median(base_ms);
  r.engram_ms = median(engram_ms);
  r.ratio = r.engram_ms / r.baseline_ms;
  r.lookup_ms = 1000 * lookup / static_cast<double>(r.steps);
  r.update_ms = 1000 * update / static_cast<double>(r.steps);
  return r;
}

}  // namespace hashmem::model
