#include "common/Float16.h"

#include <c10/util/Half.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace ddp {
namespace {

// The portable path: c10::Half converts with round to nearest even, as F16C does.
void float_to_half_portable(const float* in, uint16_t* out, int64_t count, float scale) {
  for (int64_t i = 0; i < count; ++i) out[i] = c10::Half(in[i] * scale).x;
}
void half_to_float_portable(const uint16_t* in, float* out, int64_t count) {
  for (int64_t i = 0; i < count; ++i) out[i] = float(c10::Half(in[i], c10::Half::from_bits()));
}
void add_half_portable(const uint16_t* in, uint16_t* inout, int64_t count) {
  for (int64_t i = 0; i < count; ++i)
    inout[i] = c10::Half(float(c10::Half(inout[i], c10::Half::from_bits())) +
                         float(c10::Half(in[i], c10::Half::from_bits())))
                   .x;
}

#if defined(__x86_64__)
bool has_f16c() {
  static const bool has = __builtin_cpu_supports("f16c") && __builtin_cpu_supports("avx");
  return has;
}

// Eight at a time; the tail goes the portable way.
__attribute__((target("f16c,avx"))) void float_to_half_f16c(const float* in, uint16_t* out, int64_t count,
                                                             float scale) {
  const __m256 factor = _mm256_set1_ps(scale);
  int64_t i = 0;
  for (; i + 8 <= count; i += 8) {
    const __m256 v = _mm256_mul_ps(_mm256_loadu_ps(in + i), factor);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT));
  }
  float_to_half_portable(in + i, out + i, count - i, scale);
}

__attribute__((target("f16c,avx"))) void half_to_float_f16c(const uint16_t* in, float* out, int64_t count) {
  int64_t i = 0;
  for (; i + 8 <= count; i += 8)
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i))));
  half_to_float_portable(in + i, out + i, count - i);
}

__attribute__((target("f16c,avx"))) void add_half_f16c(const uint16_t* in, uint16_t* inout, int64_t count) {
  int64_t i = 0;
  for (; i + 8 <= count; i += 8) {
    const __m256 a = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(inout + i)));
    const __m256 b = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i)));
    _mm_storeu_si128(reinterpret_cast<__m128i*>(inout + i),
                     _mm256_cvtps_ph(_mm256_add_ps(a, b), _MM_FROUND_TO_NEAREST_INT));
  }
  add_half_portable(in + i, inout + i, count - i);
}
#endif

}  // namespace

void float_to_half(const float* in, uint16_t* out, int64_t count, float scale) {
#if defined(__x86_64__)
  if (has_f16c()) return float_to_half_f16c(in, out, count, scale);
#endif
  float_to_half_portable(in, out, count, scale);
}

void half_to_float(const uint16_t* in, float* out, int64_t count) {
#if defined(__x86_64__)
  if (has_f16c()) return half_to_float_f16c(in, out, count);
#endif
  half_to_float_portable(in, out, count);
}

void add_half(const uint16_t* in, uint16_t* inout, int64_t count) {
#if defined(__x86_64__)
  if (has_f16c()) return add_half_f16c(in, inout, count);
#endif
  add_half_portable(in, inout, count);
}

}  // namespace ddp
