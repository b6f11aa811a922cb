// Sync batch norm across the ranks of mpiexec equals torch's own batch norm on the
// concatenated batch: each rank's output rows and input gradient are the reference's rows,
// the weight and bias gradients summed over ranks are the reference's, and every rank's
// running statistics are the reference's. Ranks hold different batch sizes, so the count
// must be the global one.
#include <gtest/gtest.h>

#include "comm/MpiCommunicator.h"
#include "comm/MpiRuntime.h"
#include "model/SyncBatchNorm.h"

namespace ddp {
namespace {

double relative_error(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).norm().item<double>() / b.norm().item<double>();
}

void check_against_concatenated_batch(torch::ScalarType dtype, double tolerance) {
  auto world = make_mpi_world_communicator();
  const int n = world->size(), rank = world->rank();
  const int64_t features = 128;
  auto rows_of = [](int r) { return int64_t(3 + r); };  // 3, 4, 5, ... rows
  int64_t first = 0, total = 0;
  for (int r = 0; r < n; ++r) first += r < rank ? rows_of(r) : 0, total += rows_of(r);

  // Every rank builds the whole batch; a mean far from 0 tests the variance's precision.
  torch::manual_seed(11);
  const auto options = torch::TensorOptions(dtype);
  const torch::Tensor x = torch::randn({total, features}, options) * 3.0 + 10.0;
  const torch::Tensor upstream = torch::randn({total, features}, options);
  const torch::Tensor weight = torch::rand({features}, options) + 0.5, bias = torch::randn({features}, options);

  // The reference: torch's batch norm on the concatenated batch, on one process.
  const torch::Tensor x_ref = x.clone().requires_grad_();
  const torch::Tensor w_ref = weight.clone().requires_grad_(), b_ref = bias.clone().requires_grad_();
  torch::Tensor running_mean = torch::zeros({features}, options), running_var = torch::ones({features}, options);
  const torch::Tensor y_ref = torch::batch_norm(x_ref, w_ref, b_ref, running_mean, running_var, true, 0.1, 1e-5, false);
  (y_ref * upstream).sum().backward();

  // This rank's rows through sync batch norm; the loss is the sum of the ranks' losses.
  torch::nn::BatchNorm1d bn(features);
  bn->to(dtype);
  {
    torch::NoGradGuard no_grad;
    bn->weight.copy_(weight);
    bn->bias.copy_(bias);
  }
  const torch::Tensor mine = x.narrow(0, first, rows_of(rank)).clone().requires_grad_();
  const torch::Tensor y = sync_batch_norm(mine, *bn, [&](torch::Tensor& t) { world->allreduce(t, ReduceOp::Sum); });
  (y * upstream.narrow(0, first, rows_of(rank))).sum().backward();

  EXPECT_LT(relative_error(y, y_ref.narrow(0, first, rows_of(rank))), tolerance) << "output, rank " << rank;
  EXPECT_LT(relative_error(mine.grad(), x_ref.grad().narrow(0, first, rows_of(rank))), tolerance)
      << "input gradient, rank " << rank;
  torch::Tensor weight_grad = bn->weight.grad().clone(), bias_grad = bn->bias.grad().clone();
  world->allreduce(weight_grad, ReduceOp::Sum);
  world->allreduce(bias_grad, ReduceOp::Sum);
  EXPECT_LT(relative_error(weight_grad, w_ref.grad()), tolerance) << "weight gradient, rank " << rank;
  EXPECT_LT(relative_error(bias_grad, b_ref.grad()), tolerance) << "bias gradient, rank " << rank;
  EXPECT_LT(relative_error(bn->running_mean, running_mean), tolerance) << "running mean, rank " << rank;
  EXPECT_LT(relative_error(bn->running_var, running_var), tolerance) << "running variance, rank " << rank;
  // Not a rank's own batch: its statistics alone give another output.
  if (n > 1) EXPECT_GT(relative_error(torch::batch_norm(mine, bn->weight, bn->bias, {}, {}, true, 0.1, 1e-5, false),
                                      y), 1e-3);
}

TEST(SyncBatchNorm, RanksTogetherEqualTorchBatchNormOnTheConcatenatedBatch) {
  check_against_concatenated_batch(torch::kFloat32, 1e-5);
  check_against_concatenated_batch(torch::kFloat64, 1e-12);
}

}  // namespace
}  // namespace ddp
