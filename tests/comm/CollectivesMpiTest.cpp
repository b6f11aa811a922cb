// Runs under mpiexec -n 2 and -n 4.
#include <gtest/gtest.h>

#include "comm/MpiRuntime.h"
#include "model/SimpleNN.h"
#include "sync/GradientSynchronizer.h"

namespace ddp {
namespace {

class Collectives : public ::testing::Test {
 protected:
  std::unique_ptr<Communicator> comm = make_mpi_world_communicator();
  int rank() const { return comm->rank(); }
  int size() const { return comm->size(); }
};

TEST_F(Collectives, WorldHasMoreThanOneRank) {
  ASSERT_GT(size(), 1) << "run this suite under mpiexec -n N with N > 1";
  EXPECT_GE(comm->local_rank(), 0);
  EXPECT_LT(comm->local_rank(), size());
}

TEST_F(Collectives, AllreduceOpsAndDtypes) {
  const double n = size();
  const double rank_sum = n * (n - 1) / 2;
  torch::Tensor f = torch::full({1000}, float(rank()), torch::kFloat32);
  comm->allreduce(f, ReduceOp::Sum);
  EXPECT_TRUE(f.eq(float(rank_sum)).all().item<bool>());

  torch::Tensor d = torch::arange(5, torch::kFloat64) * (rank() + 1);
  comm->allreduce(d, ReduceOp::Average);
  EXPECT_TRUE(torch::allclose(d, torch::arange(5, torch::kFloat64) * (n + 1) / 2));

  torch::Tensor i = torch::tensor({int64_t(rank()), int64_t(-rank())});
  torch::Tensor j = i.clone();
  comm->allreduce(i, ReduceOp::Max);
  comm->allreduce(j, ReduceOp::Min);
  EXPECT_EQ(i[0].item<int64_t>(), size() - 1);
  EXPECT_EQ(j[1].item<int64_t>(), 1 - size());
}

// Several tensors of different dtypes in one go, 16-bit floats among them (their sums in 16
// bits overflow past 65504: tests/sync/CompressionMpiTest.cpp).
TEST_F(Collectives, GroupedAllreduceOfMixedDtypes) {
  const float n = float(size());
  std::vector<torch::Tensor> tensors{torch::full({1000}, float(rank()), torch::kFloat32),
                                     torch::full({300}, 1.5, torch::kFloat16),
                                     torch::full({70}, 2.5, torch::kBFloat16)};
  comm->allreduce(tensors, ReduceOp::Sum);
  EXPECT_TRUE(tensors[0].eq(n * (n - 1) / 2).all().item<bool>());
  EXPECT_TRUE(tensors[1].to(torch::kFloat32).eq(1.5f * n).all().item<bool>());
  EXPECT_TRUE(tensors[2].to(torch::kFloat32).eq(2.5f * n).all().item<bool>());
  std::vector<torch::Tensor> averaged{torch::full({5}, float(rank()), torch::kBFloat16)};
  comm->allreduce(averaged, ReduceOp::Average);
  EXPECT_FLOAT_EQ(averaged[0][0].item<float>(), (n - 1) / 2);
  torch::Tensor half = torch::ones({3}, torch::kFloat16);
  EXPECT_THROW(comm->allreduce(half, ReduceOp::Max), std::invalid_argument);
}

TEST_F(Collectives, BroadcastFromEveryRoot) {
  for (int root = 0; root < size(); ++root) {
    torch::Tensor t = torch::full({3, 7}, rank() == root ? 42.0 + root : -1.0);
    comm->broadcast(t, root);
    EXPECT_TRUE(t.eq(42.0 + root).all().item<bool>()) << "root " << root;
  }
}

TEST_F(Collectives, AllgatherStringsOfDifferentLengths) {
  const auto all = comm->allgather(std::string(size_t(rank()), 'x') + std::to_string(rank()));
  ASSERT_EQ(int(all.size()), size());
  for (int r = 0; r < size(); ++r) EXPECT_EQ(all[r], std::string(size_t(r), 'x') + std::to_string(r));
  EXPECT_EQ(comm->allgather("")[0], "");
}

TEST_F(Collectives, AnyIsTheOrOfAllRanks) {
  EXPECT_FALSE(comm->any(false));
  EXPECT_TRUE(comm->any(rank() == size() - 1));
}

TEST_F(Collectives, SynchronizerAveragesGradientsAcrossBuckets) {
  SimpleNN model = make_simple_nn(0);
  GradientSynchronizer sync(*comm, model->parameters(), 8192);  // several buckets
  ASSERT_GT(sync.buckets().buffers().size(), 1u);
  // Each rank writes (rank + 1) x a pattern through the parameters' .grad() views.
  auto pattern = [](const torch::Tensor& p, int64_t offset) {
    return (torch::arange(p.numel(), torch::kFloat32) + float(offset)).remainder(97).view(p.sizes());
  };
  int64_t offset = 0;
  for (auto& p : model->parameters()) {
    p.grad().copy_(pattern(p, offset) * float(rank() + 1));
    offset += p.numel();
  }
  sync.synchronize(0);
  offset = 0;
  for (auto& p : model->parameters()) {
    EXPECT_TRUE(torch::allclose(p.grad(), pattern(p, offset) * float(size() + 1) / 2.0f, 1e-6, 1e-5));
    offset += p.numel();
  }
}

TEST_F(Collectives, ReplicasStartIdenticalWhateverTheirSeed) {
  torch::manual_seed(1000 + rank());
  SimpleNN model = make_simple_nn(uint64_t(1000 + rank()));  // a different init on every rank
  GradientSynchronizer sync(*comm, model->parameters(), size_t(1) << 20);
  sync.broadcast_parameters(0);
  for (const auto& p : model->parameters()) {
    torch::Tensor hi = p.detach().clone(), lo = p.detach().clone();
    comm->allreduce(hi, ReduceOp::Max);
    comm->allreduce(lo, ReduceOp::Min);
    EXPECT_TRUE(hi.equal(lo)) << "parameters differ across ranks after the broadcast";
  }
  const SimpleNN rank0 = make_simple_nn(1000);
  for (size_t k = 0; k < model->parameters().size(); ++k)
    EXPECT_TRUE(model->parameters()[k].equal(rank0->parameters()[k]));
}

}  // namespace
}  // namespace ddp
