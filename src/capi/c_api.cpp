// The C API (include/hashmem/c_api.h): opaque handles over store::Table, every exception turned into an
// errptr message at the boundary.
#include "hashmem/c_api.h"

#include <cstdlib>
#include <memory>
#include <string>

#include "capi/guarded.hpp"
#include "capi/open_options.hpp"
#include "hashmem/error.hpp"
#include "hashmem/store.hpp"

struct hm_table {
  std::unique_ptr<hashmem::store::Table> table;
};

struct hm_ticket {
  hashmem::store::Table* table;
  hashmem::store::Ticket ticket;
};

using hashmem::capi::guarded;

extern "C" {

const char* hm_version(void) { return hashmem::version(); }

void hm_free(void* ptr) { std::free(ptr); }

hm_table* hm_table_open(const char* path, const char* options_json, char** errptr) {
  hm_table* result = nullptr;
  guarded(errptr, "hm_table_open", [&] {
    const hashmem::store::OpenOptions options = hashmem::capi::parse_open_options(options_json);
    if (path == nullptr && options.tier != hashmem::store::Tier::cluster) throw hashmem::Error("path is NULL");
    if (path != nullptr && options.tier == hashmem::store::Tier::cluster) {
      throw hashmem::Error("path must be NULL for the cluster tier (the table is named by \"cluster\" and \"name\")");
    }
    if (path == nullptr) path = "";
    auto handle = std::make_unique<hm_table>();
    handle->table = hashmem::store::Table::open(path, options);
    result = handle.release();
  });
  return result;
}

void hm_table_close(hm_table* table) {
  if (table == nullptr) return;
  try {
    delete table;
  } catch (...) {
    // A destructor that throws would terminate anyway; nothing more to report through a void call.
  }
}

int hm_table_tensors(const hm_table* table) {
  return static_cast<int>(table->table->info().tensors.size());
}

int64_t hm_table_rows(const hm_table* table, int tensor) {
  const auto& tensors = table->table->info().tensors;
  if (tensor < 0 || static_cast<std::size_t>(tensor) >= tensors.size()) return -1;
  return tensors[static_cast<std::size_t>(tensor)].rows;
}

int64_t hm_table_dim(const hm_table* table) { return table->table->info().dim; }

void hm_table_gather_f32(hm_table* table, int tensor, const int64_t* rows, size_t n, float* out, char** errptr) {
  guarded(errptr, "hm_table_gather_f32", [&] {
    if (table == nullptr) throw hashmem::Error("table is NULL");
    if (n > 0 && (rows == nullptr || out == nullptr)) throw hashmem::Error("rows or out is NULL");
    table->table->gather(tensor, rows, n, out);
  });
}

hm_ticket* hm_table_prefetch(hm_table* table, int tensor, const int64_t* rows, size_t n, char** errptr) {
  hm_ticket* result = nullptr;
  guarded(errptr, "hm_table_prefetch", [&] {
    if (table == nullptr) throw hashmem::Error("table is NULL");
    if (n > 0 && rows == nullptr) throw hashmem::Error("rows is NULL");
    auto ticket = std::make_unique<hm_ticket>();
    ticket->table = table->table.get();
    ticket->ticket = table->table->prefetch(tensor, rows, n);
    result = ticket.release();
  });
  return result;
}

void hm_ticket_gather_f32(hm_ticket* ticket, float* out, char** errptr) {
  std::unique_ptr<hm_ticket> owned(ticket);
  guarded(errptr, "hm_ticket_gather_f32", [&] {
    if (ticket == nullptr) throw hashmem::Error("ticket is NULL");
    if (ticket->ticket.size() > 0 && out == nullptr) throw hashmem::Error("out is NULL");
    ticket->table->gather(ticket->ticket, out);
  });
}

void hm_ticket_free(hm_ticket* ticket) {
  try {
    delete ticket;
  } catch (...) {
  }
}

}  // extern "C"
