#include "sync/GradientBuckets.h"

#include <algorithm>

namespace ddp {

GradientBuckets::GradientBuckets(std::vector<torch::Tensor> parameters, size_t bucket_bytes)
    : parameters_(std::move(parameters)) {
  std::vector<std::vector<size_t>> groups;
  size_t group_bytes = 0;
  for (size_t k = parameters_.size(); k-- > 0;) {
    const size_t bytes = size_t(parameters_[k].numel()) * parameters_[k].element_size();
    if (groups.empty() || group_bytes + bytes > bucket_bytes) {
      groups.emplace_back();
      group_bytes = 0;
    }
    groups.back().push_back(k);
    group_bytes += bytes;
  }
  for (const auto& group : groups) {
    int64_t count = 0;
    for (size_t k : group) count += parameters_[k].numel();
    torch::Tensor buffer = torch::zeros({count}, parameters_[group.front()].options());
    std::vector<torch::Tensor> views;
    int64_t offset = 0;
    for (size_t k : group) {
      torch::Tensor& p = parameters_[k];
      torch::Tensor view = buffer.narrow(0, offset, p.numel()).view(p.sizes());
      // AccumulateGrad adds into an existing .grad() in place, so backward fills the bucket.
      p.mutable_grad() = view;
      views.push_back(view);
      offset += p.numel();
    }
    numel_ += count;
    buffers_.push_back(buffer);
    views_.push_back(std::move(views));
  }
}

void GradientBuckets::zero() {
  for (auto& buffer : buffers_) buffer.zero_();
}

torch::Tensor GradientBuckets::flatten() const {
  std::vector<torch::Tensor> grads;
  for (const auto& p : parameters_) grads.push_back(p.grad().reshape({-1}));
  return torch::cat(grads);
}

void GradientBuckets::unflatten(const torch::Tensor& flat) {
  TORCH_CHECK(flat.numel() == numel_, "GradientBuckets::unflatten: size mismatch");
  int64_t offset = 0;
  for (auto& p : parameters_) {
    p.mutable_grad().copy_(flat.narrow(0, offset, p.numel()).view(p.sizes()));
    offset += p.numel();
  }
}

}  // namespace ddp
