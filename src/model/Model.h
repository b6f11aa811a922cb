#pragma once
// The models a run may train (model.name), behind one interface: each takes a batch of images
// [batch, 784] (pixels as the data scales them) and returns logits [batch, 10] (the loss applies
// the softmax). Every model places its batch norms (model.batch_norm) after each hidden layer,
// before its ReLU, and normalises through ModelImpl::normalize, so local and sync batch norm mean
// the same in every model. The rest of the program sees only Model.
#include <torch/torch.h>

#include <memory>
#include <string>

#include "config/Config.h"
#include "model/SyncBatchNorm.h"

namespace ddp {

class ModelImpl : public torch::nn::Module {
 public:
  // In training mode a BN normalises by batch statistics (sync: all replicas' batches) and,
  // with `update_running_stats`, moves its running statistics; in eval mode it uses them.
  virtual torch::Tensor forward(const torch::Tensor& x, bool update_running_stats = true) = 0;

  // batch_norm=sync: how the BNs sum their statistics over the replicas (set by train/Replica,
  // which knows them). Unset: this process's batch is the whole batch.
  void set_replica_sum(ReplicaSum sum) { replica_sum_ = std::move(sum); }
  BatchNorm batch_norm() const { return batch_norm_; }

 protected:
  explicit ModelImpl(BatchNorm batch_norm) : batch_norm_(batch_norm) {}
  // `h` through `bn` as model.batch_norm asks: eval mode, the running statistics; training, the
  // batch's (local) or every replica's batch's (sync), moving the running ones only when asked.
  // [batch, features] for a BatchNorm1d, [batch, channels, height, width] for a BatchNorm2d.
  torch::Tensor normalize(torch::nn::BatchNorm1dImpl& bn, const torch::Tensor& h, bool update_running_stats);
  torch::Tensor normalize(torch::nn::BatchNorm2dImpl& bn, const torch::Tensor& h, bool update_running_stats);

 private:
  template <class Bn>
  torch::Tensor normalize_with(Bn& bn, const torch::Tensor& h, bool update_running_stats);

  BatchNorm batch_norm_;
  ReplicaSum replica_sum_;
};
using Model = std::shared_ptr<ModelImpl>;

// model.name's model with weights drawn from a generator seeded by `seed`, so the same seed gives
// the same replica on every rank even before the broadcast. A BN's initial state draws nothing,
// so the other layers are the same with and without batch norm.
Model make_model(const ModelConfig& config, uint64_t seed);
// The same shapes without touching the seed (the weights are whatever the generator gives).
Model make_model_shapes(const ModelConfig& config);

int64_t parameter_count(const torch::nn::Module& module);
// "fc1.weight [128, 784], fc1.bias [128], ...": the parameters and (`with_buffers`) the buffers; with
// them, what a checkpoint records; without, what --dry-run prints for launch/plan to size the messages.
std::string parameter_shapes(const torch::nn::Module& module, bool with_buffers = true);

}  // namespace ddp
