// LARS against a hand computation: two steps on a 2x2 weight and a bias, through the same
// sgd_options and LarsScaling that every replica builds. The reference is MLPerf's LARS
// (mlcommons/training, resnet lars_optimizer.py): biases skip both the trust ratio and weight
// decay; a weight's ratio is 1 unless |w| > 0 and |g| > 0 (as NVIDIA's LARC too).
#include "train/Optimizer.h"

#include <gtest/gtest.h>

namespace ddp {
namespace {

Config lars_config(double eta, double weight_decay, double momentum) {
  Config config;
  config.optim.name = OptimizerName::Lars;
  config.optim.lars_eta = eta;
  config.optim.weight_decay = weight_decay;
  config.optim.momentum = momentum;
  return config;
}

// One replica's update as Replica::step does it: rescale, then SGD at `lr`.
struct Update {
  std::vector<torch::Tensor> parameters;
  torch::optim::SGD sgd;
  std::optional<LarsScaling> lars;

  Update(const Config& config, std::vector<torch::Tensor> p)
      : parameters(p), sgd(p, sgd_options(config)), lars(make_lars(config, p)) {}

  void step(const std::vector<torch::Tensor>& gradients, double lr) {
    for (size_t k = 0; k < parameters.size(); ++k) parameters[k].mutable_grad() = gradients[k].clone();
    for (auto& group : sgd.param_groups()) static_cast<torch::optim::SGDOptions&>(group.options()).lr(lr);
    if (lars) lars->rescale_gradients();
    sgd.step();
  }
};

torch::Tensor tensor(std::vector<double> values, std::vector<int64_t> shape) {
  return torch::tensor(values, torch::kFloat64).reshape(shape);
}

void expect_near(const torch::Tensor& actual, const torch::Tensor& expected, const char* what) {
  EXPECT_TRUE(torch::allclose(actual, expected, 1e-12, 1e-12)) << what << ":\n" << actual << "\nexpected\n" << expected;
}

TEST(Lars, TwoStepsMatchAHandComputation) {
  // eta 0.003, weight decay 0.1, momentum 0.9, lr 2; the same gradients at both steps.
  const torch::Tensor w = tensor({3, 0, 0, 4}, {2, 2}).requires_grad_();
  const torch::Tensor b = tensor({1, 2}, {2}).requires_grad_();
  const torch::Tensor gw = tensor({0.6, 0, 0, 0.8}, {2, 2}), gb = tensor({0.5, 0.5}, {2});
  Update update(lars_config(0.003, 0.1, 0.9), {w, b});

  // Step 1: |w| = 5, |g| = 1, ratio = 0.003 * 5 / (1 + 0.1 * 5) = 0.01;
  //   d = 0.01 (g + 0.1 w) = diag(0.009, 0.012) = v;  w = w - 2 v = diag(2.982, 3.976).
  //   The bias takes SGD's step without weight decay: d = g = (0.5, 0.5) = v;  b = b - 2 v = (0, 1).
  update.step({gw, gb}, 2.0);
  expect_near(w, tensor({2.982, 0, 0, 3.976}, {2, 2}), "weight after step 1");
  expect_near(b, tensor({0, 1}, {2}), "bias after step 1");

  // Step 2: |w| = sqrt(2.982^2 + 3.976^2) = 4.97, ratio = 0.003 * 4.97 / (1 + 0.497);
  //   d = ratio * (g + 0.1 w) = ratio * diag(0.8982, 1.1976);  v = 0.9 v + d;  w = w - 2 v.
  //   Bias: d = (0.5, 0.5);  v = 0.9 (0.5, 0.5) + d = (0.95, 0.95);  b = (0, 1) - 2 v = (-1.9, -0.9).
  const double ratio = 0.003 * 4.97 / 1.497;
  const double v0 = 0.9 * 0.009 + ratio * 0.8982, v1 = 0.9 * 0.012 + ratio * 1.1976;
  update.step({gw, gb}, 2.0);
  expect_near(w, tensor({2.982 - 2 * v0, 0, 0, 3.976 - 2 * v1}, {2, 2}), "weight after step 2");
  expect_near(b, tensor({-1.9, -0.9}, {2}), "bias after step 2");
}

TEST(Lars, ZeroNormsTakeThePlainStep) {
  // Weights all zero: no scale to trust, ratio 1. No gradient and no decay: ratio 1 too (nothing moves).
  const torch::Tensor zero = torch::zeros({2, 2}, torch::kFloat64).requires_grad_();
  const torch::Tensor still = tensor({1, 2, 3, 4}, {2, 2}).requires_grad_();
  Update update(lars_config(0.001, 0.0, 0.0), {zero, still});
  update.step({tensor({1, 2, 3, 4}, {2, 2}), torch::zeros({2, 2}, torch::kFloat64)}, 0.1);
  expect_near(zero, tensor({-0.1, -0.2, -0.3, -0.4}, {2, 2}), "zero weight");
  expect_near(still, tensor({1, 2, 3, 4}, {2, 2}), "weight without gradient");
}

TEST(Lars, NoGradientWithWeightDecayTakesRatioOne) {
  // |g| = 0, wd 0.1: ratio 1 (not eta |w| / (wd |w|) = eta / wd = 0.01), so d = 0.1 w and
  // w = w - 0.5 x 0.1 w = 0.95 w: the weight decay's own step, as with SGD.
  const torch::Tensor w = tensor({1, 2, 3, 4}, {2, 2}).requires_grad_();
  Update update(lars_config(0.001, 0.1, 0.0), {w});
  update.step({torch::zeros({2, 2}, torch::kFloat64)}, 0.5);
  expect_near(w, tensor({0.95, 1.9, 2.85, 3.8}, {2, 2}), "weight without gradient, with weight decay");
}

TEST(Lars, BiasesMoveBitwiseAsSgdWithoutWeightDecay) {
  torch::manual_seed(1);
  const torch::Tensor start = torch::randn({5}), gradient = torch::randn({5});
  Config sgd_config = lars_config(0.001, 0.0, 0.9);
  sgd_config.optim.name = OptimizerName::Sgd;
  const torch::Tensor with_sgd = start.clone().requires_grad_(), with_lars = start.clone().requires_grad_();
  Update sgd(sgd_config, {with_sgd}), lars(lars_config(0.001, 1e-2, 0.9), {with_lars});
  for (int s = 0; s < 3; ++s) {
    sgd.step({gradient}, 0.5);
    lars.step({gradient}, 0.5);
  }
  EXPECT_TRUE(torch::equal(with_sgd, with_lars)) << "LARS's weight decay reached an excluded tensor";
}

TEST(Lars, SgdHasNoScaling) {
  Config config;
  EXPECT_FALSE(make_lars(config, {torch::zeros({2, 2})}).has_value());
  EXPECT_DOUBLE_EQ(sgd_options(lars_config(0.001, 0.1, 0.9)).weight_decay(), 0.0) << "LARS folds it into d";
}

}  // namespace
}  // namespace ddp
