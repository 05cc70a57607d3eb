// torch.classes.hashmem.Session: engram::Session (include/hashmem/session.hpp) for an inference engine in Python
// or TorchScript; the same sessions as the C API, outputs as new CPU tensors.
//   s = torch.classes.hashmem.Session(table_path, tier, dram_budget, compression_path)   ("" = identity)
//   id = s.add(); s.remove(id); s.requests() -> List[int]; s.clone() -> a session on the same table, no requests
//   s.prefill(id, tokens[n] int64, dtype) -> [n, layers, columns, dim]
//   s.prefill_batch(ids[k], lengths[k], tokens[sum lengths], dtype) -> [sum lengths, layers, columns, dim]
//   s.prefetch(ids[B] int64, tokens[B] int64)            (tokens[b] is request ids[b]'s next token)
//   s.gather(dtype) -> [B, layers, columns, dim];  s.gather_layer(layer, dtype) -> [B, columns, dim];  s.cancel()
//   s.gather_into(out), s.gather_layer_into(layer, out): the same into a caller's tensor (dtype from out)
// dtype: "float32" or "bfloat16". Every hashmem::Error becomes a RuntimeError with the Session's message.
#include <torch/script.h>
#include <torch/torch.h>

#include <memory>
#include <string>

#include "hashmem/error.hpp"
#include "hashmem/session.hpp"

namespace {

using torch::Tensor;

bool is_bf16(const std::string& dtype) {
  if (dtype == "bfloat16") return true;
  TORCH_CHECK(dtype == "float32", "hashmem.Session: dtype must be \"float32\" or \"bfloat16\", not \"", dtype, "\"");
  return false;
}

// A 1-D int64 CPU tensor, contiguous.
Tensor ids_of(const Tensor& t, const char* what) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == torch::kInt64 && t.dim() == 1, "hashmem.Session: ", what,
              " must be a 1-D int64 CPU tensor, got ", t.scalar_type(), " ", t.sizes());
  return t.contiguous();
}

struct TorchSession : torch::CustomClassHolder {
  std::unique_ptr<hashmem::engram::Session> session;

  TorchSession(std::string table_path, std::string tier, int64_t dram_budget, std::string compression_path) {
    TORCH_CHECK(dram_budget >= 0, "hashmem.Session: dram_budget must be >= 0, got ", dram_budget);
    try {
      hashmem::engram::SessionOptions o;
      o.store.tier = hashmem::store::parse_tier(tier);
      o.store.dram_budget = static_cast<std::uint64_t>(dram_budget);
      o.compression_path = compression_path;
      session = hashmem::engram::Session::open(table_path, o);
    } catch (const hashmem::Error& e) {
      TORCH_CHECK(false, "hashmem.Session: ", e.what());
    }
  }

  explicit TorchSession(std::unique_ptr<hashmem::engram::Session> opened) : session(std::move(opened)) {}

  // A session on the same table, with no requests (for another thread; see session.hpp).
  c10::intrusive_ptr<TorchSession> clone() const { return c10::make_intrusive<TorchSession>(session->clone()); }

  // Runs `body`, turning hashmem::Error into a RuntimeError naming the method.
  template <class Body>
  auto guarded(const char* method, Body&& body) {
    try {
      return body();
    } catch (const hashmem::Error& e) {
      TORCH_CHECK(false, "hashmem.Session.", method, ": ", e.what());
    }
  }

  int64_t layers() const { return session->layers(); }
  int64_t columns() const { return session->columns(); }
  int64_t dim() const { return session->dim(); }
  std::vector<int64_t> layer_ids() const { return session->layer_ids(); }
  int64_t add() { return session->add(); }
  void remove(int64_t id) {
    guarded("remove", [&] { session->remove(id); });
  }
  std::vector<int64_t> requests() const { return session->requests(); }
  int64_t step_batch() const { return session->step_batch(); }
  void cancel() { session->cancel(); }

  // [n, layers, columns, dim] (prefill, gather) or [n, columns, dim] (gather_layer), filled by `fill`.
  template <class Fill>
  Tensor filled(std::vector<int64_t> shape, const std::string& dtype, Fill&& fill) {
    const bool bf16 = is_bf16(dtype);
    Tensor out = torch::empty(shape, bf16 ? torch::kBFloat16 : torch::kFloat32);
    if (bf16) {
      fill(reinterpret_cast<std::uint16_t*>(out.data_ptr<at::BFloat16>()));
    } else {
      fill(out.data_ptr<float>());
    }
    return out;
  }

  Tensor prefill(int64_t id, Tensor tokens, std::string dtype) {
    const Tensor t = ids_of(tokens, "tokens");
    return guarded("prefill", [&] {
      return filled({t.numel(), layers(), columns(), dim()}, dtype,
                    [&](auto* out) { session->prefill(id, t.data_ptr<int64_t>(), t.numel(), out); });
    });
  }

  // Several prompts: request ids[i] gets the next lengths[i] of the concatenated `tokens`.
  Tensor prefill_batch(Tensor ids, Tensor lengths, Tensor tokens, std::string dtype) {
    const Tensor i = ids_of(ids, "ids"), n = ids_of(lengths, "lengths"), t = ids_of(tokens, "tokens");
    TORCH_CHECK(i.numel() == n.numel(), "hashmem.Session.prefill_batch: ", i.numel(), " request ids but ", n.numel(),
                " lengths");
    TORCH_CHECK(n.numel() == 0 || (n.min().item<int64_t>() >= 0 && n.sum().item<int64_t>() == t.numel()),
                "hashmem.Session.prefill_batch: the lengths must be >= 0 and add up to the ", t.numel(), " tokens");
    return guarded("prefill_batch", [&] {
      return filled({t.numel(), layers(), columns(), dim()}, dtype, [&](auto* out) {
        session->prefill_batch(i.data_ptr<int64_t>(), n.data_ptr<int64_t>(), i.numel(), t.data_ptr<int64_t>(), out);
      });
    });
  }

  void prefetch(Tensor ids, Tensor tokens) {
    const Tensor i = ids_of(ids, "ids"), t = ids_of(tokens, "tokens");
    TORCH_CHECK(i.numel() == t.numel(), "hashmem.Session.prefetch: ", i.numel(), " request ids but ", t.numel(),
                " tokens (one token per request)");
    guarded("prefetch", [&] { session->prefetch(i.data_ptr<int64_t>(), t.data_ptr<int64_t>(), i.numel()); });
  }

  Tensor gather(std::string dtype) {
    return guarded("gather", [&] {
      return filled({session->step_batch(), layers(), columns(), dim()}, dtype,
                    [&](auto* out) { session->gather(out); });
    });
  }

  // Into a caller's tensor (e.g. pinned memory an engine copies to the GPU from): contiguous CPU, float32 or
  // bfloat16, of exactly `shape`.
  template <class Fill>
  void into(Tensor out, const std::vector<int64_t>& shape, const char* method, Fill&& fill) {
    TORCH_CHECK(out.device().is_cpu() && out.is_contiguous() &&
                    (out.scalar_type() == torch::kFloat32 || out.scalar_type() == torch::kBFloat16),
                "hashmem.Session.", method, ": out must be a contiguous float32 or bfloat16 CPU tensor");
    TORCH_CHECK(out.sizes() == c10::IntArrayRef(shape), "hashmem.Session.", method, ": out has shape ", out.sizes(),
                ", the step needs ", c10::IntArrayRef(shape));
    guarded(method, [&] {
      if (out.scalar_type() == torch::kBFloat16) {
        fill(reinterpret_cast<std::uint16_t*>(out.data_ptr<at::BFloat16>()));
      } else {
        fill(out.data_ptr<float>());
      }
    });
  }
  void gather_into(Tensor out) {
    into(out, {session->step_batch(), layers(), columns(), dim()}, "gather_into",
         [&](auto* p) { session->gather(p); });
  }
  void gather_layer_into(int64_t layer, Tensor out) {
    into(out, {session->step_batch(), columns(), dim()}, "gather_layer_into",
         [&](auto* p) { session->gather_layer(layer, p); });
  }

  Tensor gather_layer(int64_t layer, std::string dtype) {
    return guarded("gather_layer", [&] {
      return filled({session->step_batch(), columns(), dim()}, dtype,
                    [&](auto* out) { session->gather_layer(layer, out); });
    });
  }
};

}  // namespace

TORCH_LIBRARY_FRAGMENT(hashmem, m) {
  m.class_<TorchSession>("Session")
      .def(torch::init<std::string, std::string, int64_t, std::string>())
      .def("clone", &TorchSession::clone)
      .def("layers", &TorchSession::layers)
      .def("columns", &TorchSession::columns)
      .def("dim", &TorchSession::dim)
      .def("layer_ids", &TorchSession::layer_ids)
      .def("add", &TorchSession::add)
      .def("remove", &TorchSession::remove)
      .def("requests", &TorchSession::requests)
      .def("step_batch", &TorchSession::step_batch)
      .def("cancel", &TorchSession::cancel)
      .def("prefill", &TorchSession::prefill)
      .def("prefill_batch", &TorchSession::prefill_batch)
      .def("prefetch", &TorchSession::prefetch)
      .def("gather", &TorchSession::gather)
      .def("gather_layer", &TorchSession::gather_layer)
      .def("gather_into", &TorchSession::gather_into)
      .def("gather_layer_into", &TorchSession::gather_layer_into);
}
