// Row codecs: f32 (as is), bf16 (round to nearest even), fp8 e4m3 ("FN": bias 7, max 448, no infinities)
// with one ue8m0 scale byte (2^(s−127)) per block of 32 values, stored after the row's dim value bytes.
// These are the reference codecs; the gather loops in table.cpp call decode_row per row, and the f32 path
// is a plain copy.
#include <cmath>
#include <cstring>

#include "hashmem/error.hpp"
#include "hashmem/store.hpp"

namespace hashmem::store {
namespace {

constexpr float kFp8Max = 448.0f;
constexpr int kFp8Block = 32;

// Bit arithmetic, no libm calls: frexp/nearbyint/ldexp per value cost ~40 ns here and, called between the init's
// AVX-512 code and libm's SSE code, ~500 ns (fp8 tables were written at ~1 MB/s). Same codes as the definition:
// round to nearest even, subnormals m·2^−9, saturate at 448.
std::uint8_t float_to_e4m3(float f) {
  std::uint32_t bits;
  std::memcpy(&bits, &f, 4);
  const std::uint8_t sign = (bits >> 31) ? 0x80 : 0;
  const std::uint32_t abs_bits = bits & 0x7fffffffu;
  if (abs_bits > 0x7f800000u) return sign | 0x7f;  // NaN
  float a;
  std::memcpy(&a, &abs_bits, 4);
  if (a >= 464.0f) return sign | 0x7e;  // would round past 448: saturate (no infinities in e4m3fn)
  if (a < 0.015625f) {                  // below the smallest normal 2^−6: subnormals m·2^−9
    // a·512 < 8 is exact; adding 2^23 rounds it to an integer, to nearest even (the default rounding mode).
    const float q = (a * 512.0f + 8388608.0f) - 8388608.0f;
    return sign | static_cast<std::uint8_t>(q);  // q == 8 is exactly the smallest normal's code
  }
  int e = static_cast<int>(abs_bits >> 23) - 127;  // a = 1.m · 2^e (a is normal here)
  const std::uint32_t m = abs_bits & 0x7fffffu;
  std::uint32_t q = (m + 0x7ffffu + ((m >> 20) & 1u)) >> 20;  // the top 3 mantissa bits, rounded to nearest even
  if (q == 8) {
    q = 0;
    ++e;
  }
  const int code = ((e + 7) << 3) | static_cast<int>(q);
  return sign | static_cast<std::uint8_t>(code > 0x7e ? 0x7e : code);
}

struct E4m3Table {
  float value[256];
  E4m3Table() {
    for (int c = 0; c < 256; ++c) {
      const int e = (c >> 3) & 15, m = c & 7;
      float v = e == 0 ? std::ldexp(static_cast<float>(m), -9) : std::ldexp(1.0f + m / 8.0f, e - 7);
      if ((c & 0x7f) == 0x7f) v = NAN;
      value[c] = (c & 0x80) ? -v : v;
    }
  }
};
const E4m3Table kE4m3;

}  // namespace

DType parse_dtype(const std::string& name) {
  if (name == "f32") return DType::f32;
  if (name == "bf16") return DType::bf16;
  if (name == "fp8") return DType::fp8;
  throw Error("unknown row dtype '" + name + "' (known: f32, bf16, fp8)");
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f32: return "f32";
    case DType::bf16: return "bf16";
    case DType::fp8: return "fp8";
  }
  return "?";
}

std::size_t row_bytes(DType dtype, std::int64_t dim) {
  switch (dtype) {
    case DType::f32: return 4 * static_cast<std::size_t>(dim);
    case DType::bf16: return 2 * static_cast<std::size_t>(dim);
    case DType::fp8: return static_cast<std::size_t>(dim + dim / kFp8Block);
  }
  return 0;
}

std::uint16_t float_to_bf16(float value) {
  std::uint32_t bits;
  std::memcpy(&bits, &value, 4);
  if (std::isnan(value)) return static_cast<std::uint16_t>((bits >> 16) | 0x40);
  bits += 0x7fff + ((bits >> 16) & 1);
  return static_cast<std::uint16_t>(bits >> 16);
}

float bf16_to_float(std::uint16_t bits) {
  const std::uint32_t wide = static_cast<std::uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &wide, 4);
  return f;
}

void encode_row(DType dtype, const float* values, std::int64_t dim, std::uint8_t* row) {
  switch (dtype) {
    case DType::f32:
      std::memcpy(row, values, 4 * static_cast<std::size_t>(dim));
      return;
    case DType::bf16:
      for (std::int64_t i = 0; i < dim; ++i) {
        const std::uint16_t b = float_to_bf16(values[i]);
        std::memcpy(row + 2 * i, &b, 2);
      }
      return;
    case DType::fp8: {
      std::uint8_t* scales = row + dim;
      for (std::int64_t b = 0; b < dim / kFp8Block; ++b) {
        const float* v = values + b * kFp8Block;
        float amax = 0;  // a NaN value is skipped, as std::fmax would
        for (int i = 0; i < kFp8Block; ++i) amax = std::fabs(v[i]) > amax ? std::fabs(v[i]) : amax;
        // The smallest power of two 2^e with amax / 2^e <= 448 (e in [−127, 127]; amax 0 → e = 0).
        int e = 0;
        if (amax > 0 && std::isfinite(amax)) {
          int ex = 0;
          std::frexp(amax / kFp8Max, &ex);  // amax/448 = fr·2^ex, fr in [0.5, 1) → ceil(log2) is ex or ex−1
          e = std::ldexp(1.0f, ex - 1) >= amax / kFp8Max ? ex - 1 : ex;
          e = e < -127 ? -127 : (e > 127 ? 127 : e);
        }
        scales[b] = static_cast<std::uint8_t>(e + 127);
        // v·2^−e, exactly ldexp's single rounding: 2^−e (e in [−127, 127]) is a float, subnormal at most.
        const float inverse_scale = std::ldexp(1.0f, -e);
        for (int i = 0; i < kFp8Block; ++i) row[b * kFp8Block + i] = float_to_e4m3(v[i] * inverse_scale);
      }
      return;
    }
  }
}

void decode_row(DType dtype, const std::uint8_t* row, std::int64_t dim, float* values) {
  switch (dtype) {
    case DType::f32:
      std::memcpy(values, row, 4 * static_cast<std::size_t>(dim));
      return;
    case DType::bf16:
      for (std::int64_t i = 0; i < dim; ++i) {
        std::uint16_t b;
        std::memcpy(&b, row + 2 * i, 2);
        values[i] = bf16_to_float(b);
      }
      return;
    case DType::fp8: {
      const std::uint8_t* scales = row + dim;
      for (std::int64_t b = 0; b < dim / kFp8Block; ++b) {
        const float scale = std::ldexp(1.0f, static_cast<int>(scales[b]) - 127);
        for (int i = 0; i < kFp8Block; ++i) values[b * kFp8Block + i] = kE4m3.value[row[b * kFp8Block + i]] * scale;
      }
      return;
    }
  }
}

}  // namespace hashmem::store
