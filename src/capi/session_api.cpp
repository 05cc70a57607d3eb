// The C API's sessions (include/hashmem/c_api.h, "Sessions"): an opaque handle over engram::Session, every
// exception turned into an errptr message at the boundary (capi/guarded.hpp).
#include <cstdint>
#include <limits>
#include <memory>
#include <string>

#include "capi/guarded.hpp"
#include "capi/open_options.hpp"
#include "hashmem/c_api.h"
#include "hashmem/error.hpp"
#include "hashmem/session.hpp"

struct hm_session {
  std::unique_ptr<hashmem::engram::Session> session;
};

namespace {

using hashmem::Error;
using hashmem::capi::guarded;

hashmem::engram::Session& live(hm_session* s) {
  if (s == nullptr) throw Error("session is NULL");
  return *s->session;
}

std::int64_t as_count(std::size_t n, const char* what) {
  if (n > static_cast<std::size_t>(std::numeric_limits<std::int64_t>::max())) {
    throw Error(std::string(what) + " " + std::to_string(n) + " is too large");
  }
  return static_cast<std::int64_t>(n);
}

}  // namespace

extern "C" {

hm_session* hm_session_open(const char* table_path, const char* options_json, char** errptr) {
  hm_session* result = nullptr;
  guarded(errptr, "hm_session_open", [&] {
    const hashmem::engram::SessionOptions options = hashmem::capi::parse_session_options(options_json);
    if (table_path == nullptr && options.store.tier != hashmem::store::Tier::cluster) throw Error("table_path is NULL");
    if (table_path != nullptr && options.store.tier == hashmem::store::Tier::cluster) {
      throw Error("table_path must be NULL for the cluster tier (the table is named by \"cluster\" and \"name\")");
    }
    if (table_path == nullptr) table_path = "";
    auto handle = std::make_unique<hm_session>();
    handle->session = hashmem::engram::Session::open(table_path, options);
    result = handle.release();
  });
  return result;
}

hm_session* hm_session_clone(const hm_session* session, char** errptr) {
  hm_session* result = nullptr;
  guarded(errptr, "hm_session_clone", [&] {
    if (session == nullptr) throw Error("session is NULL");
    auto handle = std::make_unique<hm_session>();
    handle->session = session->session->clone();
    result = handle.release();
  });
  return result;
}

void hm_session_close(hm_session* session) {
  try {
    delete session;
  } catch (...) {
  }
}

int64_t hm_session_layers(const hm_session* session) { return session->session->layers(); }
int64_t hm_session_columns(const hm_session* session) { return session->session->columns(); }
int64_t hm_session_dim(const hm_session* session) { return session->session->dim(); }

int64_t hm_session_add(hm_session* session, char** errptr) {
  int64_t id = -1;
  guarded(errptr, "hm_session_add", [&] { id = live(session).add(); });
  return id;
}

void hm_session_remove(hm_session* session, int64_t id, char** errptr) {
  guarded(errptr, "hm_session_remove", [&] { live(session).remove(id); });
}

void hm_session_prefill_f32(hm_session* session, int64_t id, const int64_t* tokens, size_t n, float* out,
                            char** errptr) {
  guarded(errptr, "hm_session_prefill_f32", [&] { live(session).prefill(id, tokens, as_count(n, "n"), out); });
}

void hm_session_prefill_bf16(hm_session* session, int64_t id, const int64_t* tokens, size_t n, uint16_t* out,
                             char** errptr) {
  guarded(errptr, "hm_session_prefill_bf16", [&] { live(session).prefill(id, tokens, as_count(n, "n"), out); });
}

void hm_session_prefill_batch_f32(hm_session* session, const int64_t* ids, const int64_t* lengths, size_t count,
                                  const int64_t* tokens, float* out, char** errptr) {
  guarded(errptr, "hm_session_prefill_batch_f32",
          [&] { live(session).prefill_batch(ids, lengths, as_count(count, "count"), tokens, out); });
}

void hm_session_prefill_batch_bf16(hm_session* session, const int64_t* ids, const int64_t* lengths, size_t count,
                                   const int64_t* tokens, uint16_t* out, char** errptr) {
  guarded(errptr, "hm_session_prefill_batch_bf16",
          [&] { live(session).prefill_batch(ids, lengths, as_count(count, "count"), tokens, out); });
}

void hm_session_prefetch(hm_session* session, const int64_t* ids, const int64_t* tokens, size_t batch,
                         char** errptr) {
  guarded(errptr, "hm_session_prefetch", [&] { live(session).prefetch(ids, tokens, as_count(batch, "batch")); });
}

void hm_session_gather_f32(hm_session* session, float* out, char** errptr) {
  guarded(errptr, "hm_session_gather_f32", [&] { live(session).gather(out); });
}

void hm_session_gather_bf16(hm_session* session, uint16_t* out, char** errptr) {
  guarded(errptr, "hm_session_gather_bf16", [&] { live(session).gather(out); });
}

void hm_session_gather_layer_f32(hm_session* session, int layer, float* out, char** errptr) {
  guarded(errptr, "hm_session_gather_layer_f32", [&] { live(session).gather_layer(layer, out); });
}

void hm_session_gather_layer_bf16(hm_session* session, int layer, uint16_t* out, char** errptr) {
  guarded(errptr, "hm_session_gather_layer_bf16", [&] { live(session).gather_layer(layer, out); });
}

void hm_session_cancel(hm_session* session) {
  if (session != nullptr) session->session->cancel();
}

}  // extern "C"
