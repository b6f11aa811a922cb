#pragma once
// A small learnable dataset for the tests that drive the Trainer in-process.
#include <torch/torch.h>

#include "data/Dataset.h"

namespace ddp::testing_data {

inline Split synthetic_split(int64_t n, uint64_t seed) {
  // Learnable but not trivially: labels from a fixed random linear map of the inputs.
  torch::manual_seed(seed);
  torch::Tensor x = torch::randn({n, 784});
  torch::manual_seed(123);
  torch::Tensor w = torch::randn({784, 10});
  return {x, x.matmul(w).argmax(1)};
}

inline Dataset synthetic_dataset(int64_t train_samples) {
  return {"synthetic", synthetic_split(train_samples, 123), synthetic_split(64, 321)};
}

}  // namespace ddp::testing_data
