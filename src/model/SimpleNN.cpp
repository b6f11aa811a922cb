#include "model/SimpleNN.h"

namespace ddp {

SimpleNNImpl::SimpleNNImpl(BatchNorm batch_norm) : ModelImpl(batch_norm) {
  fc1 = register_module("fc1", torch::nn::Linear(28 * 28, 128));
  if (batch_norm != BatchNorm::None) bn1 = register_module("bn1", torch::nn::BatchNorm1d(128));
  fc2 = register_module("fc2", torch::nn::Linear(128, 10));
}

torch::Tensor SimpleNNImpl::forward(const torch::Tensor& x, bool update_running_stats) {
  torch::Tensor h = fc1(x);
  if (bn1) h = normalize(*bn1, h, update_running_stats);
  return fc2(torch::relu(h));
}

SimpleNN make_simple_nn(uint64_t seed, BatchNorm batch_norm) {
  torch::manual_seed(seed);
  return SimpleNN(batch_norm);
}

}  // namespace ddp
