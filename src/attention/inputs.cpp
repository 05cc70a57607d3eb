// Attention inputs as a safetensors file: F32 tensors "q", "k", "v" of shape [heads, n, d] (attention.hpp),
// through the common safetensors reader/writer (checksummed).
#include <cstring>

#include "hashmem/attention.hpp"
#include "hashmem/error.hpp"
#include "hashmem/safetensors.hpp"

namespace hashmem::attention {

Inputs load_inputs(const std::string& path) {
  const SafetensorsFile file(path);
  auto fail = [&](const std::string& what) -> Error { return Error("attention inputs '" + path + "': " + what); };
  Inputs inputs;
  for (const char* name : {"q", "k", "v"}) {
    if (!file.contains(name)) throw fail(std::string("no tensor \"") + name + "\"");
    const auto& t = file.tensors().at(name);
    if (t.dtype != "F32") throw fail(std::string("tensor \"") + name + "\" is not F32");
    const auto& shape = t.shape;
    if (shape.size() != 3 || shape[0] < 1 || shape[1] < 1 || shape[2] < 1) {
      throw fail(std::string("tensor \"") + name + "\" must have shape [heads, n, d]");
    }
    if (inputs.heads == 0) {
      inputs.heads = shape[0], inputs.tokens = shape[1], inputs.dim = shape[2];
    } else if (shape[0] != inputs.heads || shape[1] != inputs.tokens || shape[2] != inputs.dim) {
      throw fail(std::string("tensor \"") + name + "\" has a different shape from \"q\"");
    }
    std::vector<float>& out = name[0] == 'q' ? inputs.q : name[0] == 'k' ? inputs.k : inputs.v;
    out.resize(static_cast<std::size_t>(t.numel()));
    std::memcpy(out.data(), t.data, t.bytes);
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
  const std::vector<std::int64_t> shape = {inputs.heads, inputs.tokens, inputs.dim};
  write_safetensors(path, {{"q", "F32", shape, inputs.q.data()}, {"k", "F32", shape, inputs.k.data()},
                           {"v", "F32", shape, inputs.v.data()}},
                    {{"format", "hashmem attention inputs"}});
}

}  // namespace hashmem::attention
