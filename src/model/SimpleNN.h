#pragma once
// The article's model: Linear 784->128, ReLU, Linear 128->10 (logits; the loss applies
// the softmax). Kept as plain as pytorch/examples' cpp/mnist Net.
#include <torch/torch.h>

namespace ddp {

struct SimpleNNImpl : torch::nn::Module {
  SimpleNNImpl();
  torch::Tensor forward(const torch::Tensor& x);

  torch::nn::Linear fc1{nullptr};
  torch::nn::Linear fc2{nullptr};
};
TORCH_MODULE(SimpleNN);

// Builds the model with weights drawn from a generator seeded by `seed`, so the same
// seed gives the same replica on every rank even before the broadcast.
SimpleNN make_simple_nn(uint64_t seed);

int64_t parameter_count(const torch::nn::Module& module);

}  // namespace ddp
