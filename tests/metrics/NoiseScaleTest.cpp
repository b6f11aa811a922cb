#include "metrics/NoiseScale.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <stdexcept>
#include <utility>

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

// AdaptDL's theta = smoothing^S per step of S base batches (adaptdl/torch/gradient_noise_scale.py):
// the averages' window is a fixed amount of data whatever the batch and however often it is measured.
TEST(GradientNoiseScale, TheWindowIsAFixedAmountOfData) {
  EXPECT_DOUBLE_EQ(GradientNoiseScale::decay_per_measurement(0.999, 64, 64, 1), 0.999);
  EXPECT_DOUBLE_EQ(GradientNoiseScale::decay_per_measurement(0.999, 16384, 64, 1), std::pow(0.999, 256));
  EXPECT_DOUBLE_EQ(GradientNoiseScale::decay_per_measurement(0.999, 128, 64, 4), std::pow(0.999, 8));
  // The samples the averages remember, global batch x every / (1 - decay): base / (1 - smoothing)
  // = 64,000 while a measurement is a small part of it (at S = 256 one step is already 16,384).
  for (const auto& [global_batch, every] : {std::pair{64, 1}, {128, 4}, {1024, 1}, {4096, 1}, {16384, 1}}) {
    const double decay = GradientNoiseScale::decay_per_measurement(0.999, global_batch, 64, every);
    const double samples = double(global_batch * every) / (1 - decay);
    EXPECT_NEAR(samples / 64000, 1.0, 0.15) << global_batch << " every " << every;
  }
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
