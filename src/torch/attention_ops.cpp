// The attention kernels as PyTorch operators (namespace "hashmem", in libhashmem_torch.so beside ops.cpp):
//   torch.ops.hashmem.attention_exact(q, k, v, causal, scale) -> out                   autograd: q, k, v
//   torch.ops.hashmem.attention_lsh(qk, v, rounds, buckets, chunk, causal, seed)       autograd: qk, v
//   torch.ops.hashmem.attention_bucket(q, k, v, tokens, key, hash, bucket_bits, sign_bits, rounds, causal, seed)
//                                                                                       autograd: v
//   torch.ops.hashmem.attention_signatures(k, bits, seed) -> int64 signatures
//   torch.ops.hashmem.attention_signature_topk(q, k, v, signatures, top_k, sink, recent, bits, seed)
// Shapes and semantics: src/torch/attention_autograd.hpp. Float32, CPU; threads: torch::get_num_threads().
// Forward passes save what their backward needs (the log-sum-exp), so nothing is recomputed but the hashes.
#include <torch/torch.h>

#include "hashmem/attention.hpp"
#include "hashmem/error.hpp"
#include "torch/attention_autograd.hpp"

namespace {

using hashmem::attention::Dims;
using torch::Tensor;
using torch::autograd::AutogradContext;
using torch::autograd::tensor_list;

Tensor float_input(const Tensor& t, const char* op, const char* name) {
  TORCH_CHECK(t.defined() && t.device().is_cpu() && t.scalar_type() == torch::kFloat32, "hashmem.", op, ": ", name,
              " must be a float32 CPU tensor");
  TORCH_CHECK(t.dim() >= 2, "hashmem.", op, ": ", name, " must have at least 2 dimensions [..., rows, width]");
  return t.contiguous();
}

// Heads = the product of the leading dimensions, which must be the same for every input.
int64_t heads_of(const Tensor& t, int64_t trailing, const Tensor& like, const char* op, const char* name) {
  const auto lead = t.sizes().slice(0, static_cast<size_t>(t.dim() - trailing));
  const auto want = like.sizes().slice(0, static_cast<size_t>(like.dim() - 2));
  TORCH_CHECK(lead == want, "hashmem.", op, ": the leading dimensions of ", name, " ", lead,
              " must match those of the first input ", want);
  int64_t heads = 1;
  for (int64_t s : lead) heads *= s;
  return heads;
}

std::vector<int64_t> with_last(const Tensor& t, int64_t drop, int64_t last) {
  std::vector<int64_t> shape(t.sizes().begin(), t.sizes().end() - drop);
  shape.push_back(last);
  return shape;
}

template <class Fn>
void run(const char* op, Fn&& fn) {
  try {
    fn();
  } catch (const hashmem::Error& e) {
    TORCH_CHECK(false, "hashmem.", op, ": ", e.what());
  }
}

bool wants_grad(std::initializer_list<Tensor> inputs) {
  if (!torch::GradMode::is_enabled()) return false;
  for (const Tensor& t : inputs) {
    if (t.requires_grad()) return true;
  }
  return false;
}

int threads() { return static_cast<int>(torch::get_num_threads()); }

// ---- exact ----

struct ExactArgs {
  Tensor q, k, v;
  Dims dims;
  hashmem::attention::ExactOptions options;
};

ExactArgs exact_args(const Tensor& q, const Tensor& k, const Tensor& v, bool causal, double scale) {
  ExactArgs a{float_input(q, "attention_exact", "q"),
              float_input(k, "attention_exact", "k"),
              float_input(v, "attention_exact", "v"),
              {},
              {causal, scale, threads()}};
  a.dims.heads = heads_of(a.q, 2, a.q, "attention_exact", "q");
  heads_of(a.k, 2, a.q, "attention_exact", "k");
  heads_of(a.v, 2, a.q, "attention_exact", "v");
  a.dims.queries = a.q.size(-2);
  a.dims.keys = a.k.size(-2);
  a.dims.dim = a.q.size(-1);
  a.dims.value_dim = a.v.size(-1);
  TORCH_CHECK(a.k.size(-1) == a.dims.dim, "hashmem.attention_exact: k's last dimension must equal q's");
  TORCH_CHECK(a.v.size(-2) == a.dims.keys, "hashmem.attention_exact: v must have as many rows as k");
  return a;
}

std::pair<Tensor, Tensor> exact_forward(const ExactArgs& a) {
  Tensor out = torch::empty(with_last(a.q, 1, a.dims.value_dim), torch::kFloat32);
  Tensor lse = torch::empty(with_last(a.q, 2, a.dims.queries), torch::kFloat32);
  run("attention_exact", [&] {
    hashmem::attention::exact_forward(a.dims, a.q.data_ptr<float>(), a.k.data_ptr<float>(), a.v.data_ptr<float>(),
                                      out.data_ptr<float>(), lse.data_ptr<float>(), a.options);
  });
  return {out, lse};
}

class ExactFunction : public torch::autograd::Function<ExactFunction> {
 public:
  static Tensor forward(AutogradContext* ctx, Tensor q, Tensor k, Tensor v, bool causal, double scale) {
    const ExactArgs a = exact_args(q, k, v, causal, scale);
    auto [out, lse] = exact_forward(a);
    ctx->save_for_backward({a.q, a.k, a.v, out, lse});
    ctx->saved_data["causal"] = causal;
    ctx->saved_data["scale"] = scale;
    return out;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto s = ctx->get_saved_variables();
    const ExactArgs a =
        exact_args(s[0], s[1], s[2], ctx->saved_data["causal"].toBool(), ctx->saved_data["scale"].toDouble());
    const Tensor g = grads[0].contiguous();
    Tensor gq = torch::empty_like(a.q), gk = torch::empty_like(a.k), gv = torch::empty_like(a.v);
    run("attention_exact", [&] {
      hashmem::attention::exact_backward(a.dims, a.q.data_ptr<float>(), a.k.data_ptr<float>(), a.v.data_ptr<float>(),
                                         s[3].data_ptr<float>(), s[4].data_ptr<float>(), g.data_ptr<float>(),
                                         gq.data_ptr<float>(), gk.data_ptr<float>(), gv.data_ptr<float>(), a.options);
    });
    return {gq, gk, gv, Tensor(), Tensor()};
  }
};

// ---- LSH ----

struct LshArgs {
  Tensor qk, v;
  Dims dims;
  hashmem::attention::LshOptions options;
};

LshArgs lsh_args(const Tensor& qk, const Tensor& v, int64_t rounds, int64_t buckets, int64_t chunk, bool causal,
                 int64_t seed) {
  LshArgs a{float_input(qk, "attention_lsh", "qk"), float_input(v, "attention_lsh", "v"), {}, {}};
  a.dims.heads = heads_of(a.qk, 2, a.qk, "attention_lsh", "qk");
  heads_of(a.v, 2, a.qk, "attention_lsh", "v");
  a.dims.queries = a.dims.keys = a.qk.size(-2);
  a.dims.dim = a.qk.size(-1);
  a.dims.value_dim = a.v.size(-1);
  TORCH_CHECK(a.v.size(-2) == a.dims.queries, "hashmem.attention_lsh: v must have as many rows as qk");
  TORCH_CHECK(rounds >= 1 && rounds <= 64, "hashmem.attention_lsh: rounds must be in [1, 64], got ", rounds);
  a.options.rounds = static_cast<int>(rounds);
  a.options.buckets = buckets;
  a.options.chunk = chunk;
  a.options.causal = causal;
  a.options.seed = static_cast<std::uint64_t>(seed);
  a.options.threads = threads();
  return a;
}

std::pair<Tensor, Tensor> lsh_forward(const LshArgs& a) {
  Tensor out = torch::empty(with_last(a.qk, 1, a.dims.value_dim), torch::kFloat32);
  Tensor lse = torch::empty(with_last(a.qk, 2, a.dims.queries), torch::kFloat32);
  run("attention_lsh", [&] {
    hashmem::attention::lsh_forward(a.dims, a.qk.data_ptr<float>(), a.v.data_ptr<float>(), out.data_ptr<float>(),
                                    lse.data_ptr<float>(), a.options);
  });
  return {out, lse};
}

class LshFunction : public torch::autograd::Function<LshFunction> {
 public:
  static Tensor forward(AutogradContext* ctx, Tensor qk, Tensor v, int64_t rounds, int64_t buckets, int64_t chunk,
                        bool causal, int64_t seed) {
    const LshArgs a = lsh_args(qk, v, rounds, buckets, chunk, causal, seed);
    auto [out, lse] = lsh_forward(a);
    ctx->save_for_backward({a.qk, a.v, out, lse});
    ctx->saved_data["options"] = std::vector<int64_t>{rounds, buckets, chunk, causal, seed};
    return out;
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto s = ctx->get_saved_variables();
    const auto o = ctx->saved_data["options"].toIntVector();
    const LshArgs a = lsh_args(s[0], s[1], o[0], o[1], o[2], o[3] != 0, o[4]);
    const Tensor g = grads[0].contiguous();
    Tensor gqk = torch::empty_like(a.qk), gv = torch::empty_like(a.v);
    run("attention_lsh", [&] {
      hashmem::attention::lsh_backward(a.dims, a.qk.data_ptr<float>(), a.v.data_ptr<float>(), s[2].data_ptr<float>(),
                                       s[3].data_ptr<float>(), g.data_ptr<float>(), gqk.data_ptr<float>(),
                                       gv.data_ptr<float>(), a.options);
    });
    return {gqk, gv, Tensor(), Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

// ---- buckets ----

struct BucketArgs {
  Tensor q, k, v, tokens;
  Dims dims;
  hashmem::attention::BucketOptions options;
  const int64_t* token_ptr() const { return tokens.defined() && tokens.numel() ? tokens.data_ptr<int64_t>() : nullptr; }
};

BucketArgs bucket_args(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& tokens, const std::string& key,
                       const std::string& hash, int64_t bucket_bits, int64_t sign_bits, int64_t rounds, bool causal,
                       int64_t seed) {
  BucketArgs a{float_input(q, "attention_bucket", "q"),
               float_input(k, "attention_bucket", "k"),
               float_input(v, "attention_bucket", "v"),
               Tensor(),
               {},
               {}};
  a.dims.heads = heads_of(a.q, 2, a.q, "attention_bucket", "q");
  heads_of(a.k, 2, a.q, "attention_bucket", "k");
  heads_of(a.v, 2, a.q, "attention_bucket", "v");
  a.dims.queries = a.dims.keys = a.q.size(-2);
  a.dims.dim = a.q.size(-1);
  a.dims.value_dim = a.v.size(-1);
  TORCH_CHECK(a.k.sizes() == a.q.sizes(), "hashmem.attention_bucket: k must have q's shape");
  TORCH_CHECK(a.v.size(-2) == a.dims.queries, "hashmem.attention_bucket: v must have as many rows as q");
  TORCH_CHECK(key == "lsh" || key == "token", "hashmem.attention_bucket: key must be \"lsh\" or \"token\", got \"", key,
              "\"");
  TORCH_CHECK(hash == "xxh3" || hash == "sha256",
              "hashmem.attention_bucket: hash must be \"xxh3\" or \"sha256\", got \"", hash, "\"");
  auto& o = a.options;
  o.key = key == "token" ? hashmem::attention::BucketKey::token : hashmem::attention::BucketKey::lsh_bits;
  o.hash = hash == "sha256" ? hashmem::attention::BucketHash::sha256 : hashmem::attention::BucketHash::xxh3;
  o.bucket_bits = static_cast<int>(bucket_bits);
  o.sign_bits = static_cast<int>(sign_bits);
  o.rounds = static_cast<int>(rounds);
  o.causal = causal;
  o.seed = static_cast<std::uint64_t>(seed);
  o.threads = threads();
  if (o.key == hashmem::attention::BucketKey::token) {
    TORCH_CHECK(tokens.defined() && tokens.scalar_type() == torch::kInt64 &&
                    tokens.sizes() == a.q.sizes().slice(0, static_cast<size_t>(a.q.dim() - 1)),
                "hashmem.attention_bucket: tokens must be int64 of q's shape without its last dimension");
    a.tokens = tokens.contiguous();
  }
  return a;
}

Tensor bucket_forward(const BucketArgs& a) {
  Tensor out = torch::empty(with_last(a.q, 1, a.dims.value_dim), torch::kFloat32);
  run("attention_bucket", [&] {
    hashmem::attention::bucket_forward(a.dims, a.q.data_ptr<float>(), a.k.data_ptr<float>(), a.v.data_ptr<float>(),
                                       a.token_ptr(), out.data_ptr<float>(), a.options);
  });
  return out;
}

class BucketFunction : public torch::autograd::Function<BucketFunction> {
 public:
  static Tensor forward(AutogradContext* ctx, Tensor q, Tensor k, Tensor v, Tensor tokens, std::string key,
                        std::string hash, int64_t bucket_bits, int64_t sign_bits, int64_t rounds, bool causal,
                        int64_t seed) {
    const BucketArgs a = bucket_args(q, k, v, tokens, key, hash, bucket_bits, sign_bits, rounds, causal, seed);
    ctx->save_for_backward({a.q, a.k, a.v, a.tokens.defined() ? a.tokens : torch::empty({0}, torch::kInt64)});
    ctx->saved_data["key"] = key;
    ctx->saved_data["hash"] = hash;
    ctx->saved_data["options"] = std::vector<int64_t>{bucket_bits, sign_bits, rounds, causal, seed};
    return bucket_forward(a);
  }
  static tensor_list backward(AutogradContext* ctx, tensor_list grads) {
    const auto s = ctx->get_saved_variables();
    const auto o = ctx->saved_data["options"].toIntVector();
    const BucketArgs a = bucket_args(s[0], s[1], s[2], s[3], ctx->saved_data["key"].toStringRef(),
                                     ctx->saved_data["hash"].toStringRef(), o[0], o[1], o[2], o[3] != 0, o[4]);
    const Tensor g = grads[0].contiguous();
    Tensor gv = torch::empty_like(a.v);
    run("attention_bucket", [&] {
      hashmem::attention::bucket_backward(a.dims, a.q.data_ptr<float>(), a.k.data_ptr<float>(), a.token_ptr(),
                                          g.data_ptr<float>(), gv.data_ptr<float>(), a.options);
    });
    // No gradient to q, k (or tokens): the hash is piecewise constant.
    return {Tensor(), Tensor(), gv, Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor()};
  }
};

}  // namespace

namespace hashmem::torch_ops {

Tensor attention_exact(Tensor q, Tensor k, Tensor v, bool causal, double scale) {
  if (!wants_grad({q, k, v})) return exact_forward(exact_args(q, k, v, causal, scale)).first;
  return ExactFunction::apply(q, k, v, causal, scale);
}

Tensor attention_lsh(Tensor qk, Tensor v, int64_t rounds, int64_t buckets, int64_t chunk, bool causal, int64_t seed) {
  if (!wants_grad({qk, v})) return lsh_forward(lsh_args(qk, v, rounds, buckets, chunk, causal, seed)).first;
  return LshFunction::apply(qk, v, rounds, buckets, chunk, causal, seed);
}

Tensor attention_bucket(Tensor q, Tensor k, Tensor v, Tensor tokens, const std::string& key, const std::string& hash,
                        int64_t bucket_bits, int64_t sign_bits, int64_t rounds, bool causal, int64_t seed) {
  if (!wants_grad({v})) {
    return bucket_forward(bucket_args(q, k, v, tokens, key, hash, bucket_bits, sign_bits, rounds, causal, seed));
  }
  return BucketFunction::apply(q, k, v, tokens, key, hash, bucket_bits, sign_bits, rounds, causal, seed);
}

Tensor attention_signatures(Tensor k, int64_t bits, int64_t seed) {
  const Tensor kc = float_input(k, "attention_signatures", "k");
  Tensor out = torch::empty(kc.sizes().slice(0, static_cast<size_t>(kc.dim() - 1)), torch::kInt64);
  run("attention_signatures", [&] {
    hashmem::attention::simhash_signatures(kc.numel() / kc.size(-1), kc.size(-1), kc.data_ptr<float>(),
                                           static_cast<int>(bits), static_cast<std::uint64_t>(seed),
                                           reinterpret_cast<std::uint64_t*>(out.data_ptr<int64_t>()));
  });
  return out;
}

Tensor attention_signature_topk(Tensor q, Tensor k, Tensor v, Tensor signatures, int64_t top_k, int64_t sink,
                                int64_t recent, int64_t bits, int64_t seed) {
  const Tensor kc = float_input(k, "attention_signature_topk", "k"),
               vc = float_input(v, "attention_signature_topk", "v");
  TORCH_CHECK(q.defined() && q.scalar_type() == torch::kFloat32 && q.dim() == kc.dim() - 1,
              "hashmem.attention_signature_topk: q must be float32 [..., d] (one query per head of k [..., m, d])");
  const Tensor qc = q.contiguous();
  Dims d;
  d.heads = heads_of(kc, 2, kc, "attention_signature_topk", "k");
  heads_of(qc, 1, kc, "attention_signature_topk", "q");
  heads_of(vc, 2, kc, "attention_signature_topk", "v");
  d.queries = 1;
  d.keys = kc.size(-2);
  d.dim = kc.size(-1);
  d.value_dim = vc.size(-1);
  TORCH_CHECK(qc.size(-1) == d.dim && vc.size(-2) == d.keys,
              "hashmem.attention_signature_topk: q, k, v sizes disagree");
  TORCH_CHECK(signatures.scalar_type() == torch::kInt64 && signatures.numel() == d.heads * d.keys,
              "hashmem.attention_signature_topk: signatures must be int64 [..., m] (attention_signatures of k)");
  const Tensor sc = signatures.contiguous();
  hashmem::attention::SignatureOptions o;
  o.bits = static_cast<int>(bits);
  o.top_k = top_k;
  o.sink = sink;
  o.recent = recent;
  o.seed = static_cast<std::uint64_t>(seed);
  o.threads = threads();
  Tensor out = torch::empty(with_last(kc, 2, d.value_dim), torch::kFloat32);
  run("attention_signature_topk", [&] {
    hashmem::attention::signature_topk_decode(d, qc.data_ptr<float>(), kc.data_ptr<float>(), vc.data_ptr<float>(),
                                              reinterpret_cast<const std::uint64_t*>(sc.data_ptr<int64_t>()),
                                              out.data_ptr<float>(), nullptr, o);
  });
  return out;
}

}  // namespace hashmem::torch_ops

TORCH_LIBRARY_FRAGMENT(hashmem, m) {
  m.def("attention_exact", &hashmem::torch_ops::attention_exact);
  m.def("attention_lsh", &hashmem::torch_ops::attention_lsh);
  m.def("attention_bucket", [](Tensor q, Tensor k, Tensor v, Tensor tokens, std::string key, std::string hash,
                               int64_t bucket_bits, int64_t sign_bits, int64_t rounds, bool causal, int64_t seed) {
    return hashmem::torch_ops::attention_bucket(q, k, v, tokens, key, hash, bucket_bits, sign_bits, rounds, causal,
                                                seed);
  });
  m.def("attention_signatures", &hashmem::torch_ops::attention_signatures);
  m.def("attention_signature_topk", &hashmem::torch_ops::attention_signature_topk);
}
