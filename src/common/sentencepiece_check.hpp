// Checks what libsentencepiece (0.1.97, Debian 12) trusts in a serialized model without checking it itself: the
// precompiled character maps of the normalizer and the denormalizer. A map is a darts-clone double-array trie over
// input bytes whose leaves point at NUL-terminated replacement strings; the library walks it with no bounds checks,
// reads a leaf's string up to its NUL, and keeps at most 32 prefix matches per position in a stack array while
// looping over however many the trie reports. A hostile map therefore makes Encode, Decode or even Load (which
// encodes the model's self-test sentences) read out of bounds. Found by fuzz_sentencepiece (docs/fuzzing.md).
//
// libsentencepiece ships neither its .proto nor its generated classes (and bundles its own protobuf), so the two
// fields are found with a minimal walk of the protobuf wire format (varint keys, length-delimited fields).
//
// Threads: reentrant. Errors: hashmem::Error naming `what` and the problem.
#pragma once

#include <string>
#include <string_view>

namespace hashmem {

// Throws Error("<what>: ...") if a precompiled character map of the model `model` (normalizer_spec or
// denormalizer_spec) could be walked out of bounds. Anything else about the model is left to the library.
void check_sentencepiece_model(std::string_view model, const std::string& what);

}  // namespace hashmem
