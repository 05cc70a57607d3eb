// store::Table::checkpoint / checkpoint_to: the table's current rows written as a fresh table file, atomically
// (temporary, fsync, rename: a crash or an error leaves the previous file whole), Adam's moments first.
#include <unistd.h>

#include "hashmem/error.hpp"
#include "store/format_internal.hpp"
#include "store/table_impl.hpp"

namespace hashmem::store {

void Table::checkpoint() {
  if (impl_->opt.tier == Tier::cluster) {
    // The cluster holds the table: a checkpoint writes the dirty rows back to it (checkpoint_to makes a file).
    if (!impl_->opt.writable) throw Error("table '" + impl_->path + "' was opened read-only: checkpoint needs writable = true");
    std::unique_lock<std::shared_mutex> exclusive(impl_->rw);
    if (impl_->moments) impl_->moments->checkpoint();  // Adam's moments first, as for files
    impl_->tier->flush();
    return;
  }
  checkpoint_to(impl_->path);
}

void Table::checkpoint_to(const std::string& target) {
  Impl& m = *impl_;
  if (!m.opt.writable) throw Error("table '" + m.path + "' was opened read-only: checkpoint needs writable = true");
  std::unique_lock<std::shared_mutex> exclusive(m.rw);
  // Adam's moments first: a crash between the two files leaves new moments beside old rows, which Adam tolerates
  // (the moments are running averages); the rows themselves are never half-written. Moments on disk that were
  // never loaded (no update since open) are loaded now, so a copy elsewhere carries them too.
  if (!m.moments && target != m.path && m.has_stored_moments()) m.adam_moments();
  if (m.moments) m.moments->checkpoint_to(target + ".adam");
  // The backing first holds every row's current bytes (dirty rows written back), then a fresh file is made of it.
  m.tier->flush();
  // One maker thread: the tier's read_range is called as the rest of the store calls it, from one thread.
  write_table_file(m.info, target, 1, [&](const TensorInfo& t, std::int64_t first, std::int64_t last, std::uint8_t* dst) {
    const std::size_t tensor = static_cast<std::size_t>(&t - m.info.tensors.data());
    m.tier->read_range(m.base[tensor] + first, last - first, dst);
  });
}

}  // namespace hashmem::store
