// safetensors files of named tensors (include/hashmem/safetensors.hpp), with an xxh3 checksum per tensor.
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>
#include <xxhash.h>

#include "hashmem/error.hpp"
#include "hashmem/mapped_file.hpp"
#include "hashmem/output_file.hpp"
#include "hashmem/safetensors.hpp"

namespace hashmem {
namespace {

constexpr const char* kChecksumPrefix = "xxh3:";

std::string hex64(std::uint64_t v) {
  static const char* digits = "0123456789abcdef";
  std::string s(16, '0');
  for (int i = 15; i >= 0; --i, v >>= 4) s[static_cast<std::size_t>(i)] = digits[v & 15];
  return s;
}

std::uint64_t numel_of(const std::vector<std::int64_t>& shape) {
  std::uint64_t n = 1;
  for (std::int64_t d : shape) n *= static_cast<std::uint64_t>(d);
  return n;
}

}  // namespace

std::size_t dtype_bytes(const std::string& dtype) {
  if (dtype == "F32" || dtype == "U32") return 4;
  if (dtype == "I64") return 8;
  if (dtype == "U8") return 1;
  throw Error("unknown safetensors dtype '" + dtype + "' (known: F32, I64, U32, U8)");
}

std::int64_t SafetensorsFile::Entry::numel() const { return static_cast<std::int64_t>(numel_of(shape)); }

void write_safetensors(const std::string& path, const std::vector<TensorView>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  nlohmann::ordered_json meta = nlohmann::ordered_json::object();
  for (const auto& [k, v] : metadata) {
    if (k.rfind(kChecksumPrefix, 0) == 0) throw Error("'" + path + "': metadata key '" + k + "' is reserved");
    meta[k] = v;
  }
  std::set<std::string> names;
  std::uint64_t offset = 0;
  std::vector<std::uint64_t> sizes;
  for (const auto& t : tensors) {
    if (t.name.empty() || t.name == "__metadata__") throw Error("'" + path + "': a tensor needs a name");
    if (!names.insert(t.name).second) throw Error("'" + path + "': tensor '" + t.name + "' is given twice");
    for (std::int64_t d : t.shape) {
      if (d < 0) throw Error("'" + path + "': tensor '" + t.name + "' has a negative dimension");
    }
    const std::uint64_t bytes = numel_of(t.shape) * dtype_bytes(t.dtype);
    if (bytes > 0 && !t.data) throw Error("'" + path + "': tensor '" + t.name + "' has no data");
    header[t.name] = {{"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offset, offset + bytes}}};
    meta[kChecksumPrefix + t.name] = hex64(bytes ? XXH3_64bits(t.data, bytes) : XXH3_64bits("", 0));
    sizes.push_back(bytes);
    offset += bytes;
  }
  nlohmann::ordered_json full = nlohmann::ordered_json::object();
  full["__metadata__"] = meta;
  for (auto& [k, v] : header.items()) full[k] = v;
  std::string json = full.dump();
  json.append((8 - json.size() % 8) % 8, ' ');  // keeps the data 8-byte aligned, as the reference writer does
  OutputFile out(path);
  const std::uint64_t n = json.size();
  char len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  out.write(len, 8);
  out.write(json);
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    if (sizes[i]) out.write(static_cast<const char*>(tensors[i].data), sizes[i]);
  }
  out.commit();
}

SafetensorsFile::SafetensorsFile(const std::string& path) : path_(path), file_(std::make_unique<MappedFile>(path)) {
  const std::string_view bytes = file_->view();
  auto bad = [&](const std::string& what) { return Error("'" + path + "' is not a readable safetensors file: " + what); };
  if (bytes.size() < 8) throw bad("truncated (no header length)");
  std::uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[static_cast<std::size_t>(i)]);
  if (n > bytes.size() - 8) throw bad("truncated (the header runs past the end)");
  const auto j = nlohmann::json::parse(bytes.substr(8, n), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) throw bad("the header is not a JSON object");
  const char* data = bytes.data() + 8 + n;
  const std::uint64_t data_bytes = bytes.size() - 8 - n;
  if (j.contains("__metadata__")) {
    const auto& m = j["__metadata__"];
    if (!m.is_object()) throw bad("__metadata__ is not an object");
    for (const auto& [k, v] : m.items()) {
      if (!v.is_string()) throw bad("metadata '" + k + "' is not a string");
      metadata_[k] = v.get<std::string>();
    }
  }
  for (const auto& [name, t] : j.items()) {
    if (name == "__metadata__") continue;
    if (!t.is_object() || !t.contains("dtype") || !t.contains("shape") || !t.contains("data_offsets") ||
        !t["dtype"].is_string() || !t["shape"].is_array() || !t["data_offsets"].is_array() ||
        t["data_offsets"].size() != 2) {
      throw bad("tensor '" + name + "' lacks dtype, shape or data_offsets");
    }
    Entry e;
    e.dtype = t["dtype"].get<std::string>();
    std::size_t element = 0;
    try {
      element = dtype_bytes(e.dtype);
    } catch (const Error&) {
      throw bad("tensor '" + name + "' has unknown dtype '" + e.dtype + "'");
    }
    for (const auto& d : t["shape"]) {
      if (!d.is_number_unsigned()) throw bad("tensor '" + name + "' has a bad shape");
      e.shape.push_back(d.get<std::int64_t>());
    }
    const auto& off = t["data_offsets"];
    if (!off[0].is_number_unsigned() || !off[1].is_number_unsigned()) throw bad("tensor '" + name + "' has bad offsets");
    const std::uint64_t begin = off[0].get<std::uint64_t>(), end = off[1].get<std::uint64_t>();
    if (begin > end || end > data_bytes) throw bad("tensor '" + name + "' lies past the end of the file (truncated?)");
    if (end - begin != numel_of(e.shape) * element) throw bad("tensor '" + name + "' has the wrong number of bytes");
    e.data = data + begin;
    e.bytes = end - begin;
    const auto sum = metadata_.find(kChecksumPrefix + name);
    if (sum != metadata_.end() && sum->second != hex64(XXH3_64bits(e.data, e.bytes))) {
      throw Error("'" + path + "': tensor '" + name + "' fails its checksum: the file is damaged");
    }
    tensors_.emplace(name, std::move(e));
  }
}

SafetensorsFile::~SafetensorsFile() = default;

bool SafetensorsFile::contains(const std::string& name) const { return tensors_.count(name) > 0; }

const SafetensorsFile::Entry& SafetensorsFile::get(const std::string& name, const std::string& dtype,
                                                   const std::vector<std::int64_t>& shape) const {
  const auto it = tensors_.find(name);
  if (it == tensors_.end()) throw Error("'" + path_ + "' has no tensor '" + name + "'");
  if (it->second.dtype != dtype) {
    throw Error("'" + path_ + "': tensor '" + name + "' is " + it->second.dtype + ", expected " + dtype);
  }
  if (!shape.empty() && it->second.shape != shape) {
    auto str = [](const std::vector<std::int64_t>& s) {
      std::string r = "[";
      for (std::size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
      return r + "]";
    };
    throw Error("'" + path_ + "': tensor '" + name + "' has shape " + str(it->second.shape) + ", expected " + str(shape));
  }
  return it->second;
}

}  // namespace hashmem
