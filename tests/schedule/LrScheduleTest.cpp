#include "schedule/LrSchedule.h"

#include <gtest/gtest.h>

#include <cmath>

#include "data/DistributedSampler.h"

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

// The article's setup at 4 ranks: local batch 64, base_lr 0.01 right at a batch of 64, so the
// linear rule makes the peak 0.04; 6400 samples are 25 steps per epoch of the global 256.
struct FourRanks {
  Config config;
  DistributedSampler sampler;
  explicit FourRanks(LrDecay decay, int64_t warmup_steps)
      : config(article_linear(decay, warmup_steps)), sampler(6400, 4, 0, 64, true, 42, Remainder::Drop) {}
  LrSchedule schedule() const { return LrSchedule(config, sampler.global_batch(), sampler.steps_per_epoch()); }

  static Config article_linear(LrDecay decay, int64_t warmup_steps) {
    Config c;
    c.optim.base_lr = 0.01;
    c.lr.base_batch = 64;
    c.lr.rule = ScalingRule::Linear;
    c.lr.warmup_steps = warmup_steps;
    c.lr.decay = decay;
    c.train.epochs = 10;
    return c;
  }
};

TEST(LrSchedule, ExponentialDecaysSmoothlyFromThePeakAfterWarmup) {
  FourRanks run(LrDecay::Exponential, 25);  // one epoch of warmup
  run.config.lr.exp_gamma = 0.5;
  const LrSchedule s = run.schedule();
  ASSERT_EQ(run.sampler.global_batch(), 256);
  ASSERT_EQ(run.sampler.steps_per_epoch(), 25);
  EXPECT_DOUBLE_EQ(s.peak(), 0.04);
  EXPECT_DOUBLE_EQ(s.at(0), 0.01);     // warmup from base_lr ...
  EXPECT_DOUBLE_EQ(s.at(10), 0.022);   // ... 0.01 + 0.03 x 10/25
  EXPECT_DOUBLE_EQ(s.at(25), 0.04);    // the peak where warmup ends: gamma^0
  EXPECT_DOUBLE_EQ(s.at(30), 0.04 * 0.8705505632961241);  // 0.5^(5/25): every step, not once an epoch
  EXPECT_DOUBLE_EQ(s.at(50), 0.02);    // one epoch after warmup: x 0.5
  EXPECT_DOUBLE_EQ(s.at(75), 0.01);    // two: x 0.25
  EXPECT_DOUBLE_EQ(s.at(249), 0.04 * std::pow(0.5, 224.0 / 25));
  for (int64_t step = 26; step < 250; ++step) EXPECT_LT(s.at(step), s.at(step - 1)) << "step " << step;
}

TEST(LrSchedule, ExponentialWithGammaOneIsConstant) {
  FourRanks run(LrDecay::Exponential, 0);
  run.config.lr.exp_gamma = 1.0;
  const LrSchedule s = run.schedule();
  for (int64_t step : {0, 1, 100, 249}) EXPECT_DOUBLE_EQ(s.at(step), 0.04);
}

TEST(LrSchedule, CyclicStartsAtThePeakWhereWarmupEndsAndFallsToMinLr) {
  // Cycles of 2 epochs = 50 steps after 25 warmup steps: peak 0.04 at steps 25, 75, 125, ...;
  // min_lr 0.004 at 50, 100, 150, ...; linear in between.
  FourRanks run(LrDecay::Cyclic, 25);
  run.config.lr.min_lr = 0.004;
  run.config.lr.cycle_epochs = 2;
  const LrSchedule s = run.schedule();
  EXPECT_DOUBLE_EQ(s.at(0), 0.01);
  EXPECT_DOUBLE_EQ(s.at(24), 0.01 + 0.03 * 24 / 25);
  EXPECT_DOUBLE_EQ(s.at(25), 0.04);  // continuous: warmup ends at the peak, the cycle starts there
  EXPECT_NEAR(s.at(30), 0.004 + 0.036 * 0.8, 1e-15);    // 5 of 25 steps down
  EXPECT_NEAR(s.at(37), 0.004 + 0.036 * 0.52, 1e-15);   // 12 of 25 steps down
  EXPECT_NEAR(s.at(50), 0.004, 1e-15);                  // mid-cycle: the bottom
  EXPECT_NEAR(s.at(60), 0.004 + 0.036 * 0.4, 1e-15);    // 10 of 25 steps back up
  EXPECT_NEAR(s.at(75), 0.04, 1e-15);                   // a whole cycle: the peak again
  EXPECT_NEAR(s.at(100), 0.004, 1e-15);
  EXPECT_NEAR(s.at(237), s.at(37), 1e-15);              // periodic: 4 cycles later
  for (int64_t step = 0; step < 250; ++step) {
    EXPECT_LE(s.at(step), 0.04 + 1e-15) << "step " << step;
    if (step >= 25) EXPECT_GE(s.at(step), 0.004 - 1e-15) << "step " << step;
  }
}

TEST(LrSchedule, CyclicWithoutWarmupAndAZeroFloor) {
  // Half-epoch cycles of 12.5 steps; with no warmup the cycle starts at the peak at step 0.
  FourRanks run(LrDecay::Cyclic, 0);
  run.config.lr.min_lr = 0.0;
  run.config.lr.cycle_epochs = 0.5;
  const LrSchedule s = run.schedule();
  EXPECT_DOUBLE_EQ(s.at(0), 0.04);
  EXPECT_NEAR(s.at(5), 0.04 * (1 - 10.0 / 12.5), 1e-15);   // phase 5/12.5: |1 - 0.8| = 0.2
  EXPECT_NEAR(s.at(10), 0.04 * (20.0 / 12.5 - 1), 1e-15);  // phase 0.8: rising, |1 - 1.6| = 0.6
  EXPECT_NEAR(s.at(25), 0.04, 1e-15);                      // two whole cycles
}

TEST(LrSchedule, CyclicScalesThePeakWithTheWorldSizeNotTheFloor) {
  // One config at 1 rank (global batch 64: k = 1, 100 steps an epoch) and at 4 ranks (k = 4,
  // 25 steps an epoch) under lr.rule=linear: the peak scales, the floor stays min_lr, and a
  // cycle lasts cycle_epochs at both.
  FourRanks four(LrDecay::Cyclic, 0);
  four.config.lr.min_lr = 0.002;
  four.config.lr.cycle_epochs = 1;
  const DistributedSampler one_rank(6400, 1, 0, 64, true, 42, Remainder::Drop);
  const LrSchedule one(four.config, one_rank.global_batch(), one_rank.steps_per_epoch());
  const LrSchedule s = four.schedule();
  EXPECT_DOUBLE_EQ(one.at(0), 0.01);
  EXPECT_NEAR(one.at(20), 0.002 + 0.008 * 0.6, 1e-15);
  EXPECT_NEAR(one.at(50), 0.002, 1e-15);
  EXPECT_NEAR(one.at(100), 0.01, 1e-15);
  EXPECT_DOUBLE_EQ(s.at(0), 0.04);
  EXPECT_NEAR(s.at(5), 0.002 + 0.038 * 0.6, 1e-15);  // the same fraction of an epoch as step 20 at 1 rank
  EXPECT_NEAR(s.at(25), 0.04, 1e-15);
}

// depends_on_run_length (which decides whether a resume may change train.epochs) says of each
// decay what its schedule does: a 3-epoch and a 4-epoch run agree on every step of the first 3
// epochs exactly when the decay does not depend on the run's length.
TEST(LrSchedule, OnlyTheDecaysDeclaredSoDependOnTheRunsLength) {
  for (const LrDecay decay : all_decays()) {
    FourRanks run(decay, 25);
    run.config.lr.min_lr = 0.001;
    run.config.lr.step_every_epochs = 2;
    run.config.train.epochs = 3;
    const LrSchedule three = run.schedule();
    run.config.train.epochs = 4;
    const LrSchedule four = run.schedule();
    bool same = true;
    for (int64_t step = 0; step < 3 * 25; ++step) same = same && three.at(step) == four.at(step);
    EXPECT_EQ(same, !depends_on_run_length(decay)) << to_string(decay);
  }
}

}  // namespace
}  // namespace ddp
