#include "schedule/TrainingSchedule.h"

#include <fmt/core.h>

#include <cmath>

#include "common/Errors.h"
#include "data/DistributedSampler.h"

namespace ddp {
namespace {

// An adaptive rule runs the schedule the base batch would follow, on the base batch's clock:
// its peak is base_lr and its epochs are the base batch's steps per epoch.
LrSchedule schedule_for(const Config& config, const LrScaling& scaling, int64_t train_samples, int64_t global_batch,
                        int64_t steps_per_epoch) {
  if (!scaling.adaptive()) return LrSchedule(config, global_batch, steps_per_epoch);
  const int64_t base = config.lr.base_batch;
  return LrSchedule(config, base, DistributedSampler::steps_for(train_samples, base, config.train.remainder));
}

}  // namespace

TrainingSchedule::TrainingSchedule(const Config& config, int64_t train_samples, int64_t global_batch,
                                   int64_t steps_per_epoch)
    : scaling_(make_lr_scaling(config.lr.rule, global_batch, config.lr.base_batch)),
      schedule_(schedule_for(config, *scaling_, train_samples, global_batch, steps_per_epoch)),
      epochs_(config.train.epochs),
      progress_target_(double(config.train.epochs) *
                       double(DistributedSampler::steps_for(train_samples, config.lr.base_batch,
                                                            config.train.remainder))) {
  // The gain is measured between one (virtual) rank's micro-batch and the global batch. At the
  // base batch itself (S = 1) it is 1 whatever the noise, and nothing needs measuring.
  if (adaptive() && global_batch <= config.train.local_batch && global_batch != config.lr.base_batch)
    throw InputError(fmt::format(
        "lr.rule: adascale measures its gain from the gradient noise between one rank's batch and the global batch, "
        "which are the same with one rank and no virtual ranks (global batch {}, lr.base_batch {}); run more ranks "
        "or set train.virtual_ranks=2 or more",
        global_batch, config.lr.base_batch));
}

double TrainingSchedule::lr(int64_t step, double progress, double gain) const {
  if (!adaptive()) return schedule_.at(step);
  return gain * schedule_.at(int64_t(std::floor(progress)));
}

bool TrainingSchedule::finished(int64_t epochs_done, double progress) const {
  return adaptive() ? progress >= progress_target_ : epochs_done >= epochs_;
}

}  // namespace ddp
