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

// MLPerf's LARS (mlcommons/training, resnet lars_optimizer.py compute_lr): the excluded tensors take
// neither the trust ratio nor weight decay; a weight takes ratio 1 unless both |w| and |g| are positive.
void LarsScaling::rescale_gradients() {
  torch::NoGradGuard no_grad;
  for (const torch::Tensor& w : parameters_) {
    torch::Tensor g = w.grad();
    if (!g.defined() || !adapts(w)) continue;  // excluded: the plain gradient, as SGD without weight decay
    const torch::Tensor w_norm = w.norm(), g_norm = g.norm();
    // A zero norm gives no scale to trust: weights all zero (a layer initialised to 0), or no
    // gradient, where eta |w| / (wd |w|) = eta / wd would only shrink the weight decay's own step.
    const torch::Tensor ratio = torch::where(w_norm.gt(0) & g_norm.gt(0),
                                             eta_ * w_norm / (g_norm + weight_decay_ * w_norm), torch::ones_like(w_norm));
    if (weight_decay_ != 0) g.add_(w, weight_decay_);
    g.mul_(ratio);
  }
}

std::optional<LarsScaling> make_lars(const Config& config, std::vector<torch::Tensor> parameters) {
  if (config.optim.name != OptimizerName::Lars) return std::nullopt;
  return LarsScaling(std::move(parameters), config.optim.lars_eta, config.optim.weight_decay);
}

}  // namespace ddp
