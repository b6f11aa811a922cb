#pragma once
// model.name=lenet5: LeNet-5 (LeCun, Bottou, Bengio and Haffner 1998) on 28x28 inputs, as its
// common modern form: conv 6@5x5 with padding 2 (28x28, as the paper's 32x32 input gives), 2x2
// max pooling, conv 16@5x5, 2x2 max pooling, Linear 400->120, 84, 10, with ReLUs. The paper used
// scaled tanh, trainable average-pooling ("subsampling"), a partially connected C3 and RBF outputs;
// here every C3 map sees all 6 inputs and the outputs are logits. 61,706 parameters.
// model.batch_norm puts a BatchNorm2d after each conv and a BatchNorm1d after each hidden Linear,
// before its ReLU.
#include "model/Model.h"

namespace ddp {

struct LeNet5Impl : ModelImpl {
  explicit LeNet5Impl(BatchNorm batch_norm = BatchNorm::None);
  torch::Tensor forward(const torch::Tensor& x, bool update_running_stats = true) override;

  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::Linear fc1{nullptr}, fc2{nullptr}, fc3{nullptr};
  torch::nn::BatchNorm2d bn1{nullptr}, bn2{nullptr};  // null when batch_norm is none
  torch::nn::BatchNorm1d bn3{nullptr}, bn4{nullptr};
};

}  // namespace ddp
