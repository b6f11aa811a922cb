#pragma once
// comm.compression=fp16 | bf16, as PyTorch's fp16_compress_hook and bf16_compress_hook: each
// bucket's gradients are divided by the number of ranks first, then cast to 16 bits, summed in
// 16 bits and cast back. Dividing first keeps the sum in range: float16 ends at 65504, and N
// ranks' gradients of 40000 would overflow a sum taken before the division. bfloat16 has
// float32's range but 8 bits of mantissa (float16: 11): coarser, never out of range.
// The extra slots travel as float32 beside them, in the same group of all-reduces.
// Before comm.compression_start_step the buckets travel as float32 (PlainAllreduce).
#include "sync/GradientExchange.h"
#include "sync/PlainAllreduce.h"

namespace ddp {

class HalfPrecisionAllreduce final : public GradientExchange {
 public:
  HalfPrecisionAllreduce(Communicator& comm, torch::ScalarType type, int64_t start_step)
      : comm_(comm), plain_(comm), type_(type), start_step_(start_step) {}
  int64_t exchange(GradientBuckets& buckets, int64_t step) override;
  bool exact(int64_t step) const override { return step < start_step_; }

 private:
  Communicator& comm_;
  PlainAllreduce plain_;
  torch::ScalarType type_;
  int64_t start_step_;
  std::vector<torch::Tensor> halves_;  // per bucket, its gradients in 16 bits (allocated once)
};

}  // namespace ddp
