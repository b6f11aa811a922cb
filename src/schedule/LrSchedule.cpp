#include "schedule/LrSchedule.h"

#include <algorithm>
#include <cmath>

#include "schedule/LrScaling.h"

namespace ddp {

double scaled_lr(ScalingRule rule, double base_lr, int64_t global_batch, int64_t base_batch) {
  return base_lr * make_lr_scaling(rule, global_batch, base_batch)->gain(std::nullopt);
}

LrSchedule::LrSchedule(const Config& config, int64_t global_batch, int64_t steps_per_epoch)
    : lr_(config.lr),
      base_lr_(config.optim.base_lr),
      peak_(scaled_lr(config.lr.rule, config.optim.base_lr, global_batch, config.lr.base_batch)),
      steps_per_epoch_(steps_per_epoch),
      total_steps_(config.train.epochs * steps_per_epoch) {
  warmup_steps_ = lr_.warmup_steps > 0 ? lr_.warmup_steps
                                       : int64_t(std::llround(lr_.warmup_epochs * double(steps_per_epoch)));
}

double LrSchedule::at(int64_t step) const {
  if (step < warmup_steps_) {
    // Step 0 trains at base_lr; step warmup_steps is the first at the peak.
    return base_lr_ + (peak_ - base_lr_) * double(step) / double(warmup_steps_);
  }
  return decayed(step);
}

double LrSchedule::decayed(int64_t step) const {
  switch (lr_.decay) {
    case LrDecay::Constant: return peak_;
    case LrDecay::Step: {
      // Decays count whole periods since the start of training, as MultiStepLR milestones would.
      const double epoch = double(step) / double(steps_per_epoch_);
      const double periods = std::floor(epoch / lr_.step_every_epochs + 1e-9);
      return peak_ * std::pow(lr_.step_gamma, periods);
    }
    case LrDecay::Cosine: {
      const int64_t span = std::max<int64_t>(1, total_steps_ - warmup_steps_);
      const double t = std::min(1.0, double(step - warmup_steps_) / double(span));
      return lr_.min_lr + (peak_ - lr_.min_lr) * 0.5 * (1.0 + std::cos(M_PI * t));
    }
    case LrDecay::Exponential: {
      // Fractional epochs since the end of warmup: the lr moves at every step, not once an
      // epoch, and starts from the peak the warmup reached.
      const double epochs = double(step - warmup_steps_) / double(steps_per_epoch_);
      return peak_ * std::pow(lr_.exp_gamma, epochs);
    }
    case LrDecay::Cyclic: return cyclic(step);
  }
  return peak_;
}

// The triangular policy of Smith 2017 ("Cyclical Learning Rates for Training Neural Networks",
// arXiv 1506.01186, section 3) between min_lr and the peak, a whole cycle every cycle_epochs.
// Smith's cycle starts at the bottom; this one is shifted by half a cycle so that it starts at
// the peak where warmup ends, and the lr is continuous there instead of falling from the peak to
// min_lr in one step: peak, down to min_lr at mid-cycle, back to the peak at the cycle's end.
// Without warmup it starts at the peak too: one rule, whatever the warmup.
double LrSchedule::cyclic(int64_t step) const {
  const double cycle_steps = lr_.cycle_epochs * double(steps_per_epoch_);
  const double phase = std::fmod(double(step - warmup_steps_), cycle_steps) / cycle_steps;  // in [0, 1)
  return lr_.min_lr + (peak_ - lr_.min_lr) * std::abs(1.0 - 2.0 * phase);
}

}  // namespace ddp
