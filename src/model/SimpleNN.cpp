#include "model/SimpleNN.h"

namespace ddp {

SimpleNNImpl::SimpleNNImpl(BatchNorm batch_norm) : batch_norm_(batch_norm) {
  fc1 = register_module("fc1", torch::nn::Linear(28 * 28, 128));
  if (batch_norm != BatchNorm::None) bn1 = register_module("bn1", torch::nn::BatchNorm1d(128));
  fc2 = register_module("fc2", torch::nn::Linear(128, 10));
}

torch::Tensor SimpleNNImpl::forward(const torch::Tensor& x, bool update_running_stats) {
  return fc2(torch::relu(normalize(fc1(x), update_running_stats)));
}

torch::Tensor SimpleNNImpl::normalize(const torch::Tensor& h, bool update_running_stats) {
  if (!bn1) return h;
  if (!is_training()) return bn1(h);  // the running statistics
  if (batch_norm_ == BatchNorm::Sync) return sync_batch_norm(h, *bn1, replica_sum_, update_running_stats);
  if (update_running_stats) return bn1(h);
  // This batch's own statistics, leaving the running ones where they are.
  return torch::batch_norm(h, bn1->weight, bn1->bias, {}, {}, /*training=*/true, 0.0, bn1->options.eps(),
                           at::globalContext().userEnabledCuDNN());
}

SimpleNN make_simple_nn(uint64_t seed, BatchNorm batch_norm) {
  torch::manual_seed(seed);
  return SimpleNN(batch_norm);
}

int64_t parameter_count(const torch::nn::Module& module) {
  int64_t count = 0;
  for (const auto& p : module.parameters()) count += p.numel();
  return count;
}

}  // namespace ddp
