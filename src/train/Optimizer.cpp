#include "train/Optimizer.h"

namespace ddp {

torch::optim::SGDOptions sgd_options(const Config& config) {
  // torch::optim::SGD applies lr outside the momentum buffer (v = m*v + g; p -= lr*v),
  // so changing lr during warmup needs no momentum correction (Goyal et al., section 3).
  const bool lars = config.optim.name == OptimizerName::Lars;
  return torch::optim::SGDOptions(config.optim.base_lr)
      .momentum(config.optim.momentum)
      .weight_decay(lars ? 0.0 : config.optim.weight_decay)
      .nesterov(config.optim.nesterov);
}

LarsScaling::LarsScaling(std::vector<torch::Tensor> parameters, double eta, double weight_decay)
    : parameters_(std::move(parameters)), eta_(eta), weight_decay_(weight_decay) {}

void LarsScaling::rescale_gradients() {
  torch::NoGradGuard no_grad;
  for (const torch::Tensor& w : parameters_) {
    torch::Tensor g = w.grad();
    if (!g.defined()) continue;
    if (!adapts(w)) {
      // The same operation as SGD's own weight decay (d = g + wd w), so a bias moves bitwise as with sgd.
      if (weight_decay_ != 0) g.add_(w, weight_decay_);
      continue;
    }
    const torch::Tensor w_norm = w.norm(), g_norm = g.norm();
    const torch::Tensor denominator = g_norm + weight_decay_ * w_norm;
    // A zero norm (weights all zero, as a layer initialised to 0; or no gradient and no decay)
    // gives no scale to trust: ratio 1, the plain SGD step.
    const torch::Tensor ratio =
        torch::where(w_norm.gt(0) & denominator.gt(0), eta_ * w_norm / denominator, torch::ones_like(w_norm));
    if (weight_decay_ != 0) g.add_(w, weight_decay_);
    g.mul_(ratio);
  }
}

std::optional<LarsScaling> make_lars(const Config& config, std::vector<torch::Tensor> parameters) {
  if (config.optim.name != OptimizerName::Lars) return std::nullopt;
  return LarsScaling(std::move(parameters), config.optim.lars_eta, config.optim.weight_decay);
}

}  // namespace ddp
