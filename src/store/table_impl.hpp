// Table::Impl, shared by the files of store::Table: table.cpp (open, prefetch, gather, stats), update.cpp
// (apply_rows, Adam's moments) and checkpoint.cpp. The rows themselves live in a TierBackend (tier_backend.hpp).
#pragma once

#include <memory>
#include <shared_mutex>
#include <string>
#include <vector>

#include "hashmem/store.hpp"
#include "store/tier_backend.hpp"

namespace hashmem::store {

struct Table::Impl {
  std::string path;
  TableInfo info;
  OpenOptions opt;
  std::vector<std::int64_t> base;  // global row id of each tensor's row 0
  std::shared_mutex rw;            // gathers shared; apply_rows and checkpoints exclusive
  std::unique_ptr<TierBackend> tier;
  std::unique_ptr<Table> moments;  // Adam's per-row moments, opened on first use (update.cpp)

  // Throws Error naming the table when `tensor` or a row id is out of range.
  void check_rows(int tensor, const std::int64_t* rows, std::size_t n) const;
  // The Adam moments table "<path>.adam" ([m | v] f32 per row), created with zeros on first use and opened with
  // this table's options; on the cluster tier the pushed table "<name>.adam" (made and pushed on first use).
  // REQUIRES: rw held exclusively.
  Table& adam_moments();
  bool has_stored_moments() const;  // "<path>.adam" exists (cluster: "<name>.adam" is pushed), opened or not
  static Impl& of(Table& table) { return *table.impl_; }
};

}  // namespace hashmem::store
