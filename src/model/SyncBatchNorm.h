#pragma once
// Batch normalisation by the statistics of every data-parallel replica's batch together, as
// PyTorch's SyncBatchNorm: N replicas with batch b normalise exactly as one with batch N*b.
// The model knows no communicator (model sits below comm); whoever owns the replicas passes
// in how to sum a tensor over them (train/Replica: the Communicator's all-reduce).
#include <torch/torch.h>

#include <functional>

namespace ddp {

// Sums `tensor` over every replica in place, as an all-reduce: every replica calls it together,
// with the same shape. Empty: a single replica (the sum is the tensor itself).
using ReplicaSum = std::function<void(torch::Tensor&)>;

// Training-mode batch norm of `x` [batch, features] with `bn`'s weight and bias. The batch
// statistics are those of all replicas' batches (one sum in the forward pass, of the per-feature
// sum, sum of squares and count; one in the backward pass, of sum(dy) and sum(dy * x_hat)).
// `update_running_stats`: bn's running mean and (unbiased) variance move towards the global
// batch's, identically on every replica.
//
// Gradients: x's is exact for the global loss that is the sum of the replicas' losses; weight's
// and bias's are this replica's share (their sum over replicas is the global gradient). With
// each replica's loss the mean over its own batch and the gradients averaged over replicas (DDP),
// the result is the gradient of the global batch's mean loss: see SyncBatchNorm.cpp.
torch::Tensor sync_batch_norm(const torch::Tensor& x, torch::nn::BatchNorm1dImpl& bn, const ReplicaSum& sum,
                              bool update_running_stats = true);
// The same for a conv's output [batch, channels, height, width]: per channel, over every replica's
// batch and every position, as PyTorch's SyncBatchNorm (the running variance unbiased by that count).
torch::Tensor sync_batch_norm(const torch::Tensor& x, torch::nn::BatchNorm2dImpl& bn, const ReplicaSum& sum,
                              bool update_running_stats = true);

}  // namespace ddp
