#pragma once
// The lr of every step and when training ends, for any lr.rule. The rule sits behind
// LrScaling: the trainer asks for the gain, the lr and whether the run is over, and never
// learns which rule it runs.
//   fixed rules (none, linear, sqrt): the LrSchedule of the global batch on the step count
//     (peak = gain x base lr, warmup, decay), for train.epochs epochs;
//   adaptive (AdaScale, Johnson et al. 2020, algorithm 1): lr = r x the base batch's own
//     schedule at floor(tau), where tau, the scale-invariant progress counted in base-batch
//     steps, grows by r with every applied step. The run ends when tau reaches the steps the
//     base batch takes for train.epochs epochs: more steps than the linear rule takes when
//     r < S, fewer than the base batch takes.
#include <cstdint>
#include <memory>
#include <optional>

#include "config/Config.h"
#include "schedule/LrScaling.h"
#include "schedule/LrSchedule.h"

namespace ddp {

class TrainingSchedule {
 public:
  TrainingSchedule(const Config& config, int64_t train_samples, int64_t global_batch, int64_t steps_per_epoch);

  // The gain r of a step, from the noise measured up to and including it.
  double gain(const std::optional<GradientNoise>& noise) const { return scaling_->gain(noise); }
  // The lr of the next step: `step` steps and `progress` (tau) done, at gain `gain`.
  double lr(int64_t step, double progress, double gain) const;
  // The progress after an applied step at `gain`: + gain where the schedule runs on progress
  // (adaptive); the fixed rules run on steps and keep it at 0.
  double advance(double progress, double gain) const { return adaptive() ? progress + gain : progress; }
  // Whether training is over after `epochs_done` whole epochs and progress `progress`.
  bool finished(int64_t epochs_done, double progress) const;

  bool adaptive() const { return scaling_->adaptive(); }
  // Adaptive: the progress at which the run ends, in base-batch steps.
  double progress_target() const { return progress_target_; }
  double scale() const { return scaling_->scale(); }
  // The schedule's peak (adaptive: the base batch's; r multiplies it) and its warmup steps.
  double peak() const { return schedule_.peak(); }
  int64_t warmup_steps() const { return schedule_.warmup_steps(); }

 private:
  std::unique_ptr<LrScaling> scaling_;
  LrSchedule schedule_;  // adaptive: the base batch's, in its steps
  int64_t epochs_;
  double progress_target_;
};

}  // namespace ddp
