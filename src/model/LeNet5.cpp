#include "model/LeNet5.h"

namespace ddp {

LeNet5Impl::LeNet5Impl(BatchNorm batch_norm) : ModelImpl(batch_norm) {
  const bool bn = batch_norm != BatchNorm::None;
  conv1 = register_module("conv1", torch::nn::Conv2d(torch::nn::Conv2dOptions(1, 6, 5).padding(2)));
  if (bn) bn1 = register_module("bn1", torch::nn::BatchNorm2d(6));
  conv2 = register_module("conv2", torch::nn::Conv2d(6, 16, 5));
  if (bn) bn2 = register_module("bn2", torch::nn::BatchNorm2d(16));
  fc1 = register_module("fc1", torch::nn::Linear(16 * 5 * 5, 120));
  if (bn) bn3 = register_module("bn3", torch::nn::BatchNorm1d(120));
  fc2 = register_module("fc2", torch::nn::Linear(120, 84));
  if (bn) bn4 = register_module("bn4", torch::nn::BatchNorm1d(84));
  fc3 = register_module("fc3", torch::nn::Linear(84, 10));
}

torch::Tensor LeNet5Impl::forward(const torch::Tensor& x, bool update_running_stats) {
  const auto block = [&](torch::Tensor h, auto& norm) {
    if (norm) h = normalize(*norm, h, update_running_stats);
    return torch::relu(h);
  };
  torch::Tensor h = x.view({-1, 1, 28, 28});
  h = torch::max_pool2d(block(conv1(h), bn1), 2);  // 6 x 14 x 14
  h = torch::max_pool2d(block(conv2(h), bn2), 2);  // 16 x 5 x 5
  h = block(fc1(h.flatten(1)), bn3);
  h = block(fc2(h), bn4);
  return fc3(h);
}

}  // namespace ddp
