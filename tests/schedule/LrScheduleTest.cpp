#include "schedule/LrSchedule.h"

#include <gtest/gtest.h>

#include <cmath>

namespace ddp {
namespace {

Config make(ScalingRule rule, double warmup_epochs = 0, LrDecay decay = LrDecay::Constant) {
  Config c;
  c.optim.base_lr = 0.1;
  c.lr.base_batch = 256;
  c.lr.rule = rule;
  c.lr.warmup_epochs = warmup_epochs;
  c.lr.decay = decay;
  c.train.epochs = 10;
  return c;
}

TEST(LrSchedule, ScalingRules) {
  EXPECT_DOUBLE_EQ(scaled_lr(ScalingRule::None, 0.1, 8192, 256), 0.1);
  EXPECT_DOUBLE_EQ(scaled_lr(ScalingRule::Linear, 0.1, 8192, 256), 3.2);  // Goyal et al.: 0.1 x 8k/256
  EXPECT_DOUBLE_EQ(scaled_lr(ScalingRule::Sqrt, 0.1, 1024, 256), 0.2);
  EXPECT_DOUBLE_EQ(scaled_lr(ScalingRule::Linear, 0.01, 32, 64), 0.005);  // scales down too
}

TEST(LrSchedule, LinearWarmupFromBaseToPeak) {
  // 5 warmup epochs of 100 steps: base 0.1 -> peak 3.2 over steps 0..500.
  const LrSchedule s(make(ScalingRule::Linear, 5), 8192, 100);
  EXPECT_EQ(s.warmup_steps(), 500);
  EXPECT_DOUBLE_EQ(s.at(0), 0.1);
  EXPECT_DOUBLE_EQ(s.at(250), 0.1 + 3.1 * 0.5);
  EXPECT_DOUBLE_EQ(s.at(499), 0.1 + 3.1 * 499 / 500);
  EXPECT_DOUBLE_EQ(s.at(500), 3.2);
  EXPECT_DOUBLE_EQ(s.at(999), 3.2);
}

TEST(LrSchedule, WarmupStepsOverrideEpochs) {
  Config c = make(ScalingRule::Sqrt, 5);
  c.lr.warmup_steps = 10;
  const LrSchedule s(c, 1024, 100);
  EXPECT_EQ(s.warmup_steps(), 10);
  EXPECT_DOUBLE_EQ(s.at(5), 0.15);
  EXPECT_DOUBLE_EQ(s.at(10), 0.2);
}

TEST(LrSchedule, NoRuleNoWarmupIsConstant) {
  const LrSchedule s(make(ScalingRule::None), 8192, 100);
  for (int64_t step : {0, 1, 500, 999}) EXPECT_DOUBLE_EQ(s.at(step), 0.1);
}

TEST(LrSchedule, StepDecay) {
  Config c = make(ScalingRule::Linear, 0, LrDecay::Step);
  c.lr.step_every_epochs = 3;
  c.lr.step_gamma = 0.1;
  const LrSchedule s(c, 512, 100);
  EXPECT_DOUBLE_EQ(s.at(299), 0.2);
  EXPECT_NEAR(s.at(300), 0.02, 1e-15);
  EXPECT_NEAR(s.at(600), 0.002, 1e-15);
}

TEST(LrSchedule, CosineDecayAfterWarmup) {
  Config c = make(ScalingRule::Linear, 2, LrDecay::Cosine);
  c.lr.min_lr = 0.0;
  const LrSchedule s(c, 512, 100);  // peak 0.2, warmup 200 of 1000 steps
  EXPECT_DOUBLE_EQ(s.at(200), 0.2);
  EXPECT_NEAR(s.at(600), 0.1, 1e-12);
  EXPECT_NEAR(s.at(1000), 0.0, 1e-12);
}

}  // namespace
}  // namespace ddp
