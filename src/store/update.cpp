// store::Table::apply_rows: one optimizer step (SGD or Adam) on rows with their gradients, duplicates summed. Rows
// are changed where they live through the TierBackend's begin/end_update; Adam's per-row moments are a companion
// table "<path>.adam" on the same tier, updated the same way.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <unistd.h>

#include "cluster/cluster_device.hpp"
#include "common/parallel.hpp"
#include "hashmem/cluster.hpp"
#include "hashmem/error.hpp"
#include "store/table_impl.hpp"

namespace hashmem::store {

namespace {

CreateOptions moments_options(const TableInfo& info) {
  CreateOptions co;
  co.config = info.config;
  co.dim = 2 * info.dim;
  co.dtype = DType::f32;
  co.init = Init::zeros;
  co.checksum_block = info.checksum_block;
  return co;
}

// On the cluster tier the moments are the table "<name>.adam" on the same cluster: on first use a zero table is
// made in the temp directory, pushed (resumable: a push cut off before is completed), and removed.
std::unique_ptr<Table> open_cluster_moments(const TableInfo& info, const OpenOptions& opt) {
  OpenOptions mo = opt;
  mo.name = opt.name + ".adam";
  if (cluster::table_state(opt.cluster, mo.name) != cluster::TableState::complete) {
    const std::string tmp = (std::filesystem::temp_directory_path() /
                             ("hashmem-" + mo.name + "-" + std::to_string(::getpid()) + ".safetensors")).string();
    struct Remove {
      const std::string& path;
      ~Remove() {
        std::error_code ec;
        std::filesystem::remove(path, ec);
      }
    } remove{tmp};
    create_table(moments_options(info), tmp);
    cluster::push_table(tmp, opt.cluster, mo.name);
  }
  return Table::open("", mo);
}

}  // namespace

bool Table::Impl::has_stored_moments() const {
  if (moments) return true;
  if (opt.tier == Tier::cluster) return cluster::table_state(opt.cluster, opt.name + ".adam") == cluster::TableState::complete;
  return ::access((path + ".adam").c_str(), F_OK) == 0;
}

Table& Table::Impl::adam_moments() {
  if (moments) return *moments;
  const bool on_cluster = opt.tier == Tier::cluster;
  const std::string mpath = on_cluster ? "cluster:" + opt.name + ".adam" : path + ".adam";
  const auto check = [&](const TableInfo& mi) {
    if (mi.dim != 2 * info.dim || mi.dtype != DType::f32 || mi.total_rows() != info.total_rows()) {
      throw Error("Adam moments '" + mpath + "' do not belong to table '" + path + "' (rows, dim or dtype differ)");
    }
  };
  if (on_cluster) {
    std::unique_ptr<Table> m = open_cluster_moments(info, opt);
    check(m->info());
    moments = std::move(m);
  } else {
    if (::access(mpath.c_str(), F_OK) == 0) {
      check(read_info(mpath));
    } else {
      create_table(moments_options(info), mpath);
    }
    moments = Table::open(mpath, opt);  // same tier and hot rows: an update touches a row and its moments
  }
  return *moments;
}

namespace {

// Holds a backend's update section (begin_updates … end_updates) for a scope.
class UpdateSection {
 public:
  explicit UpdateSection(TierBackend* tier) : tier_(tier) {
    if (tier_) tier_->begin_updates();
  }
  ~UpdateSection() {
    if (tier_) tier_->end_updates();
  }
  UpdateSection(const UpdateSection&) = delete;
  UpdateSection& operator=(const UpdateSection&) = delete;

 private:
  TierBackend* tier_;
};

// begin_update … end_update of one row around fn(bytes).
template <class Fn>
void update_row(TierBackend& tier, std::int64_t g, Fn&& fn) {
  fn(tier.begin_update(g));
  tier.end_update(g);
}

void check_options(const std::string& path, bool writable, const UpdateOptions& o) {
  if (!writable) throw Error("table '" + path + "' was opened read-only: apply_rows needs writable = true");
  if (!(o.lr >= 0) || !std::isfinite(o.lr)) throw Error("learning rate must be finite and >= 0");
  if (o.optimizer == Optimizer::adam &&
      (o.step < 1 || !(o.beta1 >= 0 && o.beta1 < 1) || !(o.beta2 >= 0 && o.beta2 < 1) || !(o.eps > 0))) {
    throw Error("Adam needs step >= 1, betas in [0, 1) and eps > 0");
  }
}

}  // namespace

void Table::apply_rows(int tensor, const std::int64_t* rows, std::size_t n, const float* grads,
                       const UpdateOptions& options) {
  Impl& m = *impl_;
  check_options(m.path, m.opt.writable, options);
  m.check_rows(tensor, rows, n);
  const bool adam = options.optimizer == Optimizer::adam;
  const std::int64_t dim = m.info.dim;
  const auto d = static_cast<std::size_t>(dim);
  // Duplicate rows' gradients are summed in the order of their positions (deterministic): (row, position) pairs
  // sorted, so positions ascend within a row.
  std::vector<std::pair<std::int64_t, std::size_t>> sorted(n);
  for (std::size_t i = 0; i < n; ++i) sorted[i] = {rows[i], i};
  std::sort(sorted.begin(), sorted.end());
  std::vector<std::size_t> starts;  // where each distinct row's run starts in `sorted`, and n at the end
  for (std::size_t k = 0; k < n; ++k) {
    if (k == 0 || sorted[k].first != sorted[k - 1].first) starts.push_back(k);
  }
  starts.push_back(n);
  const auto distinct = static_cast<std::int64_t>(starts.size() - 1);

  std::unique_lock<std::shared_mutex> exclusive(m.rw);
  TierBackend* moments = nullptr;
  std::unique_lock<std::shared_mutex> moments_exclusive;
  if (adam) {
    Impl& mi = Impl::of(m.adam_moments());
    moments_exclusive = std::unique_lock<std::shared_mutex>(mi.rw);
    moments = mi.tier.get();
  }
  UpdateSection rows_section(m.tier.get()), moments_section(moments);
  const float c1 = adam ? 1.0f - std::pow(options.beta1, static_cast<float>(options.step)) : 1.0f;
  const float c2 = adam ? 1.0f - std::pow(options.beta2, static_cast<float>(options.step)) : 1.0f;
  const std::int64_t b = m.base[static_cast<std::size_t>(tensor)];
  // Distinct rows [first, last): every row is updated by exactly one caller, so ranges can run in parallel.
  auto update_rows = [&](std::int64_t first, std::int64_t last) {
    std::vector<float> value(d), grad(d), step(d), mv(2 * d);
    constexpr std::int64_t kAhead = 8;  // the row, its moments and its gradients are at random addresses
    for (std::int64_t u = first; u < last; ++u) {
      if (u + kAhead < last) {
        const std::size_t k = starts[static_cast<std::size_t>(u + kAhead)];
        const std::int64_t ahead = b + sorted[k].first;
        m.tier->prefetch_for_update(ahead);
        if (moments) moments->prefetch_for_update(ahead);
        const char* g = reinterpret_cast<const char*>(grads + sorted[k].second * d);
        for (std::size_t c = 0; c < d * sizeof(float); c += 64) __builtin_prefetch(g + c);
      }
      std::fill(grad.begin(), grad.end(), 0.0f);
      for (std::size_t k = starts[static_cast<std::size_t>(u)]; k < starts[static_cast<std::size_t>(u + 1)]; ++k) {
        const float* gsrc = grads + sorted[k].second * d;
        for (std::size_t j = 0; j < d; ++j) grad[j] += gsrc[j];
      }
      const std::int64_t g = b + sorted[starts[static_cast<std::size_t>(u)]].first;
      if (adam) {
        // Per-row moments m, v (f32, interleaved [m | v]).
        update_row(*moments, g, [&](std::uint8_t* bytes) {
          // Restrict-qualified locals (not the captured vectors) let the compiler vectorise the loop.
          float* __restrict m1 = mv.data();
          float* __restrict m2 = mv.data() + d;
          const float* __restrict gr = grad.data();
          float* __restrict st = step.data();
          const float b1 = options.beta1, b2 = options.beta2, lr = options.lr, eps = options.eps, k1 = c1, k2 = c2;
          std::memcpy(m1, bytes, 8 * d);
          for (std::size_t j = 0; j < d; ++j) {
            m1[j] = b1 * m1[j] + (1 - b1) * gr[j];
            m2[j] = b2 * m2[j] + (1 - b2) * gr[j] * gr[j];
            st[j] = lr * (m1[j] / k1) / (std::sqrt(m2[j] / k2) + eps);
          }
          std::memcpy(bytes, m1, 8 * d);
        });
      } else {
        for (std::size_t j = 0; j < d; ++j) step[j] = options.lr * grad[j];
      }
      update_row(*m.tier, g, [&](std::uint8_t* bytes) {
        decode_row(m.info.dtype, bytes, dim, value.data());
        for (std::size_t j = 0; j < d; ++j) value[j] -= step[j];
        encode_row(m.info.dtype, value.data(), dim, bytes);
      });
    }
  };
  // In-place backends update rows independently: split them over the cores when there are enough to pay for the
  // threads. Cached backends go through the cache policy and the device: one thread.
  const bool parallel = m.tier->parallel_updates() && (!moments || moments->parallel_updates());
  parallel_for(distinct, parallel && distinct >= 8192 ? 0 : 1, update_rows);
}

}  // namespace hashmem::store
