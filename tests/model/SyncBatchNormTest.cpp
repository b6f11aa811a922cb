// Sync batch norm on one replica is torch's own batch norm, forward, gradients and running
// statistics; SimpleNN's BN normalises by the batch in training and by the running statistics
// in eval mode. (Across ranks: SyncBatchNormMpiTest.)
#include "model/SyncBatchNorm.h"

#include <gtest/gtest.h>

#include "model/SimpleNN.h"

namespace ddp {
namespace {

double relative_error(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).norm().item<double>() / b.norm().item<double>();
}

TEST(SyncBatchNorm, OneReplicaIsTorchBatchNorm) {
  torch::manual_seed(3);
  const torch::Tensor x = torch::randn({16, 128}) * 2.0 + 5.0;  // a mean far from 0
  const torch::Tensor upstream = torch::randn({16, 128});
  torch::nn::BatchNorm1d reference(128), sync(128);
  {
    torch::NoGradGuard no_grad;
    for (auto* bn : {&reference, &sync}) {
      (*bn)->weight.copy_(torch::linspace(0.5, 1.5, 128));
      (*bn)->bias.copy_(torch::linspace(-1.0, 1.0, 128));
    }
  }
  const torch::Tensor x_ref = x.clone().requires_grad_(), x_sync = x.clone().requires_grad_();
  const torch::Tensor y_ref = reference(x_ref), y_sync = sync_batch_norm(x_sync, *sync, ReplicaSum());
  (y_ref * upstream).sum().backward();
  (y_sync * upstream).sum().backward();

  EXPECT_LT(relative_error(y_sync, y_ref), 1e-6);
  EXPECT_LT(relative_error(x_sync.grad(), x_ref.grad()), 1e-5);
  EXPECT_LT(relative_error(sync->weight.grad(), reference->weight.grad()), 1e-6);
  EXPECT_LT(relative_error(sync->bias.grad(), reference->bias.grad()), 1e-6);
  EXPECT_LT(relative_error(sync->running_mean, reference->running_mean), 1e-6);
  EXPECT_LT(relative_error(sync->running_var, reference->running_var), 1e-6);
  EXPECT_EQ(sync->num_batches_tracked.item<int64_t>(), 1);
}

TEST(SimpleNN, BatchNormUsesTheBatchInTrainingAndTheRunningStatisticsInEval) {
  for (const BatchNorm mode : {BatchNorm::Local, BatchNorm::Sync}) {
    SimpleNN model = make_simple_nn(7, mode);
    EXPECT_EQ(model->buffers().size(), 3u) << "running mean, variance and count";
    EXPECT_EQ(parameter_count(*model), parameter_count(*make_simple_nn(7)) + 2 * 128);
    // The Linear layers are drawn as without the BN.
    EXPECT_TRUE(torch::equal(model->fc2->weight, make_simple_nn(7)->fc2->weight));
    torch::manual_seed(1);
    const torch::Tensor x = torch::rand({32, 784});
    const torch::Tensor before = model->bn1->running_mean.clone();
    model->forward(x, /*update_running_stats=*/false);
    EXPECT_TRUE(torch::equal(model->bn1->running_mean, before)) << "update_running_stats=false moved them";
    const torch::Tensor train_out = model->forward(x);
    EXPECT_FALSE(torch::equal(model->bn1->running_mean, before));
    // In training mode a sample's output depends on the rest of its batch; in eval mode not.
    EXPECT_FALSE(torch::allclose(model->forward(x.narrow(0, 0, 8)), train_out.narrow(0, 0, 8)));
    model->eval();
    const torch::Tensor running = model->bn1->running_mean.clone();
    EXPECT_TRUE(torch::allclose(model->forward(x.narrow(0, 0, 8)), model->forward(x).narrow(0, 0, 8), 1e-5, 1e-6));
    EXPECT_TRUE(torch::equal(model->bn1->running_mean, running)) << "eval moved the running statistics";
  }
}

}  // namespace
}  // namespace ddp
