#pragma once
// Linear regression y = w*.x + n with x ~ N(0, I_d), n ~ N(0, sigma^2), loss (w.x - y)^2 / 2
// at a fixed w: the per-sample gradient is g = (e.x - n) x with e = w - w*, so
//   G = E[g] = e,   tr(Sigma) = d (|e|^2 + sigma^2) + |e|^2,   B_simple = tr(Sigma) / |e|^2.
// The noise scale's and AdaScale's tests use it for its closed form.
#include <torch/torch.h>

#include "metrics/NoiseScale.h"

namespace ddp::testing_data {

struct Regression {
  int64_t d = 20;
  double sigma = 0.5;
  torch::Tensor e = torch::full({20}, 0.1, torch::kFloat64);

  double grad_sq() const { return e.dot(e).item<double>(); }
  double trace_sigma() const { return d * (grad_sq() + sigma * sigma) + grad_sq(); }
  double true_b_simple() const { return trace_sigma() / grad_sq(); }
  // Mean per-sample gradient over `count` fresh samples.
  torch::Tensor batch_gradient(int64_t count) const {
    const torch::Tensor x = torch::randn({count, d}, torch::kFloat64);
    const torch::Tensor n = torch::randn({count}, torch::kFloat64) * sigma;
    const torch::Tensor residual = x.matmul(e) - n;
    return (residual.unsqueeze(1) * x).mean(0);
  }
};

// Simulates data-parallel steps: `ranks` ranks of `b` samples each, measured as the trainer
// measures them (the mean of the ranks' squared norms, and the averaged gradient's).
inline void feed(GradientNoiseScale& estimator, const Regression& problem, int ranks, int64_t b, int steps) {
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

}  // namespace ddp::testing_data
