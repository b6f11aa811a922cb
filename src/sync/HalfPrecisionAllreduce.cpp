#include "sync/HalfPrecisionAllreduce.h"

#include "common/Float16.h"

namespace ddp {

namespace {

// gradients x scale, cast to `half` (float16 on the host: F16C, see common/Float16.h).
void cast_scaled(const torch::Tensor& gradients, torch::Tensor& half, double scale) {
  if (half.scalar_type() == torch::kFloat16 && gradients.is_cpu()) {
    float_to_half(gradients.data_ptr<float>(), reinterpret_cast<uint16_t*>(half.data_ptr()), gradients.numel(),
                  float(scale));
    return;
  }
  gradients.mul_(scale);  // in float32, before the cast
  half.copy_(gradients);
}

void cast_back(const torch::Tensor& half, const torch::Tensor& gradients) {
  if (half.scalar_type() == torch::kFloat16 && gradients.is_cpu()) {
    half_to_float(reinterpret_cast<const uint16_t*>(half.data_ptr()), gradients.data_ptr<float>(), gradients.numel());
    return;
  }
  gradients.copy_(half);
}

}  // namespace

int64_t HalfPrecisionAllreduce::exchange(GradientBuckets& buckets, int64_t step) {
  if (step < start_step_) return plain_.exchange(buckets, step);
  const std::vector<torch::Tensor>& spans = buckets.gradient_spans();
  if (halves_.empty())
    for (const auto& span : spans) halves_.push_back(torch::empty(span.sizes(), span.options().dtype(type_)));
  // Divided by the ranks first, so that their sum stays in range (x 1/N: the same rounding on every device).
  const double scale = 1.0 / double(comm_.size());
  std::vector<torch::Tensor> messages;
  for (size_t b = 0; b < spans.size(); ++b) {
    cast_scaled(spans[b], halves_[b], scale);
    messages.push_back(halves_[b]);
  }
  torch::Tensor& extras = buckets.extras();
  if (extras.defined()) messages.push_back(extras);
  comm_.allreduce(messages, ReduceOp::Sum);
  if (extras.defined()) extras.div_(double(comm_.size()));
  int64_t bytes = extras.defined() ? int64_t(extras.nbytes()) : 0;
  for (size_t b = 0; b < spans.size(); ++b) {
    cast_back(halves_[b], spans[b]);
    bytes += int64_t(halves_[b].nbytes());
  }
  return bytes;
}

}  // namespace ddp
