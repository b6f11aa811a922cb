// The scaling rules' gains; AdaScale's from the noise estimator on a problem with a closed
// form, the noisy linear regression of the noise-scale test.
#include "schedule/LrScaling.h"

#include <gtest/gtest.h>

#include <cmath>

#include "../metrics/NoisyRegression.h"
#include "metrics/NoiseScale.h"

namespace ddp {
namespace {

using testing_data::feed;
using testing_data::Regression;

// r = (sigma^2 + |G|^2) / (sigma^2 / S + |G|^2), sigma^2 = tr(Sigma) / base batch.
double true_gain(const Regression& problem, double base_batch, double global_batch) {
  const double variance = problem.trace_sigma() / base_batch;
  return (variance + problem.grad_sq()) / (variance * base_batch / global_batch + problem.grad_sq());
}

TEST(LrScaling, FixedRulesHaveConstantGains) {
  const GradientNoise noise{0.2, 9.2};
  EXPECT_DOUBLE_EQ(make_lr_scaling(ScalingRule::None, 8192, 256)->gain(noise), 1.0);
  EXPECT_DOUBLE_EQ(make_lr_scaling(ScalingRule::Linear, 8192, 256)->gain(noise), 32.0);
  EXPECT_DOUBLE_EQ(make_lr_scaling(ScalingRule::Sqrt, 1024, 256)->gain(std::nullopt), 2.0);
  for (auto rule : {ScalingRule::None, ScalingRule::Linear, ScalingRule::Sqrt})
    EXPECT_FALSE(make_lr_scaling(rule, 512, 64)->adaptive());
  EXPECT_TRUE(make_lr_scaling(ScalingRule::AdaScale, 512, 64)->adaptive());
}

TEST(LrScaling, AdaScaleGainMatchesTheClosedFormOnLinearRegression) {
  torch::manual_seed(29);
  Regression noisy;
  noisy.sigma = 2.0;  // B_simple 421: the gain nears S at these batches
  struct Case {
    const Regression& problem;
    int ranks;
    int64_t base_batch;
  };
  const Regression problem;  // B_simple 46
  for (const Case& c : {Case{problem, 2, 16}, Case{problem, 8, 16}, Case{problem, 8, 32}, Case{noisy, 8, 16}}) {
    const int64_t b = 16, global = b * c.ranks;
    GradientNoiseScale estimator(double(b), double(global), 0.999);
    feed(estimator, c.problem, c.ranks, b, 3000);
    const auto adascale = make_lr_scaling(ScalingRule::AdaScale, global, c.base_batch);
    const double r = adascale->gain(GradientNoise{estimator.gradient_squared_norm(), estimator.trace_sigma()});
    const double expected = true_gain(c.problem, double(c.base_batch), double(global));
    EXPECT_NEAR(r, expected, 0.10 * expected)
        << c.ranks << " ranks of " << b << ", base batch " << c.base_batch << ", sigma " << c.problem.sigma;
    EXPECT_GT(expected, 1.2) << "a case where the gain is not trivially 1";
  }
}

TEST(LrScaling, AdaScaleGainStaysBetweenOneAndTheScale) {
  const auto adascale = make_lr_scaling(ScalingRule::AdaScale, 1024, 64);  // S = 16
  EXPECT_DOUBLE_EQ(adascale->gain(std::nullopt), 1.0) << "nothing measured yet: the base lr";
  EXPECT_DOUBLE_EQ(adascale->gain(GradientNoise{1.0, 0.0}), 1.0) << "no noise: a larger batch does not help";
  EXPECT_DOUBLE_EQ(adascale->gain(GradientNoise{1.0, -5.0}), 1.0) << "a negative estimate counts as none";
  EXPECT_DOUBLE_EQ(adascale->gain(GradientNoise{-0.1, 64.0}), 16.0) << "only noise: S-fold, as the linear rule";
  EXPECT_DOUBLE_EQ(adascale->gain(GradientNoise{0.0, 0.0}), 1.0);
  // sigma^2 = 64/64 = 1 = |G|^2: r = 2 / (1/16 + 1).
  EXPECT_DOUBLE_EQ(adascale->gain(GradientNoise{1.0, 64.0}), 2.0 / (1.0 / 16 + 1.0));
  // Below the base batch (S = 1/2) the gain lies in [S, 1].
  EXPECT_DOUBLE_EQ(make_lr_scaling(ScalingRule::AdaScale, 32, 64)->gain(GradientNoise{-1.0, 64.0}), 0.5);
}

}  // namespace
}  // namespace ddp
