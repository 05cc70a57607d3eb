// The normal init's stream (row_init.hpp says what it is and why the vector path equals the scalar one).
// Built with -ffp-contract=off (CMakeLists.txt): no multiply may fuse with an add behind the code's back.
#include "store/row_init.hpp"

#include <cmath>

#if defined(__AVX512F__) && defined(__AVX512DQ__)
#include <immintrin.h>
// glibc's vector math library (libmvec), AVX-512 variants: 8 doubles in, 8 out.
extern "C" __m512d _ZGVeN8v_log(__m512d);
extern "C" __m512d _ZGVeN8v_sin(__m512d);
extern "C" __m512d _ZGVeN8v_cos(__m512d);
#define HASHMEM_NORMAL_AVX512 1
#endif

namespace hashmem::store {

std::uint64_t mix64(std::uint64_t z) {
  z += 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

std::uint64_t normal_key(std::uint64_t seed, std::int64_t layer_id) {
  return mix64(seed ^ mix64(static_cast<std::uint64_t>(layer_id) + 0x5151));
}

void normal_pair(std::uint64_t key, std::uint64_t p, float out[2]) {
  const std::uint64_t a = mix64(key ^ mix64(2 * p)), b = mix64(key ^ mix64(2 * p + 1));
  const double u1 = (static_cast<double>(a >> 11) + 1.0) * 0x1.0p-53;  // (0, 1]
  const double u2 = static_cast<double>(b >> 11) * 0x1.0p-53;
  const double r = std::sqrt(-2.0 * std::log(u1));
  out[0] = static_cast<float>(r * std::cos(2 * M_PI * u2));
  out[1] = static_cast<float>(r * std::sin(2 * M_PI * u2));
}

namespace {

#ifdef HASHMEM_NORMAL_AVX512
inline __m512i shift_right(__m512i z, unsigned n) { return _mm512_srli_epi64(z, n); }

inline __m512i mix64_8(__m512i z) {
  z = _mm512_add_epi64(z, _mm512_set1_epi64(static_cast<std::int64_t>(0x9e3779b97f4a7c15ull)));
  z = _mm512_mullo_epi64(_mm512_xor_si512(z, shift_right(z, 30)),
                         _mm512_set1_epi64(static_cast<std::int64_t>(0xbf58476d1ce4e5b9ull)));
  z = _mm512_mullo_epi64(_mm512_xor_si512(z, shift_right(z, 27)),
                         _mm512_set1_epi64(static_cast<std::int64_t>(0x94d049bb133111ebull)));
  return _mm512_xor_si512(z, shift_right(z, 31));
}

// Lanes whose float rounding is the same for every double within 2^−40 relative of v (so also for the scalar
// path's double, which differs from v by less).
inline __mmask8 rounding_is_certain(__m512d v) {
  const __m256 low = _mm512_cvtpd_ps(_mm512_mul_pd(v, _mm512_set1_pd(1.0 - 0x1.0p-40)));
  const __m256 high = _mm512_cvtpd_ps(_mm512_mul_pd(v, _mm512_set1_pd(1.0 + 0x1.0p-40)));
  return _mm256_cmp_ps_mask(low, high, _CMP_EQ_OQ);
}

// sqrt(x) for x in (0, 2^10), within ~2^−50 relative (not correctly rounded: the rounding check below allows
// 2^−40). vsqrtpd is not pipelined (one per ~16 cycles here), so the four interleaved groups would queue on
// it; this is the 2^−14 estimate, one Newton step for 1/sqrt (2^−27) and one residual correction with an exact FMA residual
// (r0 + (y/2)·(x − r0²): error ~(2^−27)² plus roundings), all pipelined. x = 0 (u1 = 1) gives NaN, and
// u1 that close to 1 is recomputed by the scalar path anyway.
inline __m512d sqrt_near(__m512d x) {
  const __m512d half = _mm512_set1_pd(0.5);
  __m512d y = _mm512_rsqrt14_pd(x);
  y = _mm512_mul_pd(y, _mm512_fnmadd_pd(_mm512_mul_pd(_mm512_mul_pd(half, x), y), y, _mm512_set1_pd(1.5)));
  const __m512d r0 = _mm512_mul_pd(x, y);
  return _mm512_fmadd_pd(_mm512_mul_pd(half, y), _mm512_fnmadd_pd(r0, r0, x), r0);
}

// The uniforms of pairs p0 .. p0 + 7 (u1 in (0, 1], u2 in [0, 1)): two chains of two mixes, each mix two
// vpmullq (~15 cycles of latency apiece), so a group is latency-bound alone; normal_values runs four groups'
// chains side by side before the math of any of them.
inline void uniforms(__m512i k, std::uint64_t p0, __m512d& u1, __m512d& u2) {
  const __m512i pair = _mm512_add_epi64(_mm512_set1_epi64(static_cast<std::int64_t>(p0)),
                                        _mm512_setr_epi64(0, 1, 2, 3, 4, 5, 6, 7));
  const __m512i twice = _mm512_add_epi64(pair, pair);
  const __m512i a = mix64_8(_mm512_xor_si512(k, mix64_8(twice)));
  const __m512i b = mix64_8(_mm512_xor_si512(k, mix64_8(_mm512_add_epi64(twice, _mm512_set1_epi64(1)))));
  const __m512d two_to_minus53 = _mm512_set1_pd(0x1.0p-53);
  u1 = _mm512_mul_pd(_mm512_add_pd(_mm512_cvtepu64_pd(shift_right(a, 11)), _mm512_set1_pd(1.0)), two_to_minus53);
  u2 = _mm512_mul_pd(_mm512_cvtepu64_pd(shift_right(b, 11)), two_to_minus53);
}

// Pairs p0 .. p0 + 7 from their uniforms, times stddev, interleaved into out[16] (value 2i = pair i's cos part,
// 2i + 1 its sin).
void eight_pairs(std::uint64_t key, std::uint64_t p0, __m512d u1, __m512d u2, float stddev, float* out) {
  const __m512d r = sqrt_near(_mm512_mul_pd(_mm512_set1_pd(-2.0), _ZGVeN8v_log(u1)));
  const __m512d angle = _mm512_mul_pd(_mm512_set1_pd(2 * M_PI), u2);
  const __m512d cos = _ZGVeN8v_cos(angle), sin = _ZGVeN8v_sin(angle);
  const __m512d v0 = _mm512_mul_pd(r, cos), v1 = _mm512_mul_pd(r, sin);
  const __m512d near_zero = _mm512_set1_pd(0x1.0p-10);
  __mmask8 certain = rounding_is_certain(v0) & rounding_is_certain(v1);
  certain &= _mm512_cmp_pd_mask(_mm512_abs_pd(cos), near_zero, _CMP_GE_OQ);
  certain &= _mm512_cmp_pd_mask(_mm512_abs_pd(sin), near_zero, _CMP_GE_OQ);
  certain &= _mm512_cmp_pd_mask(u1, _mm512_set1_pd(1.0 - 0x1.0p-10), _CMP_LT_OQ);
  const __m512 both = _mm512_permutex2var_ps(
      _mm512_castps256_ps512(_mm512_cvtpd_ps(v0)),
      _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23),
      _mm512_castps256_ps512(_mm512_cvtpd_ps(v1)));
  alignas(64) float values[16];
  _mm512_store_ps(values, both);
  for (unsigned uncertain = static_cast<unsigned>(~certain) & 0xffu; uncertain; uncertain &= uncertain - 1) {
    const int i = __builtin_ctz(uncertain);
    normal_pair(key, p0 + static_cast<std::uint64_t>(i), values + 2 * i);
  }
  _mm512_storeu_ps(out, _mm512_mul_ps(_mm512_load_ps(values), _mm512_set1_ps(stddev)));
}

// Values out[0 .. 16·groups) from pairs p0 .. p0 + 8·groups − 1 (groups <= 4): every group's uniforms first.
void pair_groups(std::uint64_t key, std::uint64_t p0, int groups, float stddev, float* out) {
  const __m512i k = _mm512_set1_epi64(static_cast<std::int64_t>(key));
  __m512d u1[4], u2[4];
  for (int g = 0; g < groups; ++g) uniforms(k, p0 + 8 * static_cast<std::uint64_t>(g), u1[g], u2[g]);
  for (int g = 0; g < groups; ++g) eight_pairs(key, p0 + 8 * static_cast<std::uint64_t>(g), u1[g], u2[g], stddev, out + 16 * g);
}
#endif

}  // namespace

void normal_values(std::uint64_t key, std::uint64_t first, std::size_t count, float stddev, float* out) {
  float pair[2];
  std::size_t i = 0;
  std::uint64_t k = first;
  if (count > 0 && (k & 1)) {  // starts on a pair's second value
    normal_pair(key, k / 2, pair);
    out[i++] = pair[1] * stddev;
    ++k;
  }
#ifdef HASHMEM_NORMAL_AVX512
  for (; count - i >= 64; i += 64, k += 64) pair_groups(key, k / 2, 4, stddev, out + i);
  for (; count - i >= 16; i += 16, k += 16) pair_groups(key, k / 2, 1, stddev, out + i);
#endif
  for (; count - i >= 2; i += 2, k += 2) {
    normal_pair(key, k / 2, pair);
    out[i] = pair[0] * stddev;
    out[i + 1] = pair[1] * stddev;
  }
  if (i < count) {
    normal_pair(key, k / 2, pair);
    out[i] = pair[0] * stddev;
  }
}

}  // namespace hashmem::store
