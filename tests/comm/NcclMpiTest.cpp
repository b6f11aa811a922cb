// NCCL backend tests, run under mpiexec -n 1 (one GPU here) or more. Without a visible
// GPU they skip with the reason, so CI reports them skipped rather than passed.
#include <cuda_runtime.h>
#include <gtest/gtest.h>
#include <mpi.h>

#include "comm/MpiCommunicator.h"
#include "comm/MpiRuntime.h"
#include "comm/NcclCommunicator.h"
#include "data/Dataset.h"
#include "train/Trainer.h"

namespace ddp {
namespace {

int visible_gpus() {
  int count = 0;
  return cudaGetDeviceCount(&count) == cudaSuccess ? count : 0;
}

#define REQUIRE_GPU()                                                                      \
  do {                                                                                     \
    if (visible_gpus() == 0) GTEST_SKIP() << "no CUDA device visible: NCCL test skipped"; \
  } while (0)

#define REQUIRE_CUDA_TORCH()                                                                              \
  do {                                                                                                    \
    REQUIRE_GPU();                                                                                        \
    if (!torch::cuda::is_available()) GTEST_SKIP() << "this LibTorch has no CUDA: build against pip torch"; \
  } while (0)

std::unique_ptr<NcclCommunicator> make_nccl() {
  return std::make_unique<NcclCommunicator>(std::make_unique<MpiCommunicator>(MPI_COMM_WORLD), 60.0);
}

TEST(Nccl, AllreduceOnRawDeviceMemoryMatchesACpuReference) {
  REQUIRE_GPU();
  auto comm = make_nccl();
  const int n = comm->size();
  for (size_t count : {size_t(1), size_t(1000), size_t(1) << 20}) {
    std::vector<float> host(count);
    for (size_t i = 0; i < count; ++i) host[i] = float((i % 13) * (comm->rank() + 1));
    float* device = nullptr;
    ASSERT_EQ(cudaMalloc(&device, count * sizeof(float)), cudaSuccess);
    cudaMemcpy(device, host.data(), count * sizeof(float), cudaMemcpyHostToDevice);
    comm->allreduce(device, count, ncclFloat32, ReduceOp::Sum);
    comm->synchronize();
    cudaMemcpy(host.data(), device, count * sizeof(float), cudaMemcpyDeviceToHost);
    cudaFree(device);
    for (size_t i = 0; i < count; i += 997)
      ASSERT_FLOAT_EQ(host[i], float((i % 13) * n * (n + 1) / 2)) << "count " << count << " index " << i;
  }
}

TEST(Nccl, TensorAllreduceAverageAndBroadcast) {
  REQUIRE_CUDA_TORCH();
  auto comm = make_nccl();
  torch::Tensor t = torch::full({4096}, float(comm->rank() + 1), torch::Device(comm->device()));
  comm->allreduce(t, ReduceOp::Average);
  EXPECT_TRUE(t.cpu().eq(float(comm->size() + 1) / 2).all().item<bool>());
  torch::Tensor b = torch::full({8}, comm->rank() == 0 ? 7.0f : 0.0f, torch::Device(comm->device()));
  comm->broadcast(b, 0);
  EXPECT_TRUE(b.cpu().eq(7.0f).all().item<bool>());
}

// The Trainer users run, on the GPU over NCCL and on the CPU over MPI: two epochs (62
// steps) of the same samples end with the same parameters.
TEST(Nccl, OneRankCudaTrainingMatchesCpuTrainingAfterTwoEpochs) {
  REQUIRE_CUDA_TORCH();
  auto nccl = make_nccl();
  auto self = make_mpi_self_communicator();
  torch::manual_seed(7);
  const Dataset data{"synthetic",
                     {torch::randn({2000, 784}), torch::randint(0, 10, {2000}, torch::kInt64)},
                     {torch::randn({200, 784}), torch::randint(0, 10, {200}, torch::kInt64)}};
  Config config;
  config.train.epochs = 2;
  config.optim.base_lr = 0.05;
  config.optim.momentum = 0.9;
  config.output.progress = false;
  config.checkpoint.every_epochs = 0;
  Trainer gpu(config, *nccl, data, nccl->device());
  Trainer cpu(config, *self, data, torch::kCPU);
  EXPECT_EQ(gpu.run().step, cpu.run().step);
  const auto p = gpu.model()->parameters();
  const auto q = cpu.model()->parameters();
  for (size_t k = 0; k < p.size(); ++k) {
    const double rel = (p[k].cpu() - q[k]).norm().item<double>() / q[k].norm().item<double>();
    EXPECT_LT(rel, 1e-4) << "parameter " << k;
  }
}

}  // namespace
}  // namespace ddp
