// The table file: safetensors with a 4 KiB-aligned data start, one tensor per Engram layer and a checksum
// tensor. Writing (create_table), reading the header (read_info) and checking every byte (verify_table).
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "common/file_io.hpp"
#include "common/parallel.hpp"
#include "hashmem/error.hpp"
#include "hashmem/output_file.hpp"
#include "hashmem/progress.hpp"
#include "hashmem/store.hpp"
#include "store/format_internal.hpp"
#include "store/row_init.hpp"

namespace hashmem::store {

using json = nlohmann::ordered_json;

std::uint64_t TableInfo::data_bytes() const {
  std::uint64_t total = 0;
  for (const TensorInfo& t : tensors) total += t.bytes;
  return total;
}

std::int64_t TableInfo::total_rows() const {
  std::int64_t total = 0;
  for (const TensorInfo& t : tensors) total += t.rows;
  return total;
}

namespace {

const char* safetensors_dtype(DType dtype) {
  switch (dtype) {
    case DType::f32: return "F32";
    case DType::bf16: return "BF16";
    case DType::fp8: return "U8";  // interleaved e4m3 values + ue8m0 scales: no single safetensors dtype
  }
  return "?";
}

std::uint64_t blocks_of(std::uint64_t bytes, std::uint64_t block) { return (bytes + block - 1) / block; }

// The header JSON for a table, padded with spaces so that 8 + its length is a multiple of 4096.
std::string make_header(const std::vector<TensorInfo>& tensors, DType dtype, std::int64_t dim,
                        const std::map<std::string, std::string>& metadata, std::uint64_t checksum_count) {
  json j;
  json meta = json::object();
  for (const auto& [k, v] : metadata) meta[k] = v;
  j["__metadata__"] = meta;
  std::uint64_t at = 0;
  // Shape in elements of the safetensors dtype: fp8 rows are U8 [rows, dim + dim/32].
  const std::int64_t width = dtype == DType::fp8 ? static_cast<std::int64_t>(row_bytes(dtype, dim)) : dim;
  for (const TensorInfo& t : tensors) {
    j[t.name] = {{"dtype", safetensors_dtype(dtype)}, {"shape", {t.rows, width}}, {"data_offsets", {at, at + t.bytes}}};
    at += t.bytes;
  }
  j[kChecksumTensor] = {{"dtype", "U64"}, {"shape", {checksum_count}}, {"data_offsets", {at, at + 8 * checksum_count}}};
  std::string text = j.dump();
  const std::size_t padded = (8 + text.size() + kAlign - 1) / kAlign * kAlign - 8;
  text.append(padded - text.size(), ' ');
  return text;
}

std::uint64_t get_u64(const unsigned char* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// `size` bytes at `offset` as a string (file_io's read_exact).
std::string read_bytes(int fd, std::uint64_t offset, std::size_t size, const std::string& path) {
  std::string out(size, '\0');
  read_exact(fd, offset, out.data(), size, path);
  return out;
}

}  // namespace

std::vector<TensorInfo> plan_tensors(const engram::Layout& layout, DType dtype, std::int64_t dim,
                                     std::uint64_t data_start) {
  std::vector<TensorInfo> tensors;
  std::uint64_t at = data_start;
  for (const engram::LayerLayout& l : layout.layers) {
    TensorInfo t;
    t.name = "layer." + std::to_string(l.layer_id);
    t.layer_id = l.layer_id;
    t.rows = l.rows;
    t.offset = at;
    t.bytes = static_cast<std::uint64_t>(l.rows) * row_bytes(dtype, dim);
    at += t.bytes;
    tensors.push_back(t);
  }
  return tensors;
}

std::uint64_t checksum_count(const std::vector<TensorInfo>& tensors, std::uint64_t block) {
  std::uint64_t n = 1;  // [0] is the header's
  for (const TensorInfo& t : tensors) n += blocks_of(t.bytes, block);
  return n;
}

std::string header_for(const TableInfo& info) {
  return make_header(info.tensors, info.dtype, info.dim, info.metadata, checksum_count(info.tensors, info.checksum_block));
}

TableInfo create_table(const CreateOptions& o, const std::string& path) {
  const engram::Layout layout = engram::make_layout(o.config);
  if (o.dim < 1) throw Error("table dim must be >= 1, got " + std::to_string(o.dim));
  if (o.dtype == DType::fp8 && o.dim % 32 != 0) {
    throw Error("fp8 rows need dim to be a multiple of 32 (one scale per 32 values), got " + std::to_string(o.dim));
  }
  if (o.checksum_block < kAlign || o.checksum_block % kAlign != 0) {
    throw Error("checksum block must be a positive multiple of 4096 bytes, got " + std::to_string(o.checksum_block));
  }
  if (!(o.stddev >= 0) || !std::isfinite(o.stddev)) throw Error("init stddev must be finite and >= 0");

  TableInfo info;
  info.path = path;
  info.dtype = o.dtype;
  info.dim = o.dim;
  info.row_bytes = row_bytes(o.dtype, o.dim);
  info.checksum_block = o.checksum_block;
  info.config = layout.config;
  info.metadata = {{"format", kFormatName},
                   {"format_version", "1"},
                   {"row_dtype", dtype_name(o.dtype)},
                   {"dim", std::to_string(o.dim)},
                   {"checksum", "xxh3_64"},
                   {"checksum_block_bytes", std::to_string(o.checksum_block)},
                   {"engram_config", engram::config_to_json_text(layout)},
                   {"init", o.init == Init::zeros ? "zeros" : "normal(0, " + std::to_string(o.stddev) + ")"},
                   {"seed", std::to_string(o.seed)}};
  {
    json offsets = json::object();
    for (const engram::LayerLayout& l : layout.layers) offsets[std::to_string(l.layer_id)] = l.offsets;
    info.metadata["offsets"] = offsets.dump();
  }
  if (!o.compression_sha256.empty()) info.metadata["compression_lookup_sha256"] = o.compression_sha256;
  info.tensors = plan_tensors(layout, o.dtype, o.dim, 0);
  const std::string header = header_for(info);
  info.header_bytes = 8 + header.size();
  for (TensorInfo& t : info.tensors) t.offset += info.header_bytes;
  const std::uint64_t count = checksum_count(info.tensors, o.checksum_block);
  info.checksums_offset = info.header_bytes + info.data_bytes();
  info.file_bytes = info.checksums_offset + 8 * count;

  // Called from o.threads threads at once, each making whole chunks.
  write_table_file(info, path, o.threads, [&](const TensorInfo& t, std::int64_t first, std::int64_t last,
                                               std::uint8_t* dst) {
    if (o.init == Init::zeros) {
      std::memset(dst, 0, static_cast<std::size_t>(last - first) * info.row_bytes);
      return;
    }
    const std::uint64_t key = normal_key(o.seed, t.layer_id);
    if (o.dtype == DType::f32 && reinterpret_cast<std::uintptr_t>(dst) % alignof(float) == 0) {
      // f32 rows are the stream itself (little-endian floats): made in place, no copy.
      normal_values(key, static_cast<std::uint64_t>(first) * static_cast<std::uint64_t>(o.dim),
                    static_cast<std::size_t>((last - first) * o.dim), o.stddev, reinterpret_cast<float*>(dst));
      return;
    }
    // Rows in groups of ~16 KiB of floats: the stream of a group is contiguous (value k = row·dim + j).
    const std::int64_t group = std::max<std::int64_t>(1, 4096 / o.dim);
    std::vector<float> values(static_cast<std::size_t>(group * o.dim));
    for (std::int64_t r = first; r < last; r += group) {
      const std::int64_t rows = std::min(group, last - r);
      normal_values(key, static_cast<std::uint64_t>(r) * static_cast<std::uint64_t>(o.dim),
                    static_cast<std::size_t>(rows * o.dim), o.stddev, values.data());
      for (std::int64_t i = 0; i < rows; ++i) {
        encode_row(o.dtype, values.data() + i * o.dim, o.dim, dst + static_cast<std::size_t>(r + i - first) * info.row_bytes);
      }
    }
  });
  return info;
}

TableInfo parse_header(const std::string& path, int fd, std::uint64_t file_bytes) {
  return parse_header_from(path, [&](std::uint64_t offset, std::size_t size) { return read_bytes(fd, offset, size, path); },
                           file_bytes);
}

TableInfo parse_header_from(const std::string& path, const ByteReader& read_bytes, std::uint64_t file_bytes) {
  if (file_bytes < 8) throw Error("table '" + path + "' is truncated: " + std::to_string(file_bytes) + " bytes, no header");
  const std::string prefix = read_bytes(0, 8);
  const std::uint64_t n = get_u64(reinterpret_cast<const unsigned char*>(prefix.data()));
  if (n > (100u << 20)) throw Error("table '" + path + "' is not a safetensors file (header length " + std::to_string(n) + ")");
  if (8 + n > file_bytes) throw Error("table '" + path + "' is truncated: the header needs " + std::to_string(8 + n) + " bytes, the file has " + std::to_string(file_bytes));
  const std::string header = read_bytes(8, n);
  json j = json::parse(header, nullptr, /*allow_exceptions=*/false);
  auto bad = [&](const std::string& what) { return Error("table '" + path + "' has a bad header: " + what); };
  if (j.is_discarded() || !j.is_object()) throw bad("not valid JSON");
  if (!j.contains("__metadata__") || !j["__metadata__"].is_object()) throw bad("no __metadata__");
  TableInfo info;
  info.path = path;
  info.file_bytes = file_bytes;
  info.header_bytes = 8 + n;
  for (const auto& [k, v] : j["__metadata__"].items()) {
    if (!v.is_string()) throw bad("metadata value of '" + k + "' is not a string");
    info.metadata[k] = v.get<std::string>();
  }
  auto meta = [&](const std::string& key) {
    auto it = info.metadata.find(key);
    if (it == info.metadata.end()) throw bad("metadata lacks '" + key + "' (not a hashmem table?)");
    return it->second;
  };
  if (meta("format") != kFormatName) throw bad("format is '" + meta("format") + "', not " + kFormatName);
  if (meta("format_version") != "1") throw bad("unsupported format_version " + meta("format_version"));
  try {
    info.dtype = parse_dtype(meta("row_dtype"));
    info.dim = std::stoll(meta("dim"));
    info.checksum_block = std::stoull(meta("checksum_block_bytes"));
  } catch (const std::logic_error&) {
    throw bad("dim or checksum_block_bytes is not a number");
  }
  if (info.dim < 1 || (info.dtype == DType::fp8 && info.dim % 32) || info.checksum_block < kAlign ||
      info.checksum_block % kAlign) {
    throw bad("dim " + std::to_string(info.dim) + " / checksum block " + std::to_string(info.checksum_block) + " invalid");
  }
  // Sizes are computed in uint64 below: keep them far from wrapping. (A header with dim 2^62, whose f32 rows then
  // came to 2^64 = 0 bytes, described a consistent, checksummed, empty file; found by reading the
  // fuzz_table_header target, which cannot forge the checksum itself.)
  if (static_cast<std::uint64_t>(info.dim) > file_bytes || info.checksum_block > (std::uint64_t{1} << 40)) {
    throw bad("dim " + std::to_string(info.dim) + " / checksum block " + std::to_string(info.checksum_block) +
              " larger than the file");
  }
  info.row_bytes = row_bytes(info.dtype, info.dim);
  try {
    info.config = engram::config_from_json_text(meta("engram_config"), path + " engram_config");
  } catch (const Error& e) {
    throw bad(e.what());
  }
  const engram::Layout layout = engram::make_layout(info.config);
  std::uint64_t data_bytes = 0;
  for (const engram::LayerLayout& l : layout.layers) {
    // rows · row_bytes may not wrap: a layer larger than the file is a truncated file.
    if (static_cast<std::uint64_t>(l.rows) > (file_bytes - data_bytes) / info.row_bytes) {
      throw Error("table '" + path + "' is truncated: layer " + std::to_string(l.layer_id) + " has " +
                  std::to_string(l.rows) + " rows of " + std::to_string(info.row_bytes) + " bytes, the file has " +
                  std::to_string(file_bytes));
    }
    data_bytes += static_cast<std::uint64_t>(l.rows) * info.row_bytes;
  }
  info.tensors = plan_tensors(layout, info.dtype, info.dim, info.header_bytes);
  const std::uint64_t count = checksum_count(info.tensors, info.checksum_block);
  // The header must be exactly what create_table writes for these facts (names, dtypes, shapes, offsets).
  const std::string expected = header_for(info);
  if (expected != header) throw bad("tensor list, shapes or offsets do not match its engram_config");
  if (info.header_bytes % kAlign) throw bad("data does not start at a 4 KiB boundary");
  info.checksums_offset = info.header_bytes + info.data_bytes();
  const std::uint64_t want = info.checksums_offset + 8 * count;
  if (file_bytes != want) {
    throw Error("table '" + path + "' is " + (file_bytes < want ? "truncated" : "too long") + ": " +
                std::to_string(file_bytes) + " bytes, its header describes " + std::to_string(want));
  }
  const std::string first = read_bytes(info.checksums_offset, 8);
  if (get_u64(reinterpret_cast<const unsigned char*>(first.data())) != XXH3_64bits(header.data(), header.size())) {
    throw bad("header checksum mismatch (the header was modified or damaged)");
  }
  return info;
}

TableInfo read_info(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error("cannot open table '" + path + "': " + std::strerror(errno));
  struct stat st {};
  try {
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) throw Error("table '" + path + "' is not a regular file");
    TableInfo info = parse_header(path, fd, static_cast<std::uint64_t>(st.st_size));
    ::close(fd);
    return info;
  } catch (...) {
    ::close(fd);
    throw;
  }
}

std::vector<std::string> verify_table(const std::string& path, bool show_progress) {
  const TableInfo info = read_info(path);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error("cannot open table '" + path + "': " + std::strerror(errno));
  ::posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  std::vector<std::string> damaged;
  try {
    const std::uint64_t count = checksum_count(info.tensors, info.checksum_block);
    const std::string stored = read_bytes(fd, info.checksums_offset, 8 * count, path);
    auto sum = [&](std::uint64_t i) { return get_u64(reinterpret_cast<const unsigned char*>(stored.data()) + 8 * i); };
    std::unique_ptr<Progress> progress;
    if (show_progress) progress = std::make_unique<Progress>("verify " + path, info.data_bytes());
    std::uint64_t index = 1, done = 0;
    const std::uint64_t chunk = std::max<std::uint64_t>(info.checksum_block, (16u << 20) / info.checksum_block * info.checksum_block);
    for (const TensorInfo& t : info.tensors) {
      for (std::uint64_t begin = 0; begin < t.bytes; begin += chunk) {
        const std::uint64_t end = std::min(t.bytes, begin + chunk);
        const std::string data = read_bytes(fd, t.offset + begin, end - begin, path);
        for (std::uint64_t b = begin; b < end; b += info.checksum_block, ++index) {
          const std::uint64_t h = XXH3_64bits(data.data() + (b - begin), std::min(end, b + info.checksum_block) - b);
          if (h != sum(index)) {
            damaged.push_back(t.name + " block " + std::to_string(b / info.checksum_block) + " (bytes " +
                              std::to_string(t.offset + b) + "..)");
          }
        }
        done += end - begin;
        if (progress) progress->update(done);
      }
    }
    if (progress) progress->finish();
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  return damaged;
}

}  // namespace hashmem::store
