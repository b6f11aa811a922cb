#pragma once
// The learning rate at every step as a pure function of (config, world size, step).
//   peak = scaling_rule(base_lr, global_batch / base_batch)   (none: 1, linear: k, sqrt: sqrt(k))
//   warmup (Goyal et al. 2017, section 2.2): linear per step from base_lr to peak
//   then constant, step (x gamma every N epochs), cosine (to min_lr), exponential (x gamma
//   per epoch, smoothly) or cyclic (triangular between the peak and min_lr)
// Under lr.rule=adascale this is the base batch's schedule (peak = base_lr, the base batch's
// steps), which the measured gain multiplies: see TrainingSchedule.
#include <cstdint>

#include "config/Config.h"

namespace ddp {

// lr for `global_batch` under a fixed `rule`, given base_lr is right at `base_batch`
// (adascale: base_lr, its gain before anything was measured).
double scaled_lr(ScalingRule rule, double base_lr, int64_t global_batch, int64_t base_batch);

class LrSchedule {
 public:
  LrSchedule(const Config& config, int64_t global_batch, int64_t steps_per_epoch);

  double at(int64_t step) const;
  double peak() const { return peak_; }
  int64_t warmup_steps() const { return warmup_steps_; }

 private:
  // The lr at `step` >= warmup_steps_.
  double decayed(int64_t step) const;
  double cyclic(int64_t step) const;

  LrConfig lr_;
  double base_lr_;
  double peak_;
  int64_t steps_per_epoch_;
  int64_t warmup_steps_;
  int64_t total_steps_;
};

}  // namespace ddp
