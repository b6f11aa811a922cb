#pragma once
// Gradients live in a few flat buffers ("buckets") and every parameter's .grad() is a
// view into one of them (PyTorch DDP's gradient_as_bucket_view). Backward accumulates
// straight into the buckets, so an all-reduce needs no flatten or unflatten copy, and
// there is one collective per bucket instead of one per parameter.
#include <torch/torch.h>

#include <vector>

namespace ddp {

class GradientBuckets {
 public:
  // Parameters are bucketed in reverse registration order, the order backward
  // produces their gradients, with buckets of at most `bucket_bytes` (one
  // parameter larger than that gets a bucket of its own). `extra_slots` scalars ride
  // at the end of the last bucket: statistics that need averaging across ranks (a
  // local gradient norm) travel in the gradient all-reduce instead of one of their own.
  GradientBuckets(std::vector<torch::Tensor> parameters, size_t bucket_bytes, int64_t extra_slots = 0);

  // Zeroes the buckets in place; the .grad() views stay attached.
  void zero();
  std::vector<torch::Tensor>& buffers() { return buffers_; }
  const std::vector<torch::Tensor>& parameters() const { return parameters_; }
  // Gradient elements only, without the extra slots.
  int64_t numel() const { return numel_; }
  // Per bucket, the part that holds gradients (views: writing them writes the .grad()s).
  const std::vector<torch::Tensor>& gradient_spans() const { return grad_spans_; }
  // The extra slots (a view into the last bucket); zeroed with the gradients. Undefined when
  // there are none.
  torch::Tensor& extras() { return extras_; }
  // Squared L2 norm of all gradients, as a 0-dim tensor on their device: one fused
  // reduction per bucket, no copy.
  torch::Tensor squared_norm() const;
  // Sum of all gradient elements (0-dim): NaN or Inf exactly when some gradient is.
  torch::Tensor sum() const;

 private:
  std::vector<torch::Tensor> parameters_;
  std::vector<torch::Tensor> buffers_;
  std::vector<torch::Tensor> grad_spans_;  // per bucket, the part that holds gradients
  torch::Tensor extras_;
  int64_t numel_ = 0;
};

}  // namespace ddp
