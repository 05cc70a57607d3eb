// libhashmem_torch.so: hashmem's kernels as PyTorch operators (namespace "hashmem"), loadable from Python with
// torch.ops.load_library and usable in torch.jit.script:
//   torch.ops.hashmem.ngram_hash(ids[B,T] int64, config_json, layer_index, row_ids) -> int64 [B,T,columns]
//   torch.ops.hashmem.engram_layer(h, e, key_w, key_b, value_w, value_b, norm1, norm2, conv_norm, conv_w,
//                                  kernel, dilation) -> out               (autograd: our backward kernels)
//   torch.classes.hashmem.Table(path, tier, dram_budget, writable)         a table of the tiered store
//   torch.ops.hashmem.table_lookup(table, tensor, rows[n] int64, anchor) -> float [n, dim]
//       autograd: the rows' gradients are summed into the table's pending buffer (duplicates summed);
//       table.step(lr) / table.adam_step(lr, step) applies them as a sparse SGD / Adam update on whatever tier
//       holds the rows (Adam's per-row moments in "<path>.adam" on the same tier).
// Empty tensors stand for absent biases / conv weights (the V4.1 variant), and an empty key_w (with empty key_b,
// norm1, norm2) for the "no gating" ablation (gate = 1). Float32 only, CPU only.
// Only src/torch/ includes torch headers (they cost ~16 s per translation unit); the attention operators are in
// attention_ops.cpp.
#include <torch/script.h>
#include <torch/torch.h>

#include <map>
#include <mutex>

#include "hashmem/error.hpp"
#include "hashmem/engram.hpp"
#include "hashmem/engram_layer.hpp"
#include "hashmem/store.hpp"
#include "torch/engram_autograd.hpp"

namespace {

using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

void check_float(const Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), "hashmem: ", name, " must be a CPU tensor");
  TORCH_CHECK(!t.defined() || t.numel() == 0 || t.scalar_type() == torch::kFloat32, "hashmem: ", name,
              " must be float32, got ", t.scalar_type());
}

Tensor from_vector(const std::vector<float>& v, const Tensor& like) {
  if (v.empty()) return torch::zeros_like(like);
  return torch::from_blob(const_cast<float*>(v.data()), like.sizes(), torch::kFloat32).clone();
}

// ---- n-gram hashing ----

const hashmem::engram::Layout& cached_layout(const std::string& config_json) {
  static std::mutex mu;
  static std::map<std::string, std::unique_ptr<hashmem::engram::Layout>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto& slot = cache[config_json];
  if (!slot) {
    slot = std::make_unique<hashmem::engram::Layout>(
        hashmem::engram::make_layout(hashmem::engram::config_from_json_text(config_json, "ngram_hash config")));
  }
  return *slot;
}

Tensor ngram_hash(Tensor ids, std::string config_json, int64_t layer_index, bool row_ids) {
  TORCH_CHECK(ids.dim() == 2 && ids.scalar_type() == torch::kInt64, "hashmem.ngram_hash: ids must be int64 [B, T]");
  try {
    const auto& layout = cached_layout(config_json);
    TORCH_CHECK(layer_index >= 0 && layer_index < static_cast<int64_t>(layout.layers.size()),
                "hashmem.ngram_hash: layer_index out of range");
    const Tensor c = ids.contiguous();
    Tensor out = torch::empty({ids.size(0), ids.size(1), layout.config.columns()}, torch::kInt64);
    hashmem::engram::hash_batch(layout, static_cast<std::size_t>(layer_index), c.data_ptr<int64_t>(), ids.size(0),
                                ids.size(1), out.data_ptr<int64_t>(), row_ids);
    return out;
  } catch (const hashmem::Error& e) {
    TORCH_CHECK(false, "hashmem.ngram_hash: ", e.what());
  }
}

// ---- the Engram layer ----

// Dims from the tensors' shapes, every weight's size checked, and views of the (contiguous) weights: no copies.
struct LayerArgs {
  hashmem::engram::LayerDims dims;
  tensor_list weights;  // contiguous
  hashmem::engram::LayerWeightsView<float> view;
};

LayerArgs layer_args(const Tensor& h, const Tensor& e, const tensor_list& weights, int64_t kernel, int64_t dilation) {
  static const char* names[] = {"key_w", "key_b", "value_w", "value_b", "norm1", "norm2", "conv_norm", "conv_w"};
  check_float(h, "h");
  check_float(e, "e");
  for (std::size_t i = 0; i < weights.size(); ++i) check_float(weights[i], names[i]);
  TORCH_CHECK(h.dim() == 4, "hashmem.engram_layer: h must be [B, T, G, H]");
  TORCH_CHECK(e.dim() == 3 && e.size(0) == h.size(0) && e.size(1) == h.size(1),
              "hashmem.engram_layer: e must be [B, T, E] with h's B and T");
  LayerArgs a;
  auto& d = a.dims;
  d.batch = h.size(0);
  d.seq = h.size(1);
  d.hc_mult = h.size(2);
  d.hidden = h.size(3);
  d.engram_dim = e.size(2);
  d.kernel = kernel;
  d.dilation = dilation;
  d.bias = weights[1].numel() > 0 || weights[3].numel() > 0;
  d.conv = weights[6].numel() > 0 || weights[7].numel() > 0;
  d.gate = weights[0].numel() > 0;  // no key_w: the "no gating" ablation (gate = 1)
  TORCH_CHECK(!d.conv || (kernel >= 1 && dilation >= 1), "hashmem.engram_layer: kernel and dilation must be >= 1");
  const int64_t G = d.hc_mult, H = d.hidden, E = d.engram_dim, gated = d.gate ? 1 : 0;
  const int64_t want[] = {gated * G * H * E, d.bias ? gated * G * H : 0, H * E, d.bias ? H : 0, gated * G * H,
                          gated * G * H, d.conv ? G * H : 0, d.conv ? G * H * kernel : 0};
  for (std::size_t i = 0; i < weights.size(); ++i) {
    TORCH_CHECK(weights[i].numel() == want[i], "hashmem.engram_layer: ", names[i], " has ", weights[i].numel(),
                " values, expected ", want[i]);
    a.weights.push_back(weights[i].contiguous());
  }
  auto ptr = [&](std::size_t i) { return a.weights[i].numel() ? a.weights[i].data_ptr<float>() : nullptr; };
  a.view = {ptr(0), ptr(1), ptr(2), ptr(3), ptr(4), ptr(5), ptr(6), ptr(7)};
  return a;
}

// The forward cache, packed into one tensor between the passes (its fields in a fixed order).
std::vector<std::vector<float>*> cache_fields(hashmem::engram::LayerCache<float>& c) {
  return {&c.key, &c.proj, &c.rk, &c.rh, &c.dot, &c.gate, &c.rv, &c.y};
}

Tensor pack(hashmem::engram::LayerCache<float>& c, std::vector<int64_t>* sizes) {
  int64_t total = 0;
  for (auto* f : cache_fields(c)) total += static_cast<int64_t>(f->size());
  Tensor t = torch::empty({total}, torch::kFloat32);
  float* p = t.data_ptr<float>();
  for (auto* f : cache_fields(c)) {
    std::copy(f->begin(), f->end(), p);
    p += f->size();
    sizes->push_back(static_cast<int64_t>(f->size()));
  }
  return t;
}

hashmem::engram::LayerCache<float> unpack(const Tensor& t, const std::vector<int64_t>& sizes) {
  hashmem::engram::LayerCache<float> c;
  const float* p = t.data_ptr<float>();
  std::size_t i = 0;
  for (auto* f : cache_fields(c)) {
    f->assign(p, p + sizes[i]);
    p += sizes[i++];
  }
  return c;
}

class EngramLayerFunction : public torch::autograd::Function<EngramLayerFunction> {
 public:
  static Tensor forward(AutogradContext* ctx, Tensor h, Tensor e, Tensor key_w, Tensor key_b, Tensor value_w,
                        Tensor value_b, Tensor norm1, Tensor norm2, Tensor conv_norm, Tensor conv_w, int64_t kernel,
                        int64_t dilation) {
    const LayerArgs a = layer_args(h, e, {key_w, key_b, value_w, value_b, norm1, norm2, conv_norm, conv_w}, kernel, dilation);
    const Tensor hc = h.contiguous(), ec = e.contiguous();
    Tensor out = torch::empty_like(hc);
    hashmem::engram::LayerCache<float> cache;
    hashmem::engram::layer_forward<float>(a.dims, a.view, hc.data_ptr<float>(), ec.data_ptr<float>(),
                                          out.data_ptr<float>(), &cache, torch::get_num_threads());
    std::vector<int64_t> sizes;
    const Tensor packed = pack(cache, &sizes);
    ctx->save_for_backward({hc, ec, key_w, key_b, value_w, value_b, norm1, norm2, conv_norm, conv_w, packed});
    ctx->saved_data["kernel"] = kernel;
    ctx->saved_data["dilation"] = dilation;
    ctx->saved_data["sizes"] = sizes;
    return out;
  }

  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto saved = ctx->get_saved_variables();
    const Tensor h = saved[0], e = saved[1];
    const tensor_list weights(saved.begin() + 2, saved.begin() + 10);
    const LayerArgs a = layer_args(h, e, weights, ctx->saved_data["kernel"].toInt(), ctx->saved_data["dilation"].toInt());
    const hashmem::engram::LayerCache<float> cache = unpack(saved[10], ctx->saved_data["sizes"].toIntVector());
    const Tensor g = grads[0].contiguous();
    Tensor gh = torch::empty_like(h), ge = torch::empty_like(e);
    hashmem::engram::LayerWeights<float> gw;
    hashmem::engram::layer_backward<float>(a.dims, a.view, h.data_ptr<float>(), e.data_ptr<float>(), cache,
                                           g.data_ptr<float>(), gh.data_ptr<float>(), ge.data_ptr<float>(), &gw,
                                           torch::get_num_threads());
    return {gh,
            ge,
            from_vector(gw.key_w, weights[0]),
            from_vector(gw.key_b, weights[1]),
            from_vector(gw.value_w, weights[2]),
            from_vector(gw.value_b, weights[3]),
            from_vector(gw.norm1, weights[4]),
            from_vector(gw.norm2, weights[5]),
            from_vector(gw.conv_norm, weights[6]),
            from_vector(gw.conv_w, weights[7]),
            Tensor(),
            Tensor()};
  }
};

// ---- tables ----

struct TorchTable : torch::CustomClassHolder {
  std::unique_ptr<hashmem::store::Table> table;
  std::mutex mu;  // the pending gradients
  std::vector<std::tuple<int64_t, std::vector<int64_t>, std::vector<float>>> pending;

  TorchTable(std::string path, std::string tier, int64_t dram_budget, bool writable) {
    try {
      hashmem::store::OpenOptions o;
      o.tier = hashmem::store::parse_tier(tier);
      o.dram_budget = static_cast<std::uint64_t>(std::max<int64_t>(dram_budget, 0));
      o.writable = writable;
      table = hashmem::store::Table::open(path, o);
    } catch (const hashmem::Error& e) {
      TORCH_CHECK(false, "hashmem.Table: ", e.what());
    }
  }
  int64_t dim() const { return table->info().dim; }
  int64_t rows(int64_t tensor) const {
    TORCH_CHECK(tensor >= 0 && tensor < static_cast<int64_t>(table->info().tensors.size()), "hashmem.Table: no tensor ", tensor);
    return table->info().tensors[static_cast<std::size_t>(tensor)].rows;
  }
  Tensor gather(int64_t tensor, Tensor rows) {
    TORCH_CHECK(rows.scalar_type() == torch::kInt64, "hashmem.Table.gather: rows must be int64");
    const Tensor flat = rows.reshape({-1}).contiguous();
    Tensor out = torch::empty({flat.numel(), dim()}, torch::kFloat32);
    try {
      table->gather(static_cast<int>(tensor), flat.data_ptr<int64_t>(), static_cast<std::size_t>(flat.numel()),
                    out.data_ptr<float>());
    } catch (const hashmem::Error& e) {
      TORCH_CHECK(false, "hashmem.Table.gather: ", e.what());
    }
    std::vector<int64_t> shape(rows.sizes().begin(), rows.sizes().end());
    shape.push_back(dim());
    return out.reshape(shape);
  }
  void accumulate(int64_t tensor, const Tensor& rows, const Tensor& grads) {
    const Tensor r = rows.reshape({-1}).contiguous(), g = grads.reshape({-1, dim()}).contiguous().to(torch::kFloat32);
    std::lock_guard<std::mutex> lock(mu);
    pending.emplace_back(tensor, std::vector<int64_t>(r.data_ptr<int64_t>(), r.data_ptr<int64_t>() + r.numel()),
                         std::vector<float>(g.data_ptr<float>(), g.data_ptr<float>() + g.numel()));
  }
  // Applies the pending row gradients (SGD, or Adam at step `adam_step` >= 1) and clears them. Returns the
  // number of row updates.
  int64_t apply(double lr, int64_t adam_step) {
    std::lock_guard<std::mutex> lock(mu);
    int64_t n = 0;
    hashmem::store::UpdateOptions u;
    u.lr = static_cast<float>(lr);
    if (adam_step > 0) {
      u.optimizer = hashmem::store::Optimizer::adam;
      u.step = adam_step;
    }
    try {
      for (auto& [tensor, rows, grads] : pending) {
        table->apply_rows(static_cast<int>(tensor), rows.data(), rows.size(), grads.data(), u);
        n += static_cast<int64_t>(rows.size());
      }
    } catch (const hashmem::Error& e) {
      TORCH_CHECK(false, "hashmem.Table.step: ", e.what());
    }
    pending.clear();
    return n;
  }
  int64_t step(double lr) { return apply(lr, 0); }
  int64_t adam_step(double lr, int64_t step_count) {
    TORCH_CHECK(step_count >= 1, "hashmem.Table.adam_step: step must be >= 1");
    return apply(lr, step_count);
  }
  void checkpoint() {
    try {
      table->checkpoint();
    } catch (const hashmem::Error& e) {
      TORCH_CHECK(false, "hashmem.Table.checkpoint: ", e.what());
    }
  }
};

class LookupFunction : public torch::autograd::Function<LookupFunction> {
 public:
  // `anchor` is any tensor that requires grad (e.g. a zero-size parameter): it connects the lookup to the graph.
  static Tensor forward(AutogradContext* ctx, c10::intrusive_ptr<TorchTable> table, int64_t tensor, Tensor rows,
                        Tensor anchor) {
    ctx->saved_data["table"] = table;
    ctx->saved_data["tensor"] = tensor;
    ctx->saved_data["rows"] = rows;
    (void)anchor;
    return table->gather(tensor, rows);
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    auto table = ctx->saved_data["table"].toCustomClass<TorchTable>();
    table->accumulate(ctx->saved_data["tensor"].toInt(), ctx->saved_data["rows"].toTensor(), grads[0]);
    return {Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

Tensor table_lookup(c10::intrusive_ptr<TorchTable> table, int64_t tensor, Tensor rows, Tensor anchor) {
  return LookupFunction::apply(table, tensor, rows, anchor);
}

}  // namespace

namespace hashmem::torch_ops {

using torch::Tensor;
using torch::autograd::tensor_list;

Tensor engram_layer(Tensor h, Tensor e, Tensor key_w, Tensor key_b, Tensor value_w, Tensor value_b, Tensor norm1,
                    Tensor norm2, Tensor conv_norm, Tensor conv_w, int64_t kernel, int64_t dilation) {
  const tensor_list all = {h, e, key_w, key_b, value_w, value_b, norm1, norm2, conv_norm, conv_w};
  bool needs_grad = false;
  for (const Tensor& t : all) needs_grad |= t.requires_grad();
  if (!torch::GradMode::is_enabled() || !needs_grad) {
    // Inference: no autograd node, no cache kept for a backward pass.
    const LayerArgs a = layer_args(h, e, {key_w, key_b, value_w, value_b, norm1, norm2, conv_norm, conv_w}, kernel, dilation);
    const Tensor hc = h.contiguous(), ec = e.contiguous();
    Tensor out = torch::empty_like(hc);
    hashmem::engram::layer_forward<float>(a.dims, a.view, hc.data_ptr<float>(), ec.data_ptr<float>(),
                                          out.data_ptr<float>(), nullptr, torch::get_num_threads());
    return out;
  }
  return EngramLayerFunction::apply(h, e, key_w, key_b, value_w, value_b, norm1, norm2, conv_norm, conv_w, kernel,
                                    dilation);
}

}  // namespace hashmem::torch_ops

TORCH_LIBRARY(hashmem, m) {
  m.class_<TorchTable>("Table")
      .def(torch::init<std::string, std::string, int64_t, bool>())
      .def("dim", &TorchTable::dim)
      .def("rows", &TorchTable::rows)
      .def("gather", &TorchTable::gather)
      .def("step", &TorchTable::step)
      .def("adam_step", &TorchTable::adam_step)
      .def("checkpoint", &TorchTable::checkpoint);
  m.def("ngram_hash", &ngram_hash);
  m.def("engram_layer", &hashmem::torch_ops::engram_layer);
  m.def("table_lookup", &table_lookup);
}
