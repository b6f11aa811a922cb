#pragma once
// IEEE float16 arithmetic on the host, for the fp16 gradient exchange: LibTorch 1.13's CPU
// kernels convert and add float16 one element at a time (an add of SimpleNN's 101,770 gradients
// takes 205 us here, against 7 us with the F16C instructions every x86-64 CPU since 2012 has).
// Each function uses F16C when the CPU has it and a portable loop otherwise; the results are
// the same either way (round to nearest even).
#include <cstdint>

namespace ddp {

// out[i] = float16(in[i] * scale)
void float_to_half(const float* in, uint16_t* out, int64_t count, float scale = 1.0f);
// out[i] = float(in[i])
void half_to_float(const uint16_t* in, float* out, int64_t count);
// inout[i] = float16(float(inout[i]) + float(in[i])): a sum rounded to float16, as NCCL's.
void add_half(const uint16_t* in, uint16_t* inout, int64_t count);

}  // namespace ddp
