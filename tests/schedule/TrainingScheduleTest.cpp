// The schedule the trainer follows: fixed rules are their LrSchedule on steps for
// train.epochs epochs; AdaScale multiplies the base batch's schedule, run on the progress
// tau, by its gain, and ends when tau reaches the base batch's steps for train.epochs.
#include "schedule/TrainingSchedule.h"

#include <gtest/gtest.h>

#include "common/Errors.h"

namespace ddp {
namespace {

Config config_with(ScalingRule rule) {
  Config c;
  c.optim.base_lr = 0.1;
  c.lr.base_batch = 64;
  c.lr.rule = rule;
  c.train.epochs = 5;
  c.train.local_batch = 64;
  return c;
}

TEST(TrainingSchedule, FixedRulesFollowTheirLrScheduleForTheEpochs) {
  Config c = config_with(ScalingRule::Linear);
  c.lr.warmup_steps = 10;
  const TrainingSchedule s(c, 60000, 1024, 58);  // 60000 / 1024 = 58 steps per epoch
  const LrSchedule plain(c, 1024, 58);
  EXPECT_FALSE(s.adaptive());
  for (int64_t step : {0, 5, 10, 200}) EXPECT_DOUBLE_EQ(s.lr(step, 0.0, s.gain(std::nullopt)), plain.at(step));
  EXPECT_DOUBLE_EQ(s.gain(std::nullopt), 16.0);
  EXPECT_DOUBLE_EQ(s.advance(0.0, 16.0), 0.0) << "steps, not progress, drive a fixed rule";
  EXPECT_FALSE(s.finished(4, 1e9));
  EXPECT_TRUE(s.finished(5, 0.0));
}

TEST(TrainingSchedule, AdaScaleRunsTheBaseScheduleOnItsProgress) {
  Config c = config_with(ScalingRule::AdaScale);
  c.lr.decay = LrDecay::Step;  // x 0.1 every 2 epochs of the base batch: 937 steps each
  c.lr.step_every_epochs = 2;
  const TrainingSchedule s(c, 60000, 4096, 14);
  EXPECT_TRUE(s.adaptive());
  EXPECT_DOUBLE_EQ(s.scale(), 64.0);
  EXPECT_DOUBLE_EQ(s.progress_target(), 5.0 * 937) << "the base batch's steps for train.epochs (60000 / 64 = 937)";
  EXPECT_DOUBLE_EQ(s.peak(), 0.1) << "the base batch's schedule";
  EXPECT_DOUBLE_EQ(s.lr(0, 0.0, 1.0), 0.1);
  EXPECT_DOUBLE_EQ(s.lr(3, 100.7, 12.5), 12.5 * 0.1) << "lr = r x base lr";
  EXPECT_NEAR(s.lr(40, 2.0 * 937 + 0.5, 12.5), 12.5 * 0.01, 1e-12) << "the decay counts base-batch epochs of tau";
  EXPECT_DOUBLE_EQ(s.advance(100.0, 12.5), 112.5);
  EXPECT_FALSE(s.finished(100, 4684.9)) << "epochs do not end it";
  EXPECT_TRUE(s.finished(2, 4685.0));
}

TEST(TrainingSchedule, AdaScaleNeedsTwoBatchSizesToMeasureUnlessAtTheBaseBatch) {
  Config c = config_with(ScalingRule::AdaScale);
  c.lr.base_batch = 32;
  EXPECT_THROW(TrainingSchedule(c, 60000, 64, 937), InputError) << "one rank of 64, no virtual ranks";
  EXPECT_NO_THROW(TrainingSchedule(c, 60000, 128, 468)) << "2 ranks of 64";
  c.lr.base_batch = 64;
  const TrainingSchedule at_base(c, 60000, 64, 937);  // S = 1: the gain is 1, nothing to measure
  EXPECT_DOUBLE_EQ(at_base.gain(GradientNoise{0.2, 9.2}), 1.0);
  EXPECT_DOUBLE_EQ(at_base.progress_target(), 5.0 * 937);
}

}  // namespace
}  // namespace ddp
