#include "metrics/NoiseScale.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <stdexcept>

namespace ddp {
namespace {

// Linear regression y = w*.x + n with x ~ N(0, I_d), n ~ N(0, sigma^2), loss (w.x - y)^2 / 2
// at a fixed w: the per-sample gradient is g = (e.x - n) x with e = w - w*, so
//   G = E[g] = e,   tr(Sigma) = d (|e|^2 + sigma^2) + |e|^2,   B_simple = tr(Sigma) / |e|^2.
struct Regression {
  int64_t d = 20;
  double sigma = 0.5;
  torch::Tensor e = torch::full({20}, 0.1, torch::kFloat64);

  double true_b_simple() const {
    const double e2 = e.dot(e).item<double>();
    return (d * (e2 + sigma * sigma) + e2) / e2;
  }
  // Mean per-sample gradient over `count` fresh samples.
  torch::Tensor batch_gradient(int64_t count) const {
    const torch::Tensor x = torch::randn({count, d}, torch::kFloat64);
    const torch::Tensor n = torch::randn({count}, torch::kFloat64) * sigma;
    const torch::Tensor residual = x.matmul(e) - n;
    return (residual.unsqueeze(1) * x).mean(0);
  }
};

// Simulates data-parallel steps: `ranks` ranks of `b` samples each.
void feed(GradientNoiseScale& estimator, const Regression& problem, int ranks, int64_t b, int steps) {
  for (int step = 0; step < steps; ++step) {
    torch::Tensor sum = torch::zeros({problem.d}, torch::kFloat64);
    double small_sq = 0;
    for (int r = 0; r < ranks; ++r) {
      const torch::Tensor g = problem.batch_gradient(b);
      small_sq += g.dot(g).item<double>() / ranks;
      sum += g;
    }
    const torch::Tensor big = sum / ranks;
    estimator.add(small_sq, big.dot(big).item<double>());
  }
}

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
