#include "schedule/LrScaling.h"

#include <algorithm>
#include <cmath>

namespace ddp {

double SqrtScaling::gain(const std::optional<GradientNoise>&) const { return std::sqrt(scale_); }

double AdaScale::gain(const std::optional<GradientNoise>& noise) const {
  if (!noise) return 1.0;
  const double variance = std::max(noise->trace_sigma, 0.0) / base_batch_;
  const double signal = std::max(noise->grad_sq, 0.0);
  if (variance + signal <= 0.0) return 1.0;  // nothing measured yet worth trusting
  const double r = (variance + signal) / (variance / scale_ + signal);
  // Within [1, S] by construction; the clamp only absorbs rounding (and S < 1, a batch
  // below the base one, where r lies in [S, 1]).
  return std::clamp(r, std::min(1.0, scale_), std::max(1.0, scale_));
}

std::unique_ptr<LrScaling> make_lr_scaling(ScalingRule rule, int64_t global_batch, int64_t base_batch) {
  const double scale = double(global_batch) / double(base_batch);
  switch (rule) {
    case ScalingRule::None: return std::make_unique<NoScaling>(scale);
    case ScalingRule::Linear: return std::make_unique<LinearScaling>(scale);
    case ScalingRule::Sqrt: return std::make_unique<SqrtScaling>(scale);
    case ScalingRule::AdaScale: return std::make_unique<AdaScale>(scale, base_batch);
  }
  return std::make_unique<NoScaling>(scale);
}

}  // namespace ddp
