// The proof that the data parallelism is right: N ranks with local batch b for k steps
// end with the same parameters as one rank with batch N*b over the same samples in the
// same order. Runs under mpiexec -n 2 and -n 4.
#include <gtest/gtest.h>
#include <mpi.h>

#include "comm/MpiCommunicator.h"

#include "comm/MpiRuntime.h"
#include "data/Dataset.h"
#include "data/DistributedSampler.h"
#include "schedule/LrSchedule.h"
#include "train/Replica.h"

namespace ddp {
namespace {

Split synthetic_split(int64_t n) {
  // Learnable but not trivially: labels from a fixed random linear map of the inputs.
  torch::manual_seed(123);
  torch::Tensor x = torch::randn({n, 784});
  torch::Tensor w = torch::randn({784, 10});
  return {x, x.matmul(w).argmax(1)};
}

// Trains `steps` steps through `replica` exactly as the Trainer does; returns each step's
// gradient-noise measurement as [steps, 2] (small, big squared norms).
torch::Tensor train(Replica& replica, const Split& data, const DistributedSampler& sampler, const LrSchedule& schedule,
                    int64_t steps) {
  std::vector<torch::Tensor> noise;
  const int64_t b = sampler.batch_per_step();
  torch::Tensor order;
  for (int64_t step = 0; step < steps; ++step) {
    const int64_t s = step % sampler.steps_per_epoch();
    if (s == 0) order = sampler.indices(step / sampler.steps_per_epoch());
    const torch::Tensor idx = order.narrow(0, s * b, b);
    NoiseSample sample;
    replica.step(data.images.index_select(0, idx), data.labels.index_select(0, idx), schedule.at(step),
                 sampler.virtual_ranks(), &sample);
    noise.push_back(torch::stack({sample.small_squared_norm, sample.big_squared_norm}));
  }
  return torch::stack(noise);
}

double relative_error(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).norm().item<double>() / b.norm().item<double>();
}

Config equivalence_config(int64_t b) {
  Config config;
  config.train.local_batch = b;
  config.train.seed = 5;
  config.optim.base_lr = 0.02;
  config.optim.momentum = 0.9;  // momentum and weight decay carry state across steps
  config.optim.weight_decay = 1e-3;
  config.lr.rule = ScalingRule::Linear;
  config.lr.base_batch = 8;
  config.lr.warmup_steps = 10;
  config.comm.bucket_mb = 0.05;  // several buckets
  return config;
}

// N real ranks vs N/2 ranks x 2 virtual ranks: the same samples and the same update.
TEST(Equivalence, VirtualRanksMatchRealRanks) {
  auto world = make_mpi_world_communicator();
  const int n = world->size();
  ASSERT_EQ(n % 2, 0) << "needs an even number of ranks";
  const int64_t b = 8, steps = 30;
  const Split data = synthetic_split(200);
  const Config config = equivalence_config(b);

  Replica real(config, *world, torch::kCPU);
  DistributedSampler real_sampler(data.size(), n, world->rank(), b, true, 11, Remainder::Drop);
  const LrSchedule schedule(config, real_sampler.global_batch(), real_sampler.steps_per_epoch());
  const torch::Tensor real_noise = train(real, data, real_sampler, schedule, steps);

  // The first half of the ranks forms a world of N/2 processes, each standing for 2 ranks.
  MPI_Comm half_comm;
  const bool in_half = world->rank() < n / 2;
  MPI_Comm_split(MPI_COMM_WORLD, in_half ? 0 : 1, world->rank(), &half_comm);
  if (in_half) {
    MpiCommunicator half(half_comm);
    Config virtual_config = config;
    virtual_config.train.virtual_ranks = 2;
    Replica simulated(virtual_config, half, torch::kCPU);
    DistributedSampler virtual_sampler(data.size(), n / 2, half.rank(), b, true, 11, Remainder::Drop, 2);
    ASSERT_EQ(virtual_sampler.global_batch(), real_sampler.global_batch());
    ASSERT_EQ(virtual_sampler.steps_per_epoch(), real_sampler.steps_per_epoch());
    const torch::Tensor virtual_noise = train(simulated, data, virtual_sampler, schedule, steps);
    // The gradient-noise measurement is the same whether ranks are real or virtual.
    EXPECT_LT(relative_error(virtual_noise, real_noise), 1e-5);
    EXPECT_GT(real_noise.select(1, 0).mean().item<double>(), real_noise.select(1, 1).mean().item<double>())
        << "micro-batch gradients should be noisier than the averaged one";
    const auto p = simulated.model()->parameters();
    const auto q = real.model()->parameters();
    for (size_t k = 0; k < p.size(); ++k)
      EXPECT_LT(relative_error(p[k], q[k]), 1e-5) << "parameter " << k << " on rank " << world->rank();
  }
  MPI_Comm_free(&half_comm);
}

TEST(Equivalence, NRanksMatchOneRankWithTheGlobalBatch) {
  auto world = make_mpi_world_communicator();
  auto self = make_mpi_self_communicator();
  ASSERT_GT(world->size(), 1);
  const int n = world->size();
  const int64_t b = 8, steps = 30;
  const Split data = synthetic_split(200);

  const Config config = equivalence_config(b);

  // N ranks x b.
  Replica parallel(config, *world, torch::kCPU);
  DistributedSampler sharded(data.size(), n, world->rank(), b, true, 11, Remainder::Drop);
  const LrSchedule schedule(config, b * n, sharded.steps_per_epoch());
  ASSERT_LT(sharded.steps_per_epoch(), steps) << "the test should cross an epoch boundary";
  train(parallel, data, sharded, schedule, steps);

  // One rank x N*b, on this process alone.
  Config single_config = config;
  single_config.train.local_batch = b * n;
  Replica single(single_config, *self, torch::kCPU);
  DistributedSampler whole(data.size(), 1, 0, b * n, true, 11, Remainder::Drop);
  ASSERT_EQ(whole.steps_per_epoch(), sharded.steps_per_epoch());
  const LrSchedule single_schedule(single_config, b * n, whole.steps_per_epoch());
  train(single, data, whole, single_schedule, steps);

  const auto p = parallel.model()->parameters();
  const auto q = single.model()->parameters();
  for (size_t k = 0; k < p.size(); ++k) {
    EXPECT_LT(relative_error(p[k], q[k]), 1e-5) << "parameter " << k << " on rank " << world->rank();
    // Training moved the parameters: the comparison is not between two initial states.
    EXPECT_GT(relative_error(p[k], make_simple_nn(5)->parameters()[k]), 1e-3);
  }
}

// Deferred checks (train.check_every > 1): unchecked steps train exactly as checked ones;
// a NaN on one rank only, in an unchecked step, is reported by the next check on every
// rank, and the rollback returns parameters and momentum to the last good state, from
// which training goes on as if the bad steps had never happened.
TEST(DeferredChecks, NanOnOneRankIsFoundAtTheNextCheckAndRolledBack) {
  auto world = make_mpi_world_communicator();
  const int n = world->size();
  const int64_t b = 8;
  const Split data = synthetic_split(100 * n);  // 12 steps of 8 per rank
  const Config config = equivalence_config(b);
  DistributedSampler sampler(data.size(), n, world->rank(), b, true, 11, Remainder::Drop);
  const LrSchedule schedule(config, sampler.global_batch(), sampler.steps_per_epoch());
  const torch::Tensor order = sampler.indices(0);
  auto batch = [&](int64_t s) { return order.narrow(0, s * b, b); };
  auto images = [&](int64_t s) { return data.images.index_select(0, batch(s)); };
  auto labels = [&](int64_t s) { return data.labels.index_select(0, batch(s)); };

  Replica checked(config, *world, torch::kCPU), deferred(config, *world, torch::kCPU);
  for (int64_t s = 0; s < 5; ++s) {
    const StepResult a = checked.step(images(s), labels(s), schedule.at(s));
    const StepResult d = deferred.step(images(s), labels(s), schedule.at(s), 1, nullptr, false, s == 4);
    EXPECT_TRUE(a.checked);
    EXPECT_EQ(d.checked, s == 4);
    EXPECT_FALSE(a.nonfinite || d.nonfinite);
  }
  const auto p = checked.model()->parameters(), q = deferred.model()->parameters();
  for (size_t k = 0; k < p.size(); ++k) ASSERT_TRUE(torch::equal(p[k], q[k])) << "parameter " << k;
  deferred.save_rollback_point();

  // The last rank's batch at step 6 (unchecked) holds an Inf; step 7 is checked.
  const int bad_rank = n - 1;
  for (int64_t s = 5; s < 8; ++s) {
    torch::Tensor x = images(s);
    if (s == 6 && world->rank() == bad_rank) x[0][0] = std::numeric_limits<float>::infinity();
    const StepResult r = deferred.step(x, labels(s), schedule.at(s), 1, nullptr, false, s == 7);
    if (s < 7) EXPECT_FALSE(r.checked);
    else EXPECT_TRUE(r.checked && r.nonfinite) << "rank " << world->rank() << " missed rank " << bad_rank << "'s Inf";
  }
  EXPECT_TRUE(torch::isnan(deferred.model()->parameters()[0]).any().item<bool>()) << "the bad update was applied";
  deferred.rollback();
  for (size_t k = 0; k < p.size(); ++k) ASSERT_TRUE(torch::equal(p[k], q[k])) << "parameter " << k << " after rollback";

  // Momentum came back too: both replicas take the same next steps bitwise.
  for (int64_t s = 5; s < 8; ++s) {
    checked.step(images(s), labels(s), schedule.at(s));
    EXPECT_FALSE(deferred.step(images(s), labels(s), schedule.at(s), 1, nullptr, false, true).nonfinite);
  }
  for (size_t k = 0; k < p.size(); ++k) EXPECT_TRUE(torch::equal(p[k], q[k])) << "parameter " << k;
}

}  // namespace
}  // namespace ddp
