#pragma once
// model.name=mlp: Linear 784->w1, ReLU, Linear w1->w2, ReLU, ..., Linear wk->10, with the widths
// w1..wk of model.hidden; model.batch_norm puts a BatchNorm1d after each hidden Linear, before its
// ReLU. The layers are fc1..fc(k+1) and bn1..bnk, so mlp [128] is simple_nn, name for name and
// draw for draw.
#include <vector>

#include "model/Model.h"

namespace ddp {

struct MlpImpl : ModelImpl {
  MlpImpl(const std::vector<int64_t>& hidden, BatchNorm batch_norm = BatchNorm::None);
  torch::Tensor forward(const torch::Tensor& x, bool update_running_stats = true) override;

  std::vector<torch::nn::Linear> linears;     // fc1..fc(k+1)
  std::vector<torch::nn::BatchNorm1d> norms;  // bn1..bnk; empty when batch_norm is none
};

}  // namespace ddp
