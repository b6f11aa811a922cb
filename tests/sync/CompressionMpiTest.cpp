// The gradient exchanges across real ranks (mpiexec -n 2 and -n 4): fp16's division before the
// cast keeps a sum in range that a plain 16-bit sum overflows; PowerSGD at full rank is the exact
// mean; a gradient beyond float16's range is refused on every rank, not applied; local SGD with a
// period of 1 is data-parallel SGD, and with 4 its replicas differ between averagings.
#include <gtest/gtest.h>

#include "comm/MpiRuntime.h"
#include "model/SimpleNN.h"
#include "sync/GradientSynchronizer.h"
#include "sync/HalfPrecisionAllreduce.h"
#include "sync/PowerSgd.h"
#include "train/Replica.h"
#include "../train/SyntheticData.h"

namespace ddp {
namespace {

using testing_data::synthetic_split;

TEST(HalfPrecisionMpi, DividingBeforeTheCastKeepsTheSumInRange) {
  auto comm = make_mpi_world_communicator();
  const int n = comm->size();
  // Each rank's 40000 is a float16; n of them summed are not (65504 is the largest).
  torch::Tensor plain = torch::full({100}, 40000.0f).to(torch::kFloat16);
  comm->allreduce(plain, ReduceOp::Sum);
  EXPECT_TRUE(torch::isinf(plain.to(torch::kFloat32)).all().item<bool>()) << "the plain 16-bit sum overflows";

  std::vector<torch::Tensor> parameters{torch::zeros({100}).requires_grad_()};
  GradientBuckets buckets(parameters, size_t(1) << 20, 4);
  HalfPrecisionAllreduce exchange(*comm, torch::kFloat16, 0);
  parameters[0].mutable_grad().fill_(40000.0f);
  buckets.extras().fill_(float(comm->rank()));
  exchange.exchange(buckets, 0);
  EXPECT_TRUE(parameters[0].grad().eq(40000.0f).all().item<bool>()) << parameters[0].grad()[0].item<float>();
  EXPECT_TRUE(buckets.extras().eq(float(n - 1) / 2).all().item<bool>()) << "the extra slots' exact mean";
}

TEST(PowerSgdMpi, FullRankIsTheExactMean) {
  auto comm = make_mpi_world_communicator();
  std::vector<torch::Tensor> parameters{torch::zeros({7, 5}).requires_grad_(), torch::zeros({7}).requires_grad_()};
  GradientBuckets buckets(parameters, size_t(1) << 20, 4);
  SyncOptions options;
  options.compression = Compression::PowerSgd;
  options.powersgd_rank = 5;
  options.powersgd_min_ratio = 0;
  PowerSgd exchange(*comm, options, parameters);
  for (int step = 0; step < 3; ++step) {
    torch::manual_seed(uint64_t(10 * step + comm->rank()));
    std::vector<torch::Tensor> mine;
    for (auto& p : parameters) mine.push_back(p.mutable_grad().copy_(torch::randn(p.sizes())).clone());
    exchange.exchange(buckets, step);
    exchange.commit();
    for (size_t k = 0; k < parameters.size(); ++k) {
      torch::Tensor mean = mine[k].clone();
      comm->allreduce(mean, ReduceOp::Average);
      EXPECT_LT((parameters[k].grad() - mean).norm().item<double>() / mean.norm().item<double>(), 1e-5)
          << "parameter " << k << ", step " << step;
    }
  }
}

Config replica_config(Compression compression) {
  Config config;
  config.train.local_batch = 8;
  config.optim.base_lr = 0.05;
  config.comm.compression = compression;
  config.comm.compression_start_step = 0;
  return config;
}

// One rank's inputs scaled by 1e8 make its gradient far beyond 65504, finite in float32: cast to
// float16 it is Inf, and every rank must refuse the step rather than apply it.
TEST(HalfPrecisionMpi, AGradientBeyondTheRangeIsRefusedOnEveryRank) {
  auto comm = make_mpi_world_communicator();
  const Split data = synthetic_split(8 * comm->size(), 5);
  Replica replica(replica_config(Compression::Fp16), *comm, torch::kCPU);
  Split mine = data.rows(torch::arange(comm->rank() * 8, comm->rank() * 8 + 8));
  if (comm->rank() == comm->size() - 1) mine.images.mul_(1e8);
  const auto before = replica.parameters_crc32();
  EXPECT_TRUE(replica.step(mine, StepOptions{0.05}).nonfinite) << "rank " << comm->rank();
  EXPECT_EQ(replica.parameters_crc32(), before);
}

// With a period of 1 the ranks average their parameters after every step, and the mean of N
// steps from the same point is the step along the mean gradient: data-parallel SGD, momentum
// included (each buffer is linear in its gradients). With a period of 4 the replicas drift apart
// between averagings.
TEST(LocalSgdMpi, PeriodOneIsDataParallelSgdAndPeriodFourDrifts) {
  auto comm = make_mpi_world_communicator();
  const int n = comm->size();
  const Split data = synthetic_split(8 * n * 12, 6);
  Config plain = replica_config(Compression::None);
  plain.optim.momentum = 0.9;
  Config local = plain;
  local.comm.local_sgd_period = 1;
  local.comm.local_sgd_start_step = 0;
  Config drifting = local;
  drifting.comm.local_sgd_period = 4;
  Replica a(plain, *comm, torch::kCPU), b(local, *comm, torch::kCPU), c(drifting, *comm, torch::kCPU);
  std::vector<std::string> crcs_between;
  for (int64_t s = 0; s < 12; ++s) {
    const Split batch = data.rows(torch::arange((s * n + comm->rank()) * 8, (s * n + comm->rank()) * 8 + 8));
    StepOptions options{0.05};
    options.step = s;
    a.step(batch, options);
    b.step(batch, options);
    c.step(batch, options);
    if (s == 5) crcs_between = comm->allgather(c.parameters_crc32());
  }
  for (size_t k = 0; k < a.model()->parameters().size(); ++k) {
    const torch::Tensor p = a.model()->parameters()[k], q = b.model()->parameters()[k];
    EXPECT_LT((p - q).norm().item<double>() / p.norm().item<double>(), 1e-5) << "parameter " << k;
  }
  const auto crcs_after = comm->allgather(c.parameters_crc32());  // step 11 averaged: (11 + 1) % 4 == 0
  for (int r = 1; r < n; ++r) {
    EXPECT_NE(crcs_between[r], crcs_between[0]) << "rank " << r << " did not drift between averagings";
    EXPECT_EQ(crcs_after[r], crcs_after[0]) << "rank " << r << " after an averaging";
  }
}

}  // namespace
}  // namespace ddp
