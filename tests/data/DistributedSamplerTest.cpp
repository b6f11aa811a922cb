#include "data/DistributedSampler.h"

#include <gtest/gtest.h>

#include <set>

#include "common/Errors.h"

namespace ddp {
namespace {

std::vector<int64_t> as_vector(const torch::Tensor& t) { return {t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel()}; }

TEST(DistributedSampler, ShardsAreDisjointAndCoverTheEpoch) {
  const int64_t n = 1000, batch = 16;
  for (int world : {1, 2, 3, 4}) {
    std::set<int64_t> seen;
    int64_t total = 0;
    for (int rank = 0; rank < world; ++rank) {
      DistributedSampler sampler(n, world, rank, batch, true, 7, Remainder::Drop);
      const auto shard = as_vector(sampler.indices(0));
      EXPECT_EQ(int64_t(shard.size()), sampler.steps_per_epoch() * batch);
      total += int64_t(shard.size());
      seen.insert(shard.begin(), shard.end());
    }
    EXPECT_EQ(int64_t(seen.size()), total) << "shards overlap with " << world << " ranks";
    EXPECT_EQ(total, (n / (batch * world)) * batch * world);
    for (int64_t i : seen) EXPECT_TRUE(i >= 0 && i < n);
  }
}

TEST(DistributedSampler, PadCoversEverySample) {
  const int64_t n = 100;
  std::set<int64_t> seen;
  for (int rank = 0; rank < 3; ++rank) {
    DistributedSampler sampler(n, 3, rank, 8, true, 1, Remainder::Pad);
    EXPECT_EQ(sampler.steps_per_epoch(), 5);  // ceil(100 / 24)
    const auto shard = as_vector(sampler.indices(2));
    seen.insert(shard.begin(), shard.end());
  }
  EXPECT_EQ(int64_t(seen.size()), n);
}

TEST(DistributedSampler, SameSeedSameOrderOnEveryRankAndEpochsDiffer) {
  DistributedSampler a(500, 2, 1, 10, true, 3, Remainder::Drop);
  DistributedSampler b(500, 2, 1, 10, true, 3, Remainder::Drop);
  EXPECT_TRUE(a.indices(4).equal(b.indices(4)));
  EXPECT_FALSE(a.indices(0).equal(a.indices(1)));
  DistributedSampler other_seed(500, 2, 1, 10, true, 4, Remainder::Drop);
  EXPECT_FALSE(a.indices(0).equal(other_seed.indices(0)));
}

TEST(DistributedSampler, UnionOfRankBatchesIsTheSingleRankGlobalBatch) {
  // The property the equivalence of N ranks x b and 1 rank x N*b rests on.
  const int world = 4, batch = 8;
  DistributedSampler single(300, 1, 0, batch * world, true, 9, Remainder::Drop);
  const auto global = as_vector(single.indices(1));
  for (int64_t step = 0; step < single.steps_per_epoch(); ++step) {
    std::multiset<int64_t> expected(global.begin() + step * batch * world, global.begin() + (step + 1) * batch * world);
    std::multiset<int64_t> from_ranks;
    for (int rank = 0; rank < world; ++rank) {
      const auto shard = as_vector(DistributedSampler(300, world, rank, batch, true, 9, Remainder::Drop).indices(1));
      from_ranks.insert(shard.begin() + step * batch, shard.begin() + (step + 1) * batch);
    }
    EXPECT_EQ(from_ranks, expected) << "step " << step;
  }
}

TEST(DistributedSampler, VirtualRanksTakeTheSamplesOfTheRanksTheyStandFor) {
  // 2 processes x 3 virtual ranks take, step by step, what 6 real ranks take.
  for (int process = 0; process < 2; ++process) {
    DistributedSampler simulated(500, 2, process, 5, true, 2, Remainder::Drop, 3);
    EXPECT_EQ(simulated.global_batch(), 30);
    EXPECT_EQ(simulated.batch_per_step(), 15);
    const auto mine = as_vector(simulated.indices(1));
    for (int j = 0; j < 3; ++j) {
      const auto real = as_vector(DistributedSampler(500, 6, process * 3 + j, 5, true, 2, Remainder::Drop).indices(1));
      for (int64_t step = 0; step < simulated.steps_per_epoch(); ++step)
        for (int i = 0; i < 5; ++i) ASSERT_EQ(mine[step * 15 + j * 5 + i], real[step * 5 + i]);
    }
  }
}

TEST(DistributedSampler, NoShuffleIsInOrder) {
  DistributedSampler sampler(10, 2, 1, 2, false, 0, Remainder::Drop);
  EXPECT_EQ(as_vector(sampler.indices(3)), (std::vector<int64_t>{1, 3, 5, 7}));
}

TEST(DistributedSampler, GlobalBatchLargerThanTheDataIsAnInputError) {
  EXPECT_THROW(DistributedSampler(100, 4, 0, 64, true, 0, Remainder::Drop), InputError);
}

}  // namespace
}  // namespace ddp
