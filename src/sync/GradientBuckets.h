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
  // parameter larger than that gets a bucket of its own).
  GradientBuckets(std::vector<torch::Tensor> parameters, size_t bucket_bytes);

  // Zeroes the buckets in place; the .grad() views stay attached.
  void zero();
  std::vector<torch::Tensor>& buffers() { return buffers_; }
  const std::vector<torch::Tensor>& parameters() const { return parameters_; }
  int64_t numel() const { return numel_; }

  // Copies of all gradients into one flat tensor and back: for checks and checkpoints.
  torch::Tensor flatten() const;
  void unflatten(const torch::Tensor& flat);

 private:
  std::vector<torch::Tensor> parameters_;
  std::vector<torch::Tensor> buffers_;
  std::vector<std::vector<torch::Tensor>> views_;  // per bucket, the parameters' grad views
  int64_t numel_ = 0;
};

}  // namespace ddp
