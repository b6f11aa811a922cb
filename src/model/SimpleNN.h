#pragma once
// model.name=simple_nn, the article's model: Linear 784->128, ReLU, Linear 128->10. Kept as
// plain as pytorch/examples' cpp/mnist Net. model.batch_norm adds a BatchNorm1d(128) after the
// first Linear, before the ReLU. Its parameters are registered and drawn in the order they were
// before model.name existed, so every run of it ends with the same parameters_crc32.
#include "model/Model.h"

namespace ddp {

struct SimpleNNImpl : ModelImpl {
  explicit SimpleNNImpl(BatchNorm batch_norm = BatchNorm::None);
  torch::Tensor forward(const torch::Tensor& x, bool update_running_stats = true) override;

  torch::nn::Linear fc1{nullptr};
  torch::nn::BatchNorm1d bn1{nullptr};  // null when batch_norm is none
  torch::nn::Linear fc2{nullptr};
};
TORCH_MODULE(SimpleNN);

// SimpleNN seeded by `seed` (make_model with model.name=simple_nn, as its own type).
SimpleNN make_simple_nn(uint64_t seed, BatchNorm batch_norm = BatchNorm::None);

}  // namespace ddp
