#include "metrics/NoiseScale.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <stdexcept>

#include "NoisyRegression.h"

namespace ddp {
namespace {

using testing_data::feed;
using testing_data::Regression;

TEST(GradientNoiseScale, RecoversTheClosedFormOnLinearRegression) {
  torch::manual_seed(17);
  const Regression problem;
  ASSERT_NEAR(problem.true_b_simple(), 20 * (0.2 + 0.25) / 0.2 + 1, 1e-9);  // 46
  for (int ranks : {2, 4, 8}) {
    GradientNoiseScale estimator(16, 16.0 * ranks, 0.999);
    feed(estimator, problem, ranks, 16, 3000);
    ASSERT_TRUE(estimator.b_simple().has_value());
    EXPECT_NEAR(*estimator.b_simple(), problem.true_b_simple(), 0.10 * problem.true_b_simple()) << ranks << " ranks";
    EXPECT_NEAR(estimator.gradient_squared_norm(), 0.2, 0.02);
  }
}

TEST(GradientNoiseScale, TracksALargerNoiseScale) {
  torch::manual_seed(3);
  Regression noisy;
  noisy.sigma = 2.0;  // tr(Sigma) grows, B_simple = (20 * 4.2 + 0.2) / 0.2 = 421
  GradientNoiseScale estimator(32, 128, 0.999);
  feed(estimator, noisy, 4, 32, 4000);
  EXPECT_NEAR(*estimator.b_simple(), noisy.true_b_simple(), 0.10 * noisy.true_b_simple());
}

TEST(GradientNoiseScale, NeedsTwoBatchSizes) {
  EXPECT_THROW(GradientNoiseScale(64, 64), std::invalid_argument);
  GradientNoiseScale estimator(64, 128);
  EXPECT_FALSE(estimator.b_simple().has_value());
  // A single noisy estimate may make |G|^2 negative: no ratio is reported then.
  estimator.add(10.0, 1.0);
  EXPECT_LT(estimator.gradient_squared_norm(), 0);
  EXPECT_FALSE(estimator.b_simple().has_value());
}

}  // namespace
}  // namespace ddp
