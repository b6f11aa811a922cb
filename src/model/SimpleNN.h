#pragma once
// The article's model: Linear 784->128, ReLU, Linear 128->10 (logits; the loss applies
// the softmax). Kept as plain as pytorch/examples' cpp/mnist Net. model.batch_norm adds a
// BatchNorm1d(128) after the first Linear, before the ReLU.
#include <torch/torch.h>

#include "config/Config.h"
#include "model/SyncBatchNorm.h"

namespace ddp {

struct SimpleNNImpl : torch::nn::Module {
  explicit SimpleNNImpl(BatchNorm batch_norm = BatchNorm::None);
  // In training mode a BN normalises by batch statistics (sync: all replicas' batches) and,
  // with `update_running_stats`, moves its running statistics; in eval mode it uses them.
  torch::Tensor forward(const torch::Tensor& x, bool update_running_stats = true);

  // batch_norm=sync: how the BN sums its statistics over the replicas (set by train/Replica,
  // which knows them). Unset: this process's batch is the whole batch.
  void set_replica_sum(ReplicaSum sum) { replica_sum_ = std::move(sum); }
  BatchNorm batch_norm() const { return batch_norm_; }

  torch::nn::Linear fc1{nullptr};
  torch::nn::BatchNorm1d bn1{nullptr};  // null when batch_norm is none
  torch::nn::Linear fc2{nullptr};

 private:
  torch::Tensor normalize(const torch::Tensor& h, bool update_running_stats);

  BatchNorm batch_norm_;
  ReplicaSum replica_sum_;
};
TORCH_MODULE(SimpleNN);

// Builds the model with weights drawn from a generator seeded by `seed`, so the same
// seed gives the same replica on every rank even before the broadcast. The BN's initial
// state (weight 1, bias 0, running mean 0, variance 1) draws nothing, so the Linear
// layers are the same with and without it.
SimpleNN make_simple_nn(uint64_t seed, BatchNorm batch_norm = BatchNorm::None);

int64_t parameter_count(const torch::nn::Module& module);

}  // namespace ddp
