// The few SIMD operations the attention kernels are written in: one float vector type per ISA (AVX-512, AVX2
// + FMA, else a 4-lane GCC vector that any target lowers), with loads, stores, FMA, max, horizontal reductions
// and a vectorised 2^x. Everything above this header is ISA-independent.
#pragma once

#include <cstdint>
#include <cstring>
#if defined(__AVX512F__) || defined(__AVX2__)
// GCC 12 reports its own _mm*_undefined_* helpers as uninitialised wherever they are inlined; they are not.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#if !defined(__clang__)  // a GCC-only warning (clang warns about the pragma itself)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#pragma GCC diagnostic pop
#endif

namespace hashmem::attention::simd {

#if defined(__AVX512F__)
using Vec = __m512;
constexpr int kLanes = 16;
inline Vec load(const float* p) { return _mm512_loadu_ps(p); }
inline void store(float* p, Vec v) { _mm512_storeu_ps(p, v); }
inline Vec broadcast(float x) { return _mm512_set1_ps(x); }
inline Vec fma(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
inline Vec max(Vec a, Vec b) { return _mm512_max_ps(a, b); }
inline float reduce_add(Vec v) { return _mm512_reduce_add_ps(v); }
inline float reduce_max(Vec v) { return _mm512_reduce_max_ps(v); }
#elif defined(__AVX2__) && defined(__FMA__)
using Vec = __m256;
constexpr int kLanes = 8;
inline Vec load(const float* p) { return _mm256_loadu_ps(p); }
inline void store(float* p, Vec v) { _mm256_storeu_ps(p, v); }
inline Vec broadcast(float x) { return _mm256_set1_ps(x); }
inline Vec fma(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
inline Vec max(Vec a, Vec b) { return _mm256_max_ps(a, b); }
inline float reduce_add(Vec v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
inline float reduce_max(Vec v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  return _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)));
}
#else
typedef float Vec __attribute__((vector_size(16)));
constexpr int kLanes = 4;
inline Vec load(const float* p) {
  Vec v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
inline void store(float* p, Vec v) { std::memcpy(p, &v, sizeof v); }
inline Vec broadcast(float x) { return Vec{} + x; }
inline Vec fma(Vec a, Vec b, Vec c) { return a * b + c; }
inline Vec max(Vec a, Vec b) { return a > b ? a : b; }
inline float reduce_add(Vec v) { return (v[0] + v[1]) + (v[2] + v[3]); }
inline float reduce_max(Vec v) {
  const float a = v[0] > v[1] ? v[0] : v[1], b = v[2] > v[3] ? v[2] : v[3];
  return a > b ? a : b;
}
#endif

// Same-size integer vector, for bit manipulation and position compares.
typedef std::int32_t VecI __attribute__((vector_size(sizeof(Vec))));

inline VecI load_int(const std::int32_t* p) {
  VecI v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// 2^x with a relative error below 1.2e-7 (one ulp) for x in [-126, 127]; 0 below -126 (so -inf gives 0).
// Round-to-nearest by the 1.5·2^23 shifter, then a degree-6 minimax polynomial of 2^f on [-0.5, 0.5]
// (fitted for relative error), then the exponent added to the bits.
inline Vec exp2(Vec x) {
  const Vec shifter = broadcast(12582912.0f);
  const Vec clamped = max(x, broadcast(-127.0f));
  const Vec x_ = clamped < broadcast(127.0f) ? clamped : broadcast(127.0f);
  const Vec t = x_ + shifter;
  const Vec f = x_ - (t - shifter);
  Vec p = broadcast(1.533757750e-04f);
  p = fma(p, f, broadcast(1.339985989e-03f));
  p = fma(p, f, broadcast(9.618519805e-03f));
  p = fma(p, f, broadcast(5.550329015e-02f));
  p = fma(p, f, broadcast(2.402264625e-01f));
  p = fma(p, f, broadcast(6.931471825e-01f));
  p = fma(p, f, broadcast(1.0f));
  const VecI n = (VecI)t - (VecI)shifter;
  const Vec scaled = (Vec)((VecI)p + (n << 23));
  return x < broadcast(-126.0f) ? broadcast(0.0f) : scaled;
}

}  // namespace hashmem::attention::simd
