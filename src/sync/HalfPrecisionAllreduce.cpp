#include "sync/HalfPrecisionAllreduce.h"

namespace ddp {

int64_t HalfPrecisionAllreduce::exchange(GradientBuckets& buckets, int64_t step) {
  if (step < start_step_) return plain_.exchange(buckets, step);
  const std::vector<torch::Tensor>& spans = buckets.gradient_spans();
  if (halves_.empty())
    for (const auto& span : spans) halves_.push_back(torch::empty(span.sizes(), span.options().dtype(type_)));
  const double ranks = double(comm_.size());
  std::vector<torch::Tensor> messages;
  for (size_t b = 0; b < spans.size(); ++b) {
    spans[b].div_(ranks);  // in float32, before the cast: the 16-bit sum cannot overflow
    halves_[b].copy_(spans[b]);
    messages.push_back(halves_[b]);
  }
  torch::Tensor& extras = buckets.extras();
  if (extras.defined()) messages.push_back(extras);
  comm_.allreduce(messages, ReduceOp::Sum);
  if (extras.defined()) extras.div_(ranks);
  int64_t bytes = 0;
  for (size_t b = 0; b < spans.size(); ++b) {
    spans[b].copy_(halves_[b]);
    bytes += int64_t(halves_[b].nbytes());
  }
  return bytes + (extras.defined() ? int64_t(extras.nbytes()) : 0);
}

}  // namespace ddp
