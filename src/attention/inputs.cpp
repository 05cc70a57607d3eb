// Attention inputs as a safetensors file: F32 tensors "q", "k", "v" of shape [heads, n, d] (attention.hpp).
// Layout: 8-byte little-endian header length, the JSON header, then the tensors' bytes back to back.
#include <cstring>
#include <nlohmann/json.hpp>

#include "hashmem/attention.hpp"
#include "hashmem/common.hpp"

namespace hashmem::attention {

Inputs load_inputs(const std::string& path) {
  const MappedFile file(path);
  const std::string_view bytes = file.view();
  auto fail = [&](const std::string& what) -> Error { return Error("attention inputs '" + path + "': " + what); };
  if (bytes.size() < 8) throw fail("too short for a safetensors file");
  std::uint64_t header_length = 0;
  for (int i = 7; i >= 0; --i)
    header_length = header_length << 8 | static_cast<unsigned char>(bytes[static_cast<std::size_t>(i)]);
  if (header_length > bytes.size() - 8)
    throw fail("header length " + std::to_string(header_length) + " exceeds the file");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.substr(8, header_length));
  } catch (const nlohmann::json::exception& e) {
    throw fail(std::string("header is not JSON: ") + e.what());
  }
  const std::string_view data = bytes.substr(8 + header_length);
  Inputs inputs;
  for (const char* name : {"q", "k", "v"}) {
    if (!header.contains(name)) throw fail(std::string("no tensor \"") + name + "\"");
    const auto& t = header[name];
    if (t.value("dtype", "") != "F32") throw fail(std::string("tensor \"") + name + "\" is not F32");
    const auto shape = t.value("shape", std::vector<std::int64_t>{});
    if (shape.size() != 3 || shape[0] < 1 || shape[1] < 1 || shape[2] < 1) {
      throw fail(std::string("tensor \"") + name + "\" must have shape [heads, n, d]");
    }
    if (inputs.heads == 0) {
      inputs.heads = shape[0], inputs.tokens = shape[1], inputs.dim = shape[2];
    } else if (shape[0] != inputs.heads || shape[1] != inputs.tokens || shape[2] != inputs.dim) {
      throw fail(std::string("tensor \"") + name + "\" has a different shape from \"q\"");
    }
    const auto offsets = t.value("data_offsets", std::vector<std::uint64_t>{});
    const std::uint64_t count = static_cast<std::uint64_t>(shape[0] * shape[1] * shape[2]);
    if (offsets.size() != 2 || offsets[1] < offsets[0] || offsets[1] - offsets[0] != count * 4 ||
        offsets[1] > data.size()) {
      throw fail(std::string("tensor \"") + name + "\" has bad data_offsets");
    }
    std::vector<float>& out = name[0] == 'q' ? inputs.q : name[0] == 'k' ? inputs.k : inputs.v;
    out.resize(count);
    std::memcpy(out.data(), data.data() + offsets[0], count * 4);
  }
  return inputs;
}

void save_inputs(const std::string& path, const Inputs& inputs) {
  const std::uint64_t count = static_cast<std::uint64_t>(inputs.heads * inputs.tokens * inputs.dim);
  if (inputs.heads < 1 || inputs.tokens < 1 || inputs.dim < 1)
    throw Error("save_inputs: heads, tokens and dim must be >= 1");
  if (inputs.q.size() != count || inputs.k.size() != count || inputs.v.size() != count) {
    throw Error("save_inputs: q, k and v must each hold heads·tokens·dim = " + std::to_string(count) + " values");
  }
  nlohmann::ordered_json header;
  std::uint64_t at = 0;
  for (const char* name : {"q", "k", "v"}) {
    header[name] = {
        {"dtype", "F32"}, {"shape", {inputs.heads, inputs.tokens, inputs.dim}}, {"data_offsets", {at, at + count * 4}}};
    at += count * 4;
  }
  header["__metadata__"] = {{"format", "hashmem attention inputs"}};
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' ');  // keeps the tensors 8-byte aligned
  OutputFile out(path);
  char length[8];
  for (int i = 0; i < 8; ++i) length[i] = static_cast<char>(static_cast<std::uint64_t>(text.size()) >> (8 * i));
  out.write(length, 8);
  out.write(text);
  for (const std::vector<float>* t : {&inputs.q, &inputs.k, &inputs.v}) {
    out.write(reinterpret_cast<const char*>(t->data()), t->size() * sizeof(float));
  }
  out.commit();
}

}  // namespace hashmem::attention
