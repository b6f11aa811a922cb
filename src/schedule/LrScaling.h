#pragma once
// How the learning rate follows the global batch: one small class per lr.rule behind one
// interface, as AdaptDL's scaling_rules.py (LinearScale, SqrtScale, AdaScale). Each gives
// the gain r, the factor on the base lr (optim.base_lr, right at lr.base_batch) at a global
// batch S times the base batch. The fixed rules' gain is a constant; AdaScale's follows the
// measured gradient noise, and then also says how far one step takes training (see
// TrainingSchedule).
#include <cstdint>
#include <memory>
#include <optional>

#include "config/Config.h"

namespace ddp {

// The smoothed gradient statistics of McCandlish et al. (measured in metrics/NoiseScale):
// |G|^2, the true gradient's squared norm, and tr(Sigma), the per-sample covariance's trace.
// The schedule does not measure them; the trainer hands them over.
struct GradientNoise {
  double grad_sq = 0;
  double trace_sigma = 0;
};

class LrScaling {
 public:
  // `scale` is S = global batch / lr.base_batch.
  explicit LrScaling(double scale) : scale_(scale) {}
  virtual ~LrScaling() = default;

  // The gain of a step, given the noise measured up to and including it (none: nullopt).
  virtual double gain(const std::optional<GradientNoise>& noise) const = 0;
  // True when the gain follows the measured noise (AdaScale): the run then advances in
  // scale-invariant progress and needs the noise measured at every step.
  virtual bool adaptive() const { return false; }
  double scale() const { return scale_; }

 protected:
  double scale_;
};

// lr.rule=none: the base lr at any batch.
class NoScaling final : public LrScaling {
 public:
  using LrScaling::LrScaling;
  double gain(const std::optional<GradientNoise>&) const override { return 1.0; }
};

// lr.rule=linear (Goyal et al. 2017): the lr grows with the batch.
class LinearScaling final : public LrScaling {
 public:
  using LrScaling::LrScaling;
  double gain(const std::optional<GradientNoise>&) const override { return scale_; }
};

// lr.rule=sqrt (Krizhevsky 2014; Hoffer et al. 2017): keeps the update's variance.
class SqrtScaling final : public LrScaling {
 public:
  using LrScaling::LrScaling;
  double gain(const std::optional<GradientNoise>&) const override;
};

// lr.rule=adascale (Johnson et al. 2020, arXiv 2007.05105): the gain ratio
//   r = (sigma^2 + |G|^2) / (sigma^2 / S + |G|^2),   sigma^2 = tr(Sigma) / base batch,
// the variance of a base-batch gradient. r is 1 while the gradient dominates the noise (a
// larger batch barely helps) and approaches S when the noise dominates (it helps S-fold, as
// the linear rule assumes). One step at gain r is worth r steps of the base batch. Step t's
// gain comes from the averages that include step t's own statistics (algorithm 1; AdaptDL's
// scaling_rules.py and fairscale's AdaScale alike).
class AdaScale final : public LrScaling {
 public:
  AdaScale(double scale, int64_t base_batch) : LrScaling(scale), base_batch_(double(base_batch)) {}
  // Before any measurement: 1, the base lr. Negative estimates (single noisy samples) count as
  // 0, so r stays between 1 and S.
  double gain(const std::optional<GradientNoise>& noise) const override;
  bool adaptive() const override { return true; }

 private:
  double base_batch_;
};

std::unique_ptr<LrScaling> make_lr_scaling(ScalingRule rule, int64_t global_batch, int64_t base_batch);

}  // namespace ddp
