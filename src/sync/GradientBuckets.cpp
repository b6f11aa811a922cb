#include "sync/GradientBuckets.h"

#include <algorithm>

namespace ddp {

GradientBuckets::GradientBuckets(std::vector<torch::Tensor> parameters, size_t bucket_bytes, int64_t extra_slots)
    : parameters_(std::move(parameters)) {
  TORCH_CHECK(!parameters_.empty(), "GradientBuckets: no parameters");
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
  for (size_t g = 0; g < groups.size(); ++g) {
    const auto& group = groups[g];
    int64_t count = 0;
    for (size_t k : group) count += parameters_[k].numel();
    const int64_t extra = g + 1 == groups.size() ? extra_slots : 0;
    torch::Tensor buffer = torch::zeros({count + extra}, parameters_[group.front()].options());
    int64_t offset = 0;
    for (size_t k : group) {
      torch::Tensor& p = parameters_[k];
      torch::Tensor view = buffer.narrow(0, offset, p.numel()).view(p.sizes());
      // AccumulateGrad adds into an existing .grad() in place, so backward fills the bucket.
      p.mutable_grad() = view;
      offset += p.numel();
    }
    numel_ += count;
    buffers_.push_back(buffer);
    grad_spans_.push_back(buffer.narrow(0, 0, count));
    if (extra > 0) extras_ = buffer.narrow(0, count, extra);
  }
}

torch::Tensor GradientBuckets::sum() const {
  torch::Tensor total = grad_spans_[0].sum();
  for (size_t b = 1; b < grad_spans_.size(); ++b) total = total + grad_spans_[b].sum();
  return total;
}

torch::Tensor GradientBuckets::squared_norm() const {
  torch::Tensor total = at::dot(grad_spans_[0], grad_spans_[0]);
  for (size_t b = 1; b < grad_spans_.size(); ++b) total = total + at::dot(grad_spans_[b], grad_spans_[b]);
  return total;
}

void GradientBuckets::zero() {
  for (auto& buffer : buffers_) buffer.zero_();
}

}  // namespace ddp
