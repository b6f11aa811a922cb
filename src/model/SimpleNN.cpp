#include "model/SimpleNN.h"

namespace ddp {

SimpleNNImpl::SimpleNNImpl() {
  fc1 = register_module("fc1", torch::nn::Linear(28 * 28, 128));
  fc2 = register_module("fc2", torch::nn::Linear(128, 10));
}

torch::Tensor SimpleNNImpl::forward(const torch::Tensor& x) { return fc2(torch::relu(fc1(x))); }

SimpleNN make_simple_nn(uint64_t seed) {
  torch::manual_seed(seed);
  return SimpleNN();
}

int64_t parameter_count(const torch::nn::Module& module) {
  int64_t count = 0;
  for (const auto& p : module.parameters()) count += p.numel();
  return count;
}

}  // namespace ddp
